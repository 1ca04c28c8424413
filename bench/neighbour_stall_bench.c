// SPDX-License-Identifier: GPL-2.0-only
/*
 * Figure 11 of bench/README.md: what one user's stalled mmap_lock costs
 * everybody else (issue 29).  User A's lock is held by a /proc/A/mem reader
 * faulting on a FUSE page whose READ the server holds, a writer of A is
 * queued behind it, and another thread of A is inside the module: an open
 * (mode "open") or a CONFIG_DATA (mode "config"); tests/fuse_stall.h sets
 * that up, tests/guest/neighbour_stall.c asserts that the others proceed.
 * Here, while it holds, user B (uid 1001) measures
 *   - open + CONFIG_DATA(1024) + close, and
 *   - the exit of a child with a configured fd (until its parent reaps it),
 * next to the same operations with no stall in the same process and boot.
 * One sample is the median of many such operations, each timed alone (the
 * host's load shows up as outliers, not as a shift); each round takes one
 * sample of each, baseline and stalled, in turns (the first of the two
 * alternates); a figure is the median over the rounds.  Goal: a
 * ratio of about 1, a stalled neighbour costs nothing.  A neighbour still
 * waiting after WAIT_MS is a failure: the server is then told to answer,
 * and the time measured includes the stall.  Needs root (the guest).
 *
 * usage: neighbour_stall_bench [--quick] [--verbose] [--json FILE] [--rounds N]
 * (--verbose: every round's samples on stderr)
 */
#define _GNU_SOURCE
#include "fuse_stall.h"
#include "bench.h"

#define UID_B 1001
#define REPS 5
#define WAIT_MS 10000.0

static bool quick, verbose;
static FILE *json;
static int json_rows;
static bool failed;

static void row(const char *fig, const char *what, double value,
		const char *unit, double ratio, const char *baseline)
{
	printf("%-4s %-52s %12.1f %-8s %8.2fx  %s\n", fig, what, value, unit,
	       ratio, baseline);
	if (json)
		fprintf(json, "%s{\"figure\":\"%s\",\"what\":\"%s\",\"value\":%.3f,"
			"\"unit\":\"%s\",\"ratio\":%.4f,\"baseline\":\"%s\"}",
			json_rows++ ? ",\n" : "", fig, what, value, unit, ratio,
			baseline);
}

static void die(const char *what)
{
	fprintf(stderr, "neighbour_stall_bench: %s: %s\n", what,
		strerror(errno));
	exit(1);
}

static void stall_failed(const char *fmt, ...)
{
	va_list ap;

	fputs("neighbour_stall_bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	failed = true;
}

static void as_user(uid_t uid)
{
	if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
		_exit(2);
}

static void put(int fd, double v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v))
		_exit(3);
}

/*
 * A result (microseconds per operation) on @fd from @p.  If none came in
 * WAIT_MS while @st held, the neighbour is stalled: the server answers,
 * and the result still counts (it includes the stall).  Negative: failed.
 */
static double await(int fd, struct proc *p, struct stall *st, int *stalls)
{
	struct pollfd pf = { fd, POLLIN, 0 };
	double v = -1;

	if (poll(&pf, 1, (int)WAIT_MS) != 1 && st) {
		(*stalls)++;
		fuse_release(st);
		poll(&pf, 1, (int)DEADLINE_MS);
	}
	if (!pf.revents || read(fd, &v, sizeof(v)) != sizeof(v))
		v = -1;
	if (p && !reap_by(p, now_ms() + DEADLINE_MS)) {
		kill(p->pid, SIGKILL);
		reap_by(p, now_ms() + DEADLINE_MS);
	}
	return v;
}

/*
 * B: @iters times open + CONFIG_DATA + close, in a process of its own;
 * the median time of one.
 */
