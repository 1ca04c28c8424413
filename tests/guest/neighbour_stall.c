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
 * the module can be unloaded.  The stall itself is tests/fuse_stall.h,
 * which bench/neighbour_stall_bench.c (figure 11) shares.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <sys/prctl.h>

#include "tap.h"
#include "fuse_stall.h"

#define UID_B 1001

/* The others, each in a process of its own. */
enum { N_CLOSE, N_CHILD, N_EXIT, N_FUSE, N_COUNT };

struct neighbour {
	const char *what;
	const char *doing;		/* the step it is in now */
	int done;			/* 1 completed, -1 a step failed */
	int err;
	double t0, ms;
};

/* The stall, and the neighbours that must proceed while it holds. */
struct nb_case {
	struct stall st;
	volatile struct neighbour *sh;	/* MAP_SHARED: [N_COUNT] */
	struct proc nb[N_COUNT];
	int exit_go[2];			/* test -> the configured child of B */
};

static void stall_failed(const char *fmt, ...)
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

static void case_init(struct nb_case *c, enum mode mode)
{
	memset(c, 0, sizeof(*c));
	ASSERT_TRUE(stall_init(&c->st, mode));
	c->exit_go[1] = -1;
	c->sh = mmap(NULL, N_COUNT * sizeof(struct neighbour),
		     PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(c->sh != MAP_FAILED);
}

/* The stall of fuse_stall.h, in place and logged; SKIP without FUSE. */
static bool case_setup(struct nb_case *c)
{
	struct stall *st = &c->st;

	st->keep_out_fd = c->exit_go[1];
	if (!stall_setup(st)) {
		if (st->no_fuse)
			SKIP("no FUSE in this kernel");
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

static void nb_spawn(struct nb_case *c, int i, const char *what)
{
	volatile struct neighbour *n = &c->sh[i];

	n->what = what;
	n->doing = "fork";
	c->nb[i].pid = fork();
	if (c->nb[i].pid)
		return;
	close(c->exit_go[1]);
	switch (i) {
	case N_CLOSE:
		nb_close(n);
		break;
	case N_CHILD:
		nb_child(n);
		break;
	case N_EXIT:
		nb_exit(n, c->exit_go[0]);
		break;
	case N_FUSE:
		nb_fuse(n);
		break;
	}
	nb_finish(n);
}

/* Made before the stall: B's child that will exit during it. */
static bool nb_prepare(struct nb_case *c)
{
	double end = now_ms() + DEADLINE_MS;
	volatile struct neighbour *n = &c->sh[N_EXIT];

	if (pipe(c->exit_go)) {
		stall_failed("pipe");
		return false;
	}
	nb_spawn(c, N_EXIT, "B's configured child's exit (reaped)");
	close(c->exit_go[0]);
	while (n->doing != nb_waiting && !n->done && now_ms() < end)
		usleep(1000);
	if (n->done || now_ms() >= end) {
		errno = n->err;
		stall_failed("%s: %s failed before the stall: %s", n->what,
			     n->doing, strerror(errno));
		return false;
	}
	return true;
}

/*
 * Everybody else proceeds while the server still holds the read: each
 * completes before the deadline, and the stall is still in place then.
 */
static void neighbours_proceed(struct nb_case *c)
{
	static const char *const what[N_COUNT] = {
		[N_CLOSE] = "B open+CONFIG_DATA+close",
		[N_CHILD] = "B's child open+CONFIG_DATA+exit (reaped)",
		[N_FUSE] = "root open+close /dev/fuse",
	};
	volatile struct neighbour *nb = c->sh;
	double end = now_ms() + DEADLINE_MS;
	bool all;

	nb[N_EXIT].t0 = now_ms();
	if (write(c->exit_go[1], "g", 1) != 1)
		stall_failed("telling B's configured child to exit");
	for (int i = 0; i < N_COUNT; i++)
		if (i != N_EXIT)
			nb_spawn(c, i, what[i]);
	do {
		all = true;
		for (int i = 0; i < N_COUNT; i++)
			all &= nb[i].done != 0;
		if (!all)
			usleep(1000);
	} while (!all && now_ms() < end);
	/* The order that matters: all of that before the server answers. */
	if (!stall_holds(&c->st))
		stall_failed("the stall ended before the neighbours were checked");
	for (int i = 0; i < N_COUNT; i++) {
		errno = nb[i].err;
		if (nb[i].done > 0)
			tap_diag("%s %.1f ms", nb[i].what, nb[i].ms);
		else if (nb[i].done < 0)
			stall_failed("%s: %s failed: %s", nb[i].what,
				     nb[i].doing, strerror(errno));
		else
			stall_failed("%s did not complete in %.0f s while A's mmap_lock was stalled: stuck in %s",
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
				stall_failed("task %s of %s is still in D (%s)",
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
static void case_unwind(struct nb_case *c, bool a_killed)
{
	double end;

	stall_end(&c->st, a_killed);
	end = now_ms() + DEADLINE_MS;
	close(c->exit_go[1]);
	for (int i = 0; i < N_COUNT; i++)
		if (c->nb[i].pid > 0 && !reap_by(&c->nb[i], end))
			stall_failed("%s still not done after the server answered",
				     c->sh[i].what);
	nothing_in_d();
	fuse_stop(&c->st);
}

static void neighbours_case(enum mode mode)
{
	struct nb_case c;

	case_init(&c, mode);
	if (nb_prepare(&c) && case_setup(&c))
		neighbours_proceed(&c);
	case_unwind(&c, false);
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
	struct nb_case c;
	struct stall *st = &c.st;
	double t0;

	case_init(&c, mode);
	if (case_setup(&c)) {
		t0 = now_ms();
		ASSERT_OK(kill(st->a.pid, SIGKILL));
		if (reap_by(&st->a, t0 + DEADLINE_MS) && !reap(&st->reader))
			tap_diag("A reaped %.1f ms after SIGKILL",
				 now_ms() - t0);
		else
			stall_failed("the SIGKILLed A was not reaped in %.0f s while the server held the READ (A's %s thread: %c %s)",
				     DEADLINE_MS / 1e3,
				     mode == MODE_OPEN ? "open" : "CONFIG_DATA",
				     task_state(st->a.pid, st->sh->tid[T_SECOND]) ?: '-',
				     task_wchan(st->a.pid, st->sh->tid[T_SECOND]));
	}
	case_unwind(&c, true);
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
