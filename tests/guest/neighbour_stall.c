// SPDX-License-Identifier: GPL-2.0-only
/*
 * Issue 29: one unprivileged user whose own mmap_lock is stalled must not
 * stall anybody else.  User A maps a page of a FUSE file whose server holds
 * FUSE_READ; root reads that page through /proc/A/mem, a remote fault that
 * cannot drop A's mmap_lock, so the read lock is held until the server
 * answers.  A thread of A queues a writer (mmap), and another then enters
 * the module: an open (mmu_notifier_get() takes A's lock for writing under
 * the misc core's global misc_mtx) or a CONFIG_DATA that reuses A's spare
 * status area (it reads A's maps under a global lock).  Every other user of
 * the node must still open, configure, close and exit, root must still open
 * other misc devices, and A must still die of SIGKILL, all while the server
 * holds the read.  Order is asserted, not time: the deadline only ends a
 * failing run, after which the server answers and everything unwinds, so
 * the module can be unloaded.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

#include "kdreg2.h"
#include "tap.h"

#define PAGE 4096UL
#define DEVICE "/dev/kdreg2"
#define UID_A 1000
#define UID_B 1001
#define MAX_REGIONS 1024
#define DEADLINE_MS 30000.0
#define FILE_NAME "page"
#define FILE_INO 2
#define FILL 'M'

enum mode { MODE_OPEN, MODE_CONFIG };

/* What A's threads do once the stall is in place. */
enum { T_MMAP, T_SECOND, T_COUNT };

/* The others, each in a process of its own. */
enum { N_CLOSE, N_CHILD, N_EXIT, N_FUSE, N_COUNT };

struct neighbour {
	const char *what;
	const char *doing;		/* the step it is in now */
	int done;			/* 1 completed, -1 a step failed */
	int err;
	double t0, ms;
};

/* Shared by every process of a case (MAP_SHARED). */
struct shared {
	void *page;			/* where A mapped the FUSE page */
	const char *a_failed;		/* the set-up step A failed at */
	int a_err;
	pid_t tid[T_COUNT];
	int done[T_COUNT];		/* 1 returned, -1 failed */
	int err[T_COUNT];
	struct neighbour nb[N_COUNT];
};

struct proc {
	pid_t pid;
	int status;
	bool reaped;
};

struct stall {
	enum mode mode;
	volatile struct shared *sh;
	char mnt[64];
	char path[96];
	struct proc server, a, reader, nb[N_COUNT];
	int release[2];			/* test -> server: answer the reads */
	int seen[2];			/* server -> test: a READ is held */
	int go[T_COUNT][2];		/* test -> A's threads */
	int cmd[2];			/* test -> A: join and exit */
	int ready[2];			/* A -> test: set up */
	int exit_go[2];			/* test -> the configured child of B */
	int a_fd;			/* A's fd opened before the stall */
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Has @p exited?  Reaps it once. */
static bool reap(struct proc *p)
{
	if (!p->reaped && p->pid > 0 &&
	    waitpid(p->pid, &p->status, WNOHANG) == p->pid)
		p->reaped = true;
	return p->reaped;
}

static bool reap_by(struct proc *p, double deadline)
{
	while (!reap(p) && now_ms() < deadline)
		usleep(1000);
	return p->reaped;
}

/* The state letter of thread @tid of @pid (R, S, D, Z...), 0 if gone. */
static char task_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/* Where thread @tid of @pid sleeps, for the log (one of two buffers). */
static const char *task_wchan(pid_t pid, pid_t tid)
{
	static char bufs[2][64];
	static int next;
	char path[64], *buf = bufs[next++ % 2];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", pid, tid);
	fd = open(path, O_RDONLY);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(bufs[0]) - 1);
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static void step_failed(const char *fmt, ...)
{
	va_list ap;

	fputs("# FAIL: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	tap_case_failed = 1;
}

/* ---- The FUSE server: one directory, one file of one page. ---- */

static void fuse_reply(int fd, uint64_t unique, int error, const void *arg,
		       size_t len)
{
	struct fuse_out_header h = {
		.len = sizeof(h) + (error ? 0 : len),
		.error = error,
		.unique = unique,
	};
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)arg, len } };

	/* The request may be gone (interrupted): nothing to do then. */
	if (writev(fd, iov, error || !len ? 1 : 2) < 0 && errno != ENOENT)
		_exit(3);
}