static double b_open_config_close(int iters, struct stall *st, int *stalls)
{
	struct proc p = { 0 };
	int res[2];
	double v;

	if (pipe(res))
		die("pipe");
	fflush(NULL);
	p.pid = fork();
	if (p.pid < 0)
		die("fork");
	if (p.pid == 0) {
		double us[iters];

		close(res[0]);
		as_user(UID_B);
		for (int i = 0; i < iters; i++) {
			double t = now_ns();
			int fd = open_config();

			if (fd < 0 || close(fd))
				put(res[1], -1), _exit(1);
			us[i] = (now_ns() - t) / 1e3;
		}
		put(res[1], median(us, iters));
		_exit(0);
	}
	close(res[1]);
	v = await(res[0], &p, st, stalls);
	close(res[0]);
	return v;
}

/*
 * B's process with @n children, each with a configured fd, waiting to
 * exit (made before any stall: what exits is configured already).
 */
struct exiters {
	struct proc p;
	int cmd, res;
};

static void exiters_run(int n, int cmd, int res)
{
	int go[n][2], ready[2];
	pid_t pid[n];
	double v[n];
	char c;

	as_user(UID_B);
	if (pipe(ready))
		_exit(1);
	/* A pipe each: a go wakes the one child that is to exit, no other. */
	for (int i = 0; i < n; i++) {
		if (pipe(go[i]))
			_exit(1);
		pid[i] = fork();
		if (pid[i] < 0)
			_exit(1);
		if (pid[i] == 0) {
			close(go[i][1]);
			close(ready[0]);
			if (open_config() < 0 || write(ready[1], "r", 1) != 1)
				_exit(1);
			if (read(go[i][0], &c, 1) != 1)
				_exit(1);
			_exit(0);	/* with the configured fd open */
		}
		close(go[i][0]);
	}
	close(ready[1]);
	for (int i = 0; i < n; i++)
		if (read(ready[0], &c, 1) != 1)
			put(res, -1), _exit(1);
	put(res, 0);			/* all configured */
	if (read(cmd, &c, 1) != 1)
		_exit(1);
	for (int i = 0; i < n; i++) {
		double t = now_ns();
		int status;

		if (write(go[i][1], "g", 1) != 1 ||
		    waitpid(pid[i], &status, 0) != pid[i] || status)
			put(res, -1), _exit(1);
		v[i] = (now_ns() - t) / 1e3;
	}
	put(res, median(v, n));
	_exit(0);
}

static void exiters_start(struct exiters *e, int n)
{
	int cmd[2], res[2], stalls = 0;

	if (pipe(cmd) || pipe(res))
		die("pipe");
	fflush(NULL);
	memset(&e->p, 0, sizeof(e->p));
	e->p.pid = fork();
	if (e->p.pid < 0)
		die("fork");
	if (e->p.pid == 0) {
		close(cmd[1]);
		close(res[0]);
		exiters_run(n, cmd[0], res[1]);
	}
	close(cmd[0]);
	close(res[1]);
	e->cmd = cmd[1];
	e->res = res[0];
	if (await(e->res, NULL, NULL, &stalls) != 0)
		die("B's children's open + CONFIG_DATA");
}

/* Let them exit one by one: the median microseconds from go to reaped. */
static double exiters_measure(struct exiters *e, struct stall *st,
			      int *stalls)
{
	double v = -1;

	if (write(e->cmd, "m", 1) == 1)
		v = await(e->res, &e->p, st, stalls);
	close(e->cmd);
	close(e->res);
	return v;
}

struct sample {
	double close_us, exit_us;
};

/* How many operations one sample is the median of. */
static int close_iters, exit_iters;

static void measure(struct sample *s, struct exiters *e, struct stall *st,
		    int *stalls)
{
	s->close_us = b_open_config_close(close_iters, st, stalls);
	s->exit_us = exiters_measure(e, st, stalls);
	if (s->close_us < 0 || s->exit_us < 0) {
		fprintf(stderr, "neighbour_stall_bench: B's %s failed%s\n",
			s->close_us < 0 ? "open + CONFIG_DATA + close" :
			"configured child's exit", st ? " during the stall" : "");
		exit(1);
	}
}

static void baseline(struct sample *s)
{
	struct exiters e;
	int stalls = 0;

	exiters_start(&e, exit_iters);
	measure(s, &e, NULL, &stalls);
}

