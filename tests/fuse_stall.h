/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * One unprivileged user's mmap_lock, stalled on purpose (issue 29), for
 * tests/guest/neighbour_stall.c and bench/neighbour_stall_bench.c.
 *
 * User A (uid 1000) maps a page of a FUSE file whose server, a child
 * speaking the raw /dev/fuse protocol, holds every FUSE_READ until told to
 * answer; root reads that page through /proc/A/mem, a remote fault that
 * cannot drop A's mmap_lock, so the read lock is held until the server
 * answers.  A thread of A queues a writer (mmap) and another then enters
 * the module: an open (mode "open") or a CONFIG_DATA that reuses A's spare
 * status area (mode "config").
 *
 *	struct stall st;
 *
 *	if (!stall_init(&st, MODE_OPEN))
 *		...;
 *	if (stall_setup(&st))
 *		... everybody else must proceed here ...;
 *	stall_end(&st, false);	(the server answers, A and the reader finish)
 *	fuse_stop(&st);		(unmount, the server goes)
 *
 * Needs root, and CLONE_NEWNS (stall_init() enters a mount namespace of
 * its own, so the mount dies with the caller).  Every step that fails is
 * reported through stall_failed(), which the includer defines; a kernel
 * without FUSE sets st->no_fuse instead.
 */
#ifndef MAPWATCH_FUSE_STALL_H
#define MAPWATCH_FUSE_STALL_H