static void fill_attr(struct fuse_attr *a, uint64_t ino)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->blksize = PAGE;
	if (ino == FUSE_ROOT_ID) {
		a->mode = S_IFDIR | 0755;
		a->nlink = 2;
	} else {
		a->mode = S_IFREG | 0644;
		a->nlink = 1;
		a->size = PAGE;
		a->blocks = PAGE / 512;
	}
}

static void fuse_answer_read(int fd, uint64_t unique, uint64_t off,
			     uint32_t size)
{
	static char data[PAGE];
	size_t n = off < PAGE ? PAGE - off : 0;

	memset(data, FILL, sizeof(data));
	fuse_reply(fd, unique, 0, data, n < size ? n : size);
}

struct held {
	uint64_t unique, off;
	uint32_t size;
};

static void fuse_init(int fd, struct fuse_in_header *in,
		      const struct fuse_init_in *ii)
{
	struct fuse_init_out o = {
		.major = FUSE_KERNEL_VERSION,
		.minor = ii->minor < FUSE_KERNEL_MINOR_VERSION ?
			 ii->minor : FUSE_KERNEL_MINOR_VERSION,
		.max_readahead = ii->max_readahead,
		/* Reads in the background, as most servers ask. */
		.flags = ii->flags & FUSE_ASYNC_READ,
		.max_background = 16,
		.congestion_threshold = 12,
		.max_write = PAGE,
		.time_gran = 1,
	};

	fuse_reply(fd, in->unique, 0, &o, sizeof(o));
}

/* Answer one request; a READ is held in @held until @released. */
static void fuse_serve_one(int fd, struct fuse_in_header *in, void *arg,
			   bool released, struct held *held, int *nheld,
			   int seen)
{
	union {
		struct fuse_entry_out e;
		struct fuse_attr_out a;
		struct fuse_open_out o;
	} out;
	struct fuse_read_in *r = arg;

	memset(&out, 0, sizeof(out));
	switch (in->opcode) {
	case FUSE_INIT:
		fuse_init(fd, in, arg);
		break;
	case FUSE_LOOKUP:
		if (in->nodeid != FUSE_ROOT_ID || strcmp(arg, FILE_NAME)) {
			fuse_reply(fd, in->unique, -ENOENT, NULL, 0);
			break;
		}
		out.e.nodeid = FILE_INO;
		out.e.entry_valid = out.e.attr_valid = 3600;
		fill_attr(&out.e.attr, FILE_INO);
		fuse_reply(fd, in->unique, 0, &out.e, sizeof(out.e));
		break;
	case FUSE_GETATTR:
		out.a.attr_valid = 3600;
		fill_attr(&out.a.attr, in->nodeid);
		fuse_reply(fd, in->unique, 0, &out.a, sizeof(out.a));
		break;
	case FUSE_OPEN:
	case FUSE_OPENDIR:
		out.o.fh = 1;
		fuse_reply(fd, in->unique, 0, &out.o, sizeof(out.o));
		break;
	case FUSE_READ:
		if (released || *nheld == 16) {
			fuse_answer_read(fd, in->unique, r->offset, r->size);
			break;
		}
		held[(*nheld)++] = (struct held){ in->unique, r->offset,
						  r->size };
		if (write(seen, "R", 1) != 1)
			_exit(4);
		break;
	case FUSE_FLUSH:
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
	case FUSE_ACCESS:
	case FUSE_DESTROY:
		fuse_reply(fd, in->unique, 0, NULL, 0);
		break;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
		break;		/* no answer expected */
	default:
		fuse_reply(fd, in->unique, -ENOSYS, NULL, 0);
	}
}