/* The same with A's mmap_lock stalled in @mode; false: no FUSE. */
static bool stalled(struct sample *s, enum mode mode, int *stalls)
{
	struct stall st;
	struct exiters e;
	int before = *stalls;

	exiters_start(&e, exit_iters);
	if (!stall_init(&st, mode))
		exit(1);
	st.keep_out_fd = e.cmd;
	if (!stall_setup(&st)) {
		if (!st.no_fuse)
			stall_failed("the stall could not be set up");
		kill(e.p.pid, SIGKILL);
		reap_by(&e.p, now_ms() + DEADLINE_MS);
		stall_end(&st, false);
		fuse_stop(&st);
		if (failed)
			exit(1);
		return false;
	}
	measure(s, &e, &st, stalls);
	if (*stalls == before && !stall_holds(&st))
		stall_failed("the stall ended before B was measured");
	stall_end(&st, false);
	fuse_stop(&st);
	if (failed)
		exit(1);
	return true;
}

static void figure(enum mode mode, int rounds)
{
	const char *name = mode == MODE_OPEN ? "open" : "config";
	double bc[rounds], be[rounds], sc[rounds], se[rounds];
	double mbc, mbe, msc, mse;
	char what[64], base[64];
	int stalls = 0;

	for (int r = 0; r < rounds; r++) {
		struct sample b, s;

		/* Take turns at going first. */
		if (r % 2)
			baseline(&b);
		if (!stalled(&s, mode, &stalls)) {
			printf("11   %s mode: no FUSE in this kernel: skipped\n",
			       name);
			return;
		}
		if (!(r % 2))
			baseline(&b);
		if (verbose)
			fprintf(stderr, "11 %s round %d: no stall %.1f / %.1f us, stalled %.1f / %.1f us (open+CONFIG_DATA+close / exit)\n",
				name, r, b.close_us, b.exit_us, s.close_us,
				s.exit_us);
		bc[r] = b.close_us;
		sc[r] = s.close_us;
		be[r] = b.exit_us;
		se[r] = s.exit_us;
	}
	mbc = median(bc, rounds);
	msc = median(sc, rounds);
	mbe = median(be, rounds);
	mse = median(se, rounds);
	snprintf(what, sizeof(what), "%s mode stalled: B open+CONFIG_DATA+close",
		 name);
	snprintf(base, sizeof(base), "no stall, same boot: %.1f us", mbc);
	row("11", what, msc, "us", msc / mbc, base);
	snprintf(what, sizeof(what), "%s mode stalled: exit of B's configured child",
		 name);
	snprintf(base, sizeof(base), "no stall, same boot: %.1f us", mbe);
	row("11", what, mse, "us", mse / mbe, base);
	if (stalls) {
		failed = true;
		printf("11   %s mode: B waited %.0f s for the stalled user in %d of %d rounds: the server was told to answer (FAIL)\n",
		       name, WAIT_MS / 1e3, stalls, rounds);
	}
}

int main(int argc, char **argv)
{
	const char *json_path = NULL;
	int rounds = REPS;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--verbose"))
			verbose = true;
		else if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json_path = argv[++i];
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc &&
			 atoi(argv[i + 1]) > 0)
			rounds = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--quick] [--verbose] [--json FILE] [--rounds N]\n",
				argv[0]);
			return 2;
		}
	}
	close_iters = quick ? 10 : 50;
	exit_iters = quick ? 5 : 20;
	if (geteuid()) {
		fprintf(stderr, "neighbour_stall_bench: needs root (users A and B, a FUSE mount)\n");
		return 2;
	}
	if (json_path) {
		json = fopen(json_path, "w");
		if (!json)
			die(json_path);
		fprintf(json, "[\n");
	}
	printf("%-4s %-52s %12s %-8s %9s  %s\n", "fig", "what", "median",
	       "unit", "ratio", "baseline (same run)");
	fflush(stdout);
	figure(MODE_OPEN, rounds);
	figure(MODE_CONFIG, rounds);
	if (json) {
		fprintf(json, "\n]\n");
		fclose(json);
	}
	return failed ? 1 : 0;
}