/* The includer defines _GNU_SOURCE before its first #include. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kdreg2.h"

#define PAGE 4096UL
#define DEVICE "/dev/kdreg2"
#define UID_A 1000
#define MAX_REGIONS 1024
#define DEADLINE_MS 30000.0
#define FILE_NAME "page"
#define FILE_INO 2
#define FILL 'M'

/* Defined by the includer: a step of the stall failed. */
static void stall_failed(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

enum mode { MODE_OPEN, MODE_CONFIG };

/* What A's threads do once the stall is in place. */
enum { T_MMAP, T_SECOND, T_COUNT };

/* Shared by A and the caller (MAP_SHARED). */
struct stall_shared {
	void *page;			/* where A mapped the FUSE page */
	const char *a_failed;		/* the set-up step A failed at */
	int a_err;
	pid_t tid[T_COUNT];
	int done[T_COUNT];		/* 1 returned, -1 failed */
	int err[T_COUNT];
};

struct proc {
	pid_t pid;
	int status;
	bool reaped;
};

struct stall {
	enum mode mode;
	bool no_fuse;			/* this kernel has no FUSE */
	volatile struct stall_shared *sh;
	char mnt[64];
	char path[96];
	struct proc server, a, reader;
	int release[2];			/* caller -> server: answer the reads */
	int seen[2];			/* server -> caller: a READ is held */
	int go[T_COUNT][2];		/* caller -> A's threads */
	int cmd[2];			/* caller -> A: join and exit */
	int ready[2];			/* A -> caller: set up */
	int a_fd;			/* A's fd opened before the stall */
	int keep_out_fd;		/* the caller's, not to be kept by A */
};

static inline double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Has @p exited?  Reaps it once. */
static inline bool reap(struct proc *p)
{
	if (!p->reaped && p->pid > 0 &&
	    waitpid(p->pid, &p->status, WNOHANG) == p->pid)
		p->reaped = true;
	return p->reaped;
}

static inline bool reap_by(struct proc *p, double deadline)
{
	while (!reap(p) && now_ms() < deadline)
		usleep(1000);
	return p->reaped;
}

/* The state letter of thread @tid of @pid (R, S, D, Z...), 0 if gone. */
static inline char task_state(pid_t pid, pid_t tid)
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
static inline const char *task_wchan(pid_t pid, pid_t tid)
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

/* An open + CONFIG_DATA(MAX_REGIONS) of the device: the fd or -1. */
static inline int open_config(void)
{
	struct kdreg2_config_data c = { .max_regions = MAX_REGIONS };
	int fd = open(DEVICE, O_RDWR);

	if (fd >= 0 && ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- The FUSE server: one directory, one file of one page. ---- */

static inline void fuse_reply(int fd, uint64_t unique, int error,
			      const void *arg, size_t len)
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

static inline void fill_attr(struct fuse_attr *a, uint64_t ino)
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

static inline void fuse_answer_read(int fd, uint64_t unique, uint64_t off,
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

static inline void fuse_init(int fd, struct fuse_in_header *in,
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
static inline void fuse_serve_one(int fd, struct fuse_in_header *in,
				  void *arg, bool released,
				  struct held *held, int *nheld, int seen)
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
static inline void fuse_server(int fd, int release, int seen)
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
static inline const char *fuse_start(struct stall *st)
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

/* The server answers the held READs and every later one. */
static inline void fuse_release(struct stall *st)
{
	if (st->release[1] >= 0 && write(st->release[1], "g", 1) != 1)
		stall_failed("telling the FUSE server to answer");
	close(st->release[1]);
	st->release[1] = -1;
}

static inline void fuse_stop(struct stall *st)
{
	if (st->mnt[0] && umount2(st->mnt, MNT_DETACH))
		stall_failed("umount2 %s: %s", st->mnt, strerror(errno));
	if (st->server.pid > 0 && !st->server.reaped) {
		kill(st->server.pid, SIGKILL);
		reap_by(&st->server, now_ms() + DEADLINE_MS);
	}
	if (st->mnt[0])
		rmdir(st->mnt);
}

/* ---- User A: the one whose mmap_lock stalls. ---- */

static struct stall *a_st;

static inline void a_failed(const char *step)
{
	a_st->sh->a_err = errno;
	a_st->sh->a_failed = step;
	_exit(1);
}

/* Wait for the caller's go, then queue a writer on A's mmap_lock. */
static inline void *a_mmap_thread(void *arg)
{
	volatile struct stall_shared *sh = a_st->sh;
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

/* Wait for the caller's go, then enter the module behind that writer. */
static inline void *a_second_thread(void *arg)
{
	struct kdreg2_config_data c = { .max_regions = MAX_REGIONS };
	volatile struct stall_shared *sh = a_st->sh;
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

/*
 * A's process.  Its threads exist and all its memory is faulted in and
 * locked before the stall: a fault of its own would queue on the stalled
 * lock (6.1 has no per-VMA locks) and make A unkillable for our reasons,
 * not the module's.
 */
static inline void run_a(struct stall *st)
{
	pthread_t t[T_COUNT];
	pthread_attr_t attr;
	int fd;
	char c;

	a_st = st;
	if (st->keep_out_fd >= 0)
		close(st->keep_out_fd);
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
		a_failed("telling the caller A is ready");
	if (read(st->cmd[0], &c, 1) < 0)
		a_failed("waiting for the end");
	for (int i = 0; i < T_COUNT; i++)
		pthread_join(t[i], NULL);
	_exit(0);
}

/* Root reads A's page through /proc/A/mem: a remote fault. */
static inline void run_reader(struct stall *st)
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
static inline bool a_thread_blocks(struct stall *st, int i, bool may_return)
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

/* Is the stall still in place: the reader held, A's writer queued? */
static inline bool stall_holds(struct stall *st)
{
	return !reap(&st->reader) &&
	       task_state(st->a.pid, st->sh->tid[T_MMAP]) == 'D';
}

/* A fresh stall of @mode, not yet set up; false (reported) on failure. */
static inline bool stall_init(struct stall *st, enum mode mode)
{
	memset(st, 0, sizeof(*st));
	st->mode = mode;
	st->release[1] = st->cmd[1] = -1;
	st->go[T_MMAP][1] = st->go[T_SECOND][1] = -1;
	st->a_fd = st->keep_out_fd = -1;
	st->sh = mmap(NULL, sizeof(struct stall_shared),
		      PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	if (st->sh == MAP_FAILED) {
		st->sh = NULL;
		stall_failed("mmap the shared state: %s", strerror(errno));
		return false;
	}
	/* Mounts of this stall die with the caller. */
	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		stall_failed("a mount namespace of our own: %s",
			     strerror(errno));
		return false;
	}
	if (access(DEVICE, R_OK | W_OK)) {
		stall_failed("access " DEVICE ": %s", strerror(errno));
		return false;
	}
	return true;
}

/*
 * Steps 1 to 4 of the issue.  Each step is checked to be in place before
 * the next: false (and the step named, or st->no_fuse set) if one is not.
 */
static inline bool stall_setup(struct stall *st)
{
	const char *why = fuse_start(st);
	struct pollfd p;
	char c;

	if (why) {
		if (!strcmp(why, "modprobe fuse"))
			st->no_fuse = true;
		else
			stall_failed("FUSE set-up: %s: %s", why,
				     strerror(errno));
		return false;
	}
	if (pipe(st->ready) || pipe(st->cmd) || pipe(st->go[0]) ||
	    pipe(st->go[1])) {
		stall_failed("pipe");
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
		stall_failed("A's set-up: %s: %s", st->sh->a_failed ?: "died",
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
		stall_failed("the /proc/A/mem read's FUSE_READ never reached the server");
		return false;
	}
	usleep(10000);
	if (reap(&st->reader)) {
		stall_failed("the /proc/A/mem reader returned (status %#x) though the server holds the READ",
			     st->reader.status);
		return false;
	}
	/* 3: a writer queues behind the reader. */
	if (write(st->go[T_MMAP][1], "g", 1) != 1 ||
	    !a_thread_blocks(st, T_MMAP, false)) {
		stall_failed("A's mmap() did not block on the stalled mmap_lock (state %c, done %d)",
			     task_state(st->a.pid, st->sh->tid[T_MMAP]) ?: '-',
			     st->sh->done[T_MMAP]);
		return false;
	}
	/* 4: A enters the module; it may block (today's module does). */
	if (write(st->go[T_SECOND][1], "g", 1) != 1 ||
	    !a_thread_blocks(st, T_SECOND, true)) {
		stall_failed("A's %s neither blocked nor returned",
			     st->mode == MODE_OPEN ? "open" : "CONFIG_DATA");
		return false;
	}
	return true;
}

/*
 * The server answers; then the reader and A finish (A is reaped either
 * way; @a_killed: it was SIGKILLed, its results are not checked).
 */
static inline void stall_end(struct stall *st, bool a_killed)
{
	double end;
	char s;

	fuse_release(st);
	end = now_ms() + DEADLINE_MS;
	if (st->reader.pid > 0) {
		if (!reap_by(&st->reader, end))
			stall_failed("the /proc/A/mem reader did not return after the server answered");
		else if (!a_killed && st->reader.status)
			stall_failed("the /proc/A/mem reader ended with status %#x",
				     st->reader.status);
	}
	if (st->a.pid > 0 && !a_killed) {
		/* Threads that never got their go end too. */
		for (int i = 0; i < T_COUNT; i++)
			close(st->go[i][1]);
		close(st->cmd[1]);
		if (!reap_by(&st->a, end)) {
			s = task_state(st->a.pid, st->sh->tid[T_SECOND]);
			stall_failed("A did not finish after the server answered (its second thread: %c %s)",
				     s ?: '-',
				     task_wchan(st->a.pid, st->sh->tid[T_SECOND]));
		} else if (st->sh->tid[T_SECOND] &&
			   (st->a.status || st->sh->done[T_MMAP] != 1 ||
			    st->sh->done[T_SECOND] != 1)) {
			stall_failed("A ended with status %#x, its mmap() %d (errno %d), its %s %d (errno %d)",
				     st->a.status, st->sh->done[T_MMAP],
				     st->sh->err[T_MMAP],
				     st->mode == MODE_OPEN ? "open" : "CONFIG_DATA",
				     st->sh->done[T_SECOND],
				     st->sh->err[T_SECOND]);
		}
	} else if (st->a.pid > 0 && !reap_by(&st->a, end)) {
		stall_failed("the SIGKILLed A was not reaped after the server answered");
	}
}

#endif /* MAPWATCH_FUSE_STALL_H */