/*
 * Serve @fd until the connection goes.  A byte on (or the closing of)
 * @release answers the held READs and every later one at once.
 */
static void fuse_server(int fd, int release, int seen)
{
	size_t size = FUSE_MIN_READ_BUFFER + 128 * 1024;
	char *buf = malloc(size);
	struct held held[16];
	bool released = false;
	int nheld = 0;

	if (!buf)
		_exit(2);
	for (;;) {
		struct pollfd p[2] = { { fd, POLLIN, 0 },
				       { release, POLLIN, 0 } };
		struct fuse_in_header *in = (void *)buf;
		ssize_t n;

		if (poll(p, released ? 1 : 2, -1) < 0)
			continue;
		if (!released && p[1].revents) {
			released = true;
			for (int i = 0; i < nheld; i++)
				fuse_answer_read(fd, held[i].unique,
						 held[i].off, held[i].size);
		}
		if (!p[0].revents)
			continue;
		n = read(fd, buf, size);
		if (n < 0 && errno == ENODEV)
			_exit(0);	/* unmounted or aborted */
		if (n < (ssize_t)sizeof(*in))
			continue;	/* EINTR, ENOENT: the request went */
		buf[n < (ssize_t)size ? n : n - 1] = 0;
		fuse_serve_one(fd, in, in + 1, released, held, &nheld, seen);
	}
}

/* Mount a fresh server on a temporary directory; 0 or a failed step. */
static const char *fuse_start(struct stall *st)
{
	char opts[128];
	int fd;

	if (access("/dev/fuse", F_OK) && system("modprobe fuse"))
		return "modprobe fuse";
	snprintf(st->mnt, sizeof(st->mnt), "/tmp/neighbour_stall.XXXXXX");
	if (!mkdtemp(st->mnt))
		return "mkdtemp";
	snprintf(st->path, sizeof(st->path), "%s/" FILE_NAME, st->mnt);
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return "open /dev/fuse";
	snprintf(opts, sizeof(opts),
		 "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fd);
	if (mount("neighbour_stall", st->mnt, "fuse", MS_NOSUID | MS_NODEV,
		  opts))
		return "mount -t fuse";
	if (pipe(st->release) || pipe(st->seen))
		return "pipe";
	st->server.pid = fork();
	if (st->server.pid < 0)
		return "fork the FUSE server";
	if (st->server.pid == 0) {
		close(st->release[1]);
		close(st->seen[0]);
		fuse_server(fd, st->release[0], st->seen[1]);
	}
	close(fd);
	close(st->release[0]);
	close(st->seen[1]);
	return NULL;
}

static void fuse_release(struct stall *st)
{
	if (st->release[1] >= 0 && write(st->release[1], "g", 1) != 1)
		step_failed("telling the FUSE server to answer");
	close(st->release[1]);
	st->release[1] = -1;
}

static void fuse_stop(struct stall *st)
{
	if (st->mnt[0] && umount2(st->mnt, MNT_DETACH))
		step_failed("umount2 %s: %s", st->mnt, strerror(errno));
	if (st->server.pid > 0 && !st->server.reaped) {
		kill(st->server.pid, SIGKILL);
		reap_by(&st->server, now_ms() + DEADLINE_MS);
	}
	if (st->mnt[0])
		rmdir(st->mnt);
}

/* ---- User A: the one whose mmap_lock stalls. ---- */

static struct stall *a_st;

static void a_failed(const char *step)
{
	a_st->sh->a_err = errno;
	a_st->sh->a_failed = step;
	_exit(1);
}

/* Wait for the test's go, then queue a writer on A's mmap_lock. */
static void *a_mmap_thread(void *arg)
{
	volatile struct shared *sh = a_st->sh;
	void *m;
	char c;

	(void)arg;
	sh->tid[T_MMAP] = gettid();
	if (read(a_st->go[T_MMAP][0], &c, 1) != 1)
		return NULL;
	m = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sh->err[T_MMAP] = m == MAP_FAILED ? errno : 0;
	sh->done[T_MMAP] = m == MAP_FAILED ? -1 : 1;
	return NULL;
}

/* Wait for the test's go, then enter the module behind that writer. */
static void *a_second_thread(void *arg)
{
	struct kdreg2_config_data c = { .max_regions = MAX_REGIONS };
	volatile struct shared *sh = a_st->sh;
	bool ok;
	char ch;

	(void)arg;
	sh->tid[T_SECOND] = gettid();
	if (read(a_st->go[T_SECOND][0], &ch, 1) != 1)
		return NULL;
	if (a_st->mode == MODE_OPEN)
		ok = open(DEVICE, O_RDWR) >= 0;
	else
		ok = !ioctl(a_st->a_fd, KDREG2_IOCTL_CONFIG_DATA, &c);
	sh->err[T_SECOND] = ok ? 0 : errno;
	sh->done[T_SECOND] = ok ? 1 : -1;
	return NULL;
}

static int open_config(void)
{
	struct kdreg2_config_data c = { .max_regions = MAX_REGIONS };
	int fd = open(DEVICE, O_RDWR);

	if (fd >= 0 && ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A's process.  Its threads exist and all its memory is faulted in and
 * locked before the stall: a fault of its own would queue on the stalled
 * lock (6.1 has no per-VMA locks) and make A unkillable for our reasons,
 * not the module's.
 */
static void run_a(struct stall *st)
{
	pthread_t t[T_COUNT];
	pthread_attr_t attr;
	int fd;
	char c;

	a_st = st;
	close(st->exit_go[1]);
	close(st->ready[0]);
	close(st->cmd[1]);
	for (int i = 0; i < T_COUNT; i++)
		close(st->go[i][1]);
	if (pthread_attr_init(&attr) ||
	    pthread_attr_setstacksize(&attr, 256 * 1024) ||
	    pthread_create(&t[T_MMAP], &attr, a_mmap_thread, NULL) ||
	    pthread_create(&t[T_SECOND], &attr, a_second_thread, NULL))
		a_failed("pthread_create");
	while (!st->sh->tid[T_MMAP] || !st->sh->tid[T_SECOND])
		sched_yield();
	if (mlockall(MCL_CURRENT))
		a_failed("mlockall");
	if (setresgid(UID_A, UID_A, UID_A) || setresuid(UID_A, UID_A, UID_A))
		a_failed("setresuid(1000)");
	/* The spare: a configured fd closed with its status area mapped. */
	fd = open_config();
	if (fd < 0 || close(fd))
		a_failed("A's first open + CONFIG_DATA + close");
	if (st->mode == MODE_CONFIG) {
		st->a_fd = open(DEVICE, O_RDWR);
		if (st->a_fd < 0)
			a_failed("A's second open");
	}
	fd = open(st->path, O_RDONLY);
	if (fd < 0)
		a_failed("A's open of the FUSE file");
	st->sh->page = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
	if (st->sh->page == MAP_FAILED)
		a_failed("A's mmap of the FUSE file");
	if (write(st->ready[1], "r", 1) != 1)
		a_failed("telling the test A is ready");
	if (read(st->cmd[0], &c, 1) < 0)
		a_failed("waiting for the end");
	for (int i = 0; i < T_COUNT; i++)
		pthread_join(t[i], NULL);
	_exit(0);
}

/* Root reads A's page through /proc/A/mem: a remote fault. */
static void run_reader(struct stall *st)
{
	char path[64], c = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", st->a.pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		_exit(2);
	if (pread(fd, &c, 1, (off_t)(uintptr_t)st->sh->page) != 1)
		_exit(3);
	_exit(c == FILL ? 0 : 4);
}

/* Wait until thread @i of A sleeps in D (or has returned): whether so. */
static bool a_thread_blocks(struct stall *st, int i, bool may_return)
{
	double end = now_ms() + DEADLINE_MS;
	char s;

	do {
		s = task_state(st->a.pid, st->sh->tid[i]);
		if (s == 'D' || (may_return && st->sh->done[i]))
			return true;
		usleep(1000);
	} while (now_ms() < end);
	return false;
}

static void stall_init(struct stall *st, enum mode mode)
{
	memset(st, 0, sizeof(*st));
	st->mode = mode;
	st->release[1] = st->cmd[1] = st->exit_go[1] = -1;
	st->go[T_MMAP][1] = st->go[T_SECOND][1] = -1;
	st->a_fd = -1;
	st->sh = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(st->sh != MAP_FAILED);
	/* Mounts of this case die with it. */
	ASSERT_OK(unshare(CLONE_NEWNS));
	ASSERT_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
	ASSERT_OK(access(DEVICE, R_OK | W_OK));
}

/*
 * Steps 1 to 4 of the issue.  Each step is checked to be in place before
 * the next: false (and the step named) if one is not.
 */
static bool stall_setup(struct stall *st)
{
	const char *why = fuse_start(st);
	struct pollfd p;
	char c;

	if (why) {
		if (!strcmp(why, "modprobe fuse"))
			SKIP("no FUSE in this kernel");
		step_failed("FUSE set-up: %s: %s", why, strerror(errno));
		return false;
	}
	if (pipe(st->ready) || pipe(st->cmd) || pipe(st->go[0]) ||
	    pipe(st->go[1])) {
		step_failed("pipe");
		return false;
	}
	st->a.pid = fork();
	if (st->a.pid == 0)
		run_a(st);
	close(st->ready[1]);
	close(st->cmd[0]);
	for (int i = 0; i < T_COUNT; i++)
		close(st->go[i][0]);
	p.fd = st->ready[0];
	p.events = POLLIN;
	if (poll(&p, 1, (int)DEADLINE_MS) != 1 ||
	    read(st->ready[0], &c, 1) != 1) {
		errno = st->sh->a_err;
		step_failed("A's set-up: %s: %s", st->sh->a_failed ?: "died",
			    strerror(errno));
		return false;
	}
	/* 2: the remote fault holds A's mmap_lock for reading. */
	st->reader.pid = fork();
	if (st->reader.pid == 0)
		run_reader(st);
	p.fd = st->seen[0];
	p.events = POLLIN;
	if (poll(&p, 1, (int)DEADLINE_MS) != 1 || read(st->seen[0], &c, 1) != 1) {
		step_failed("the /proc/A/mem read's FUSE_READ never reached the server");
		return false;
	}
	usleep(10000);
	if (reap(&st->reader)) {
		step_failed("the /proc/A/mem reader returned (status %#x) though the server holds the READ",
			    st->reader.status);
		return false;
	}
	/* 3: a writer queues behind the reader. */
	if (write(st->go[T_MMAP][1], "g", 1) != 1 ||
	    !a_thread_blocks(st, T_MMAP, false)) {
		step_failed("A's mmap() did not block on the stalled mmap_lock (state %c, done %d)",
			    task_state(st->a.pid, st->sh->tid[T_MMAP]) ?: '-',
			    st->sh->done[T_MMAP]);
		return false;
	}
	/* 4: A enters the module; it may block (today's module does). */
	if (write(st->go[T_SECOND][1], "g", 1) != 1 ||
	    !a_thread_blocks(st, T_SECOND, true)) {
		step_failed("A's %s neither blocked nor returned",
			    st->mode == MODE_OPEN ? "open" : "CONFIG_DATA");
		return false;
	}
	tap_diag("stall in place: reader %c, A's mmap() %c in %s, A's %s %s",
		 task_state(st->reader.pid, st->reader.pid),
		 task_state(st->a.pid, st->sh->tid[T_MMAP]),
		 task_wchan(st->a.pid, st->sh->tid[T_MMAP]),
		 st->mode == MODE_OPEN ? "open" : "CONFIG_DATA",
		 st->sh->done[T_SECOND] ? "returned" :
		 task_wchan(st->a.pid, st->sh->tid[T_SECOND]));
	return true;
}

/* ---- The neighbours: other users, other misc devices. ---- */

static void nb_step(volatile struct neighbour *n, const char *doing, bool ok)
{
	if (!ok) {
		n->err = errno;
		n->done = -1;
		_exit(1);
	}
	n->doing = doing;
}

static void as_user(uid_t uid)
{
	if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
		_exit(2);
}

/* B: open, CONFIG_DATA, close. */
static void nb_close(volatile struct neighbour *n)
{
	struct kdreg2_config_data c = { .max_regions = MAX_REGIONS };
	int fd;

	as_user(UID_B);
	n->t0 = now_ms();
	n->doing = "open " DEVICE;
	fd = open(DEVICE, O_RDWR);
	nb_step(n, "CONFIG_DATA", fd >= 0);
	nb_step(n, "close", !ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	nb_step(n, "", !close(fd));
}

/* B forks a child that opens, configures and exits with the fd open. */
static void nb_child(volatile struct neighbour *n)
{
	int status;
	pid_t pid;

	as_user(UID_B);
	n->t0 = now_ms();
	n->doing = "the child's open " DEVICE;
	pid = fork();
	if (pid == 0) {
		int fd = open(DEVICE, O_RDWR);
		struct kdreg2_config_data c = { .max_regions = MAX_REGIONS };

		nb_step(n, "the child's CONFIG_DATA", fd >= 0);
		nb_step(n, "the child's exit with a configured fd",
			!ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
		_exit(0);
	}
	nb_step(n, n->doing, pid > 0 && waitpid(pid, &status, 0) == pid);
	if (status)
		_exit(1);	/* the child said which step failed */
	n->doing = "";
}

static const char nb_waiting[] = "waiting for the stall";

/*
 * B's child configured before the stall exits during it.  Its start is
 * the test's go, so the latency counts from then.
 */
static void nb_exit(volatile struct neighbour *n, int go)
{
	int status, ready[2];
	pid_t pid;
	char c;

	as_user(UID_B);
	n->doing = "the pre-stall child's open + CONFIG_DATA";
	if (pipe(ready))
		_exit(1);
	pid = fork();
	if (pid == 0) {
		nb_step(n, n->doing,
			open_config() >= 0 && write(ready[1], "r", 1) == 1);
		if (read(go, &c, 1) != 1)
			_exit(1);
		n->doing = "the exit of a child with a configured fd";
		_exit(0);
	}
	close(ready[1]);
	nb_step(n, nb_waiting, pid > 0 && read(ready[0], &c, 1) == 1);
	waitpid(pid, &status, 0);
	if (status)
		_exit(1);
	n->doing = "";
}

/* Root opens another misc device. */
static void nb_fuse(volatile struct neighbour *n)
{
	int fd;

	n->t0 = now_ms();
	n->doing = "open /dev/fuse";
	fd = open("/dev/fuse", O_RDWR);
	nb_step(n, "close /dev/fuse", fd >= 0);
	nb_step(n, "", !close(fd));
}

static void nb_finish(volatile struct neighbour *n)
{
	n->ms = now_ms() - n->t0;
	n->done = 1;
	_exit(0);
}

static void nb_spawn(struct stall *st, int i, const char *what)
{
	volatile struct neighbour *n = &st->sh->nb[i];

	n->what = what;
	n->doing = "fork";
	st->nb[i].pid = fork();
	if (st->nb[i].pid)
		return;
	close(st->exit_go[1]);
	switch (i) {
	case N_CLOSE:
		nb_close(n);
		break;
	case N_CHILD:
		nb_child(n);
		break;
	case N_EXIT:
		nb_exit(n, st->exit_go[0]);
		break;
	case N_FUSE:
		nb_fuse(n);
		break;
	}
	nb_finish(n);
}

/* Made before the stall: B's child that will exit during it. */
static bool nb_prepare(struct stall *st)
{
	double end = now_ms() + DEADLINE_MS;
	volatile struct neighbour *n = &st->sh->nb[N_EXIT];

	if (pipe(st->exit_go)) {
		step_failed("pipe");
		return false;
	}
	nb_spawn(st, N_EXIT, "B's configured child's exit (reaped)");
	close(st->exit_go[0]);
	while (n->doing != nb_waiting && !n->done && now_ms() < end)
		usleep(1000);
	if (n->done || now_ms() >= end) {
		errno = n->err;
		step_failed("%s: %s failed before the stall: %s", n->what,
			    n->doing, strerror(errno));
		return false;
	}
	return true;
}

/*
 * Everybody else proceeds while the server still holds the read: each
 * completes before the deadline, and the stall is still in place then.
 */
static void neighbours_proceed(struct stall *st)
{
	static const char *const what[N_COUNT] = {
		[N_CLOSE] = "B open+CONFIG_DATA+close",
		[N_CHILD] = "B's child open+CONFIG_DATA+exit (reaped)",
		[N_FUSE] = "root open+close /dev/fuse",
	};
	volatile struct neighbour *nb = st->sh->nb;
	double end = now_ms() + DEADLINE_MS;
	bool all;

	st->sh->nb[N_EXIT].t0 = now_ms();
	if (write(st->exit_go[1], "g", 1) != 1)
		step_failed("telling B's configured child to exit");
	for (int i = 0; i < N_COUNT; i++)
		if (i != N_EXIT)
			nb_spawn(st, i, what[i]);
	do {
		all = true;
		for (int i = 0; i < N_COUNT; i++)
			all &= nb[i].done != 0;
		if (!all)
			usleep(1000);
	} while (!all && now_ms() < end);
	/* The order that matters: all of that before the server answers. */
	if (reap(&st->reader) || task_state(st->a.pid, st->sh->tid[T_MMAP]) != 'D')
		step_failed("the stall ended before the neighbours were checked");
	for (int i = 0; i < N_COUNT; i++) {
		errno = nb[i].err;
		if (nb[i].done > 0)
			tap_diag("%s %.1f ms", nb[i].what, nb[i].ms);
		else if (nb[i].done < 0)
			step_failed("%s: %s failed: %s", nb[i].what,
				    nb[i].doing, strerror(errno));
		else
			step_failed("%s did not complete in %.0f s while A's mmap_lock was stalled: stuck in %s",
				    nb[i].what, DEADLINE_MS / 1e3, nb[i].doing);
	}
}

/* Does any thread of this case's processes sleep in D? */
static void nothing_in_d(void)
{
	char path[600], buf[512], *p, state;
	struct dirent *pd, *td;
	DIR *procs, *tasks;
	int pgrp, fd;
	ssize_t n;

	procs = opendir("/proc");
	if (!procs)
		return;
	while ((pd = readdir(procs))) {
		snprintf(path, sizeof(path), "/proc/%s/task", pd->d_name);
		if (pd->d_name[0] < '1' || pd->d_name[0] > '9')
			continue;
		tasks = opendir(path);
		if (!tasks)
			continue;
		while ((td = readdir(tasks))) {
			snprintf(path, sizeof(path), "/proc/%s/task/%s/stat",
				 pd->d_name, td->d_name);
			fd = open(path, O_RDONLY);
			n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
			if (fd >= 0)
				close(fd);
			if (n <= 0)
				continue;
			buf[n] = 0;
			p = strrchr(buf, ')');
			if (p && sscanf(p + 1, " %c %*d %d", &state, &pgrp) == 2 &&
			    pgrp == getpgrp() && state == 'D')
				step_failed("task %s of %s is still in D (%s)",
					    td->d_name, pd->d_name, buf);
		}
		closedir(tasks);
	}
	closedir(procs);
}

/*
 * The server answers; then the reader, A and every neighbour finish, and
 * nothing is left sleeping in the kernel (rmmod must work after us).
 */
static void stall_unwind(struct stall *st, bool a_killed)
{
	double end;
	char s;

	fuse_release(st);
	end = now_ms() + DEADLINE_MS;
	if (st->reader.pid > 0) {
		if (!reap_by(&st->reader, end))
			step_failed("the /proc/A/mem reader did not return after the server answered");
		else if (!a_killed)
			EXPECT_EQ(st->reader.status, 0);
	}
	if (st->a.pid > 0 && !a_killed) {
		/* Threads that never got their go end too. */
		for (int i = 0; i < T_COUNT; i++)
			close(st->go[i][1]);
		close(st->cmd[1]);
		if (!reap_by(&st->a, end)) {
			s = task_state(st->a.pid, st->sh->tid[T_SECOND]);
			step_failed("A did not finish after the server answered (its second thread: %c %s)",
				    s ?: '-',
				    task_wchan(st->a.pid, st->sh->tid[T_SECOND]));
		} else if (st->sh->tid[T_SECOND]) {
			EXPECT_EQ(st->a.status, 0);
			EXPECT_EQ(st->sh->done[T_MMAP], 1);
			EXPECT_EQ(st->sh->done[T_SECOND], 1);
		}
	} else if (st->a.pid > 0 && !reap_by(&st->a, end)) {
		step_failed("the SIGKILLed A was not reaped after the server answered");
	}
	close(st->exit_go[1]);
	for (int i = 0; i < N_COUNT; i++)
		if (st->nb[i].pid > 0 && !reap_by(&st->nb[i], end))
			step_failed("%s still not done after the server answered",
				    st->sh->nb[i].what);
	nothing_in_d();
	fuse_stop(st);
}

static void neighbours_case(enum mode mode)
{
	struct stall st;

	stall_init(&st, mode);
	if (nb_prepare(&st) && stall_setup(&st))
		neighbours_proceed(&st);
	stall_unwind(&st, false);
}

/*
 * Stall in "open" mode: misc_open() holds misc_mtx while the module's open
 * waits for A's mmap_lock.
 */
TEST(open_mode_neighbours_proceed)
{
	neighbours_case(MODE_OPEN);
}

/* Stall in "config" mode: CONFIG_DATA reads A's maps for its spare. */
TEST(config_mode_neighbours_proceed)
{
	neighbours_case(MODE_CONFIG);
}

/* The stalled user itself dies of SIGKILL before the server answers. */
static void kill_case(enum mode mode)
{
	struct stall st;
	double t0;

	stall_init(&st, mode);
	if (stall_setup(&st)) {
		t0 = now_ms();
		ASSERT_OK(kill(st.a.pid, SIGKILL));
		if (reap_by(&st.a, t0 + DEADLINE_MS) && !reap(&st.reader))
			tap_diag("A reaped %.1f ms after SIGKILL",
				 now_ms() - t0);
		else
			step_failed("the SIGKILLed A was not reaped in %.0f s while the server held the READ (A's %s thread: %c %s)",
				    DEADLINE_MS / 1e3,
				    mode == MODE_OPEN ? "open" : "CONFIG_DATA",
				    task_state(st.a.pid, st.sh->tid[T_SECOND]) ?: '-',
				    task_wchan(st.a.pid, st.sh->tid[T_SECOND]));
	}
	stall_unwind(&st, true);
}

/*
 * A's CONFIG_DATA waits for its own mmap_lock: A must still die.  (The
 * SIGKILL takes A's mmap() writer out of the queue, so the CONFIG_DATA's
 * read lock is granted beside the reader's: today's module passes this.)
 */
TEST(stalled_user_can_be_killed)
{
	kill_case(MODE_CONFIG);
}

/*
 * A's open waits to take its own mmap_lock for writing, which no signal
 * ends (mmu_notifier_get): A must still die.
 */
TEST(stalled_user_can_be_killed_in_open)
{
	kill_case(MODE_OPEN);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
