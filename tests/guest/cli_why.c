// SPDX-License-Identifier: GPL-2.0-only
/*
 * `mapwatch why PID` (and the reasons of top and status) against three
 * processes, each a child of the case that holds a kernel-backend monitor
 * of libmapwatch and does one thing to its watched memory:
 *  - frees its buffers (munmap): "N regions unmapped by munmap()", in an
 *    interval (freed once the CLI sleeps in it: /proc/PID/syscall) and
 *    since open, text and JSON; top and status show the same;
 *  - has its pages moved by NUMA balancing (2-node guest, numa.list): a
 *    THP populated on node 0, used from node 1 until it moved: "NUMA
 *    balancing moved pages";
 *  - forks with a transparent huge page pinned by ibv_reg_mr (Soft-RoCE):
 *    fork splits the pinned THP in the parent: "changed by fork()", with
 *    the MADV_DONTFORK advice.
 * And its errors: no such process (3), a process without a mapwatch fd
 * (4), a bad PID (2).  Every count asserted is what the child did.
 *
 * usage: cli_why [CASE...]      (TAP)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>

#include <infiniband/verbs.h>

#include "host/libtest.h"
#include "mapwatch_uapi.h"
#include "pagemap.h"
#include "skipped_events.h"
#include <sys/ioctl.h>

#define HPAGE (2UL << 20)
#define NBUF 50

static char tooldir[PATH_MAX];	/* build/ */

static void find_build_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	ASSERT_GT(n, 0);
	exe[n] = '\0';
	snprintf(tooldir, sizeof(tooldir), "%s/../..", dirname(exe));
}

static char out[1 << 16];

/* `build/tools/mapwatch ARGS`: its stdout (and stderr when merge) in out,
 * its exit status returned. */
static int cli(bool merge, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static FILE *cli_start(bool merge, const char *args)
{
	char cmd[PATH_MAX + 512];
	FILE *p;

	if (!tooldir[0])
		find_build_dir();
	snprintf(cmd, sizeof(cmd), "%s/tools/mapwatch %s%s", tooldir, args,
		 merge ? " 2>&1" : "");
	tap_diag("$ mapwatch %s", args);
	fflush(stdout);
	p = popen(cmd, "r");
	ASSERT_TRUE(p != NULL);
	return p;
}

static int cli_finish(FILE *p)
{
	size_t used = 0, n;
	int st;

	while (used + 1 < sizeof(out) &&
	       (n = fread(out + used, 1, sizeof(out) - 1 - used, p)) > 0)
		used += n;
	out[used] = '\0';
	st = pclose(p);
	/* The output, for the log (and the report). */
	for (char *l = out, *e; *l; l = e + 1) {
		e = strchr(l, '\n');
		if (!e) {
			tap_diag("  %s", l);
			break;
		}
		tap_diag("  %.*s", (int)(e - l), l);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int cli(bool merge, const char *fmt, ...)
{
	char args[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	return cli_finish(cli_start(merge, args));
}

/*
 * True once a `mapwatch` process sleeps in clock_nanosleep() or nanosleep()
 * (/proc/PID/syscall): why's interval has begun, its first reading taken.
 */
static bool cli_sleeping(int secs)
{
	for (int tries = 0; tries < secs * 100; tries++) {
		DIR *d = opendir("/proc");
		struct dirent *e;
		bool found = false;

		ASSERT_TRUE(d != NULL);
		while (!found && (e = readdir(d))) {
			char path[300], buf[64] = "";
			FILE *f;

			snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			if (!fgets(buf, sizeof(buf), f) || strcmp(buf, "mapwatch\n")) {
				fclose(f);
				continue;
			}
			fclose(f);
			snprintf(path, sizeof(path), "/proc/%s/syscall", e->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			if (fgets(buf, sizeof(buf), f))
				found = !strncmp(buf, "230 ", 4) || !strncmp(buf, "35 ", 3);
			fclose(f);
		}
		closedir(d);
		if (found)
			return true;
		usleep(10000);
	}
	return false;
}

#define ASSERT_HAS(text, want)						\
	do {								\
		if (!strstr((text), (want)))				\
			tap_diag("missing: \"%s\"", (want));		\
		TAP_CHECK(strstr((text), (want)) != NULL,		\
			  "output has \"" #want "\"", 1);		\
	} while (0)

/* A number after "key": in JSON text (the first one); -1 if absent. */
static long long json_num(const char *text, const char *key)
{
	char k[96];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(text, k);
	return p ? atoll(p + strlen(k)) : -1;
}

/* --- the subject: a child that does one thing when told --------------- */

struct subject {
	pid_t pid;
	int to, from;		/* our ends of its pipes */
};

static void say(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		_exit(3);
}

static char hear(int fd)
{
	char c = 0;

	if (read(fd, &c, 1) != 1)
		return 0;
	return c;
}

/*
 * Fork a subject that runs prepare(), says 'r', waits for 'g', runs act(),
 * says 'd' (or 'f' when act failed), and waits for 'q' to exit, holding its
 * monitor meanwhile.
 */
static void subject_start(struct subject *s, void (*prepare)(void *),
			  bool (*act)(void *), void *arg)
{
	int to[2], from[2];

	ASSERT_OK(pipe(to));
	ASSERT_OK(pipe(from));
	fflush(stdout);
	s->pid = fork();
	ASSERT_GE(s->pid, 0);
	if (!s->pid) {
		close(to[1]);
		close(from[0]);
		prepare(arg);
		say(from[1], 'r');
		if (hear(to[0]) != 'g')
			_exit(0);
		say(from[1], act(arg) ? 'd' : 'f');
		hear(to[0]);
		fflush(stdout);
		_exit(tap_case_failed);
	}
	close(to[0]);
	close(from[1]);
	s->to = to[1];
	s->from = from[0];
	ASSERT_EQ(hear(s->from), 'r');
}

static void subject_go(struct subject *s)
{
	say(s->to, 'g');
	ASSERT_EQ(hear(s->from), 'd');
}

static void subject_stop(struct subject *s)
{
	int st;

	say(s->to, 'q');
	ASSERT_EQ(waitpid(s->pid, &st, 0), s->pid);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static struct mapwatch *kernel_monitor(size_t max)
{
	struct mapwatch *mw;
	const char *why = NULL;
	int r = mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, max, &why);

	if (r)
		tap_diag("mapwatch_open: %d %s", r, why ? why : "");
	ASSERT_EQ(r, 0);
	return mw;
}

/* --- a process that frees its buffers ----------------------------------- */

struct freer {
	struct mapwatch *mw;
	char *buf[NBUF];
	struct mapwatch_handle h[NBUF];
};

static void freer_prepare(void *arg)
{
	struct freer *f = arg;

	f->mw = kernel_monitor(NBUF + 4);
	for (int i = 0; i < NBUF; i++) {
		f->buf[i] = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_TRUE(f->buf[i] != MAP_FAILED);
		memset(f->buf[i], i, 2 * PAGE);
		ASSERT_OK(mapwatch_watch(f->mw, f->buf[i], 2 * PAGE, i + 1,
					 &f->h[i]));
	}
}

static bool freer_act(void *arg)
{
	struct freer *f = arg;
	bool ok = true;

	for (int i = 0; i < NBUF; i++) {
		ok &= !munmap(f->buf[i], 2 * PAGE);
		ok &= mapwatch_changed(&f->h[i]);
	}
	return ok;
}

TEST(why_names_munmap_of_freed_buffers)
{
	static struct freer f;
	struct subject s;
	char want[256];
	FILE *p;

	subject_start(&s, freer_prepare, freer_act, &f);
	/* Watching an interval in which the subject frees its buffers: the
	 * CLI reads the counters as it starts, the subject frees a second
	 * later, the CLI reads them again at the end of the interval. */
	snprintf(want, sizeof(want), "why %d --interval 4", s.pid);
	p = cli_start(false, want);
	ASSERT_TRUE(cli_sleeping(10));	/* its first reading is taken */
	subject_go(&s);
	ASSERT_EQ(cli_finish(p), 0);
	snprintf(want, sizeof(want),
		 "mapwatch why %d (cli_why): %d regions invalidated in the last 4 s (1 mapwatch fd)",
		 s.pid, NBUF);
	ASSERT_HAS(out, want);
	snprintf(want, sizeof(want), "by reason: unmapped %d\n", NBUF);
	ASSERT_HAS(out, want);
	snprintf(want, sizeof(want),
		 "%d regions unmapped by munmap(): the process frees registered buffers",
		 NBUF);
	ASSERT_HAS(out, want);
	ASSERT_HAS(out, "MALLOC_MMAP_THRESHOLD_");

	/* An interval in which nothing happens. */
	ASSERT_EQ(cli(false, "why %d --interval 0.5", s.pid), 0);
	ASSERT_HAS(out, "0 regions invalidated in the last 0.5 s");
	ASSERT_HAS(out, "nothing invalidated its regions");

	/* Since open, in JSON. */
	ASSERT_EQ(cli(false, "why %d --once --json", s.pid), 0);
	ASSERT_EQ(json_num(out, "pid"), s.pid);
	ASSERT_HAS(out, "\"interval\":null");
	ASSERT_EQ(json_num(out, "invalidated"), NBUF);
	ASSERT_EQ(json_num(out, "unmapped"), NBUF);
	ASSERT_EQ(json_num(out, "munmap"), NBUF);
	snprintf(want, sizeof(want), "{\"cause\":\"munmap\",\"regions\":%d,\"text\":",
		 NBUF);
	ASSERT_HAS(out, want);

	/* top and status: the same, per process. */
	ASSERT_EQ(cli(false, "top --once"), 0);
	ASSERT_HAS(out, "INVALIDATED BY REASON");
	snprintf(want, sizeof(want), "unmapped:%d", NBUF);
	ASSERT_HAS(out, want);
	ASSERT_EQ(cli(false, "status"), 0);
	snprintf(want, sizeof(want), "invalidated: unmapped %d", NBUF);
	ASSERT_HAS(out, want);
	ASSERT_HAS(out, "invalidations by reason (/sys/kernel/mapwatch/reasons):");
	ASSERT_HAS(out, "invalidations by cause (/sys/kernel/mapwatch/causes):");
	ASSERT_HAS(out, "protection-only invalidations skipped, by cause");
	ASSERT_EQ(cli(false, "status --json"), 0);
	ASSERT_GE(json_num(strstr(out, "\"reasons\":") ?: "", "unmapped"), NBUF);
	subject_stop(&s);
}

/*
 * A client that asks for no reasons (libfabric's kdreg2 monitor opens
 * /dev/kdreg2 and sets no policy): the module counts them all the same,
 * and top and why show them while it runs.
 */
TEST(top_shows_reasons_of_a_plain_kdreg2_fd)
{
	struct kdreg2_config_data cfg = { .max_regions = 4 };
	struct kdreg2_ioctl_monitor m = { .cookie = 9 };
	char want[128], *p, *row;
	int fd = open("/dev/kdreg2", O_RDWR | O_CLOEXEC);

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &cfg));
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	p[0] = 1;
	m.addr = p;
	m.length = PAGE;
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_EQ(cli(false, "top --once --json"), 0);
	snprintf(want, sizeof(want), "{\"pid\":%d,", getpid());
	row = strstr(out, want);
	ASSERT_TRUE(row != NULL);
	ASSERT_HAS(row, "\"policy\":\"0x0\"");
	ASSERT_EQ(json_num(row, "unmapped"), 1);
	ASSERT_EQ(json_num(row, "munmap"), 1);
	ASSERT_EQ(cli(false, "why %d --once", getpid()), 0);
	ASSERT_HAS(out, "1 region unmapped by munmap(): the process frees registered buffers");
	close(fd);
}

TEST(why_errors)
{
	pid_t gone = fork();
	int st;

	ASSERT_GE(gone, 0);
	if (!gone)
		_exit(0);
	ASSERT_EQ(waitpid(gone, &st, 0), gone);
	ASSERT_EQ(cli(true, "why %d --once", gone), 3);
	ASSERT_HAS(out, "no process");
	/* This process holds no mapwatch fd. */
	ASSERT_EQ(cli(true, "why %d --once", getpid()), 4);
	ASSERT_HAS(out, "holds no mapwatch fd");
	ASSERT_EQ(cli(true, "why abc"), 2);
	ASSERT_HAS(out, "bad PID 'abc'");
}

/* --- a process whose pages NUMA balancing moves ------------------------- */

static int online_nodes(void)
{
	char buf[64] = "";
	int f = open("/sys/devices/system/node/online", O_RDONLY), n = 0;
	char *s = buf;

	if (f < 0)
		return 1;
	if (read(f, buf, sizeof(buf) - 1) <= 0)
		buf[0] = '0';
	close(f);
	while (*s) {
		long a = strtol(s, &s, 10), b = a;

		if (*s == '-')
			b = strtol(s + 1, &s, 10);
		n += (int)(b - a + 1);
		while (*s == ',' || *s == '\n')
			s++;
	}
	return n;
}

static void run_on_node(int node)
{
	char path[64], buf[256] = "";
	char *s = buf;
	cpu_set_t set;
	int f;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist",
		 node);
	f = open(path, O_RDONLY);
	ASSERT_TRUE(f >= 0);
	ASSERT_GT(read(f, buf, sizeof(buf) - 1), 0);
	close(f);
	CPU_ZERO(&set);
	while (*s >= '0' && *s <= '9') {
		long a = strtol(s, &s, 10), b = a;

		if (*s == '-')
			b = strtol(s + 1, &s, 10);
		for (long c = a; c <= b && c < CPU_SETSIZE; c++)
			CPU_SET(c, &set);
		while (*s == ',')
			s++;
	}
	ASSERT_OK(sched_setaffinity(0, sizeof(set), &set));
	sched_yield();
}

static int write_str(const char *path, const char *val)
{
	int f = open(path, O_WRONLY);
	ssize_t n;

	if (f < 0)
		return -1;
	n = write(f, val, strlen(val));
	close(f);
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

/* Global knobs set for a case and put back after it. */
static struct {
	char path[128], old[64];
} knobs[8];
static int nknobs;

static int knob_set(const char *path, const char *val)
{
	int f = open(path, O_RDONLY);
	ssize_t n;

	if (f < 0)
		return -1;
	ASSERT_LT(nknobs, 8);
	n = read(f, knobs[nknobs].old, sizeof(knobs[0].old) - 1);
	close(f);
	ASSERT_GT(n, 0);
	knobs[nknobs].old[n] = 0;
	snprintf(knobs[nknobs].path, sizeof(knobs[0].path), "%s", path);
	nknobs++;
	return write_str(path, val);
}

static void knobs_restore(void)
{
	while (nknobs > 0) {
		nknobs--;
		if (write_str(knobs[nknobs].path, knobs[nknobs].old))
			tap_diag("could not restore %s", knobs[nknobs].path);
	}
}

/* THP for MADV_HUGEPAGE ranges: "[never]" turned to madvise, and back
 * (the file reads "always madvise [never]", takes one word). */
static void thp_madvise(void)
{
	const char *path = "/sys/kernel/mm/transparent_hugepage/enabled";
	char buf[128] = "";
	int f = open(path, O_RDONLY);

	if (f < 0)
		return;
	if (read(f, buf, sizeof(buf) - 1) < 0)
		buf[0] = 0;
	close(f);
	if (!strstr(buf, "[never]"))
		return;
	ASSERT_LT(nknobs, 8);
	snprintf(knobs[nknobs].path, sizeof(knobs[0].path), "%s", path);
	snprintf(knobs[nknobs].old, sizeof(knobs[0].old), "never");
	nknobs++;
	ASSERT_OK(write_str(path, "madvise"));
}

/* Short scan periods (debugfs since 5.13, sysctls before). */
static void numa_scan_fast(void)
{
	static const char *const dirs[] = {
		"/sys/kernel/debug/sched/numa_balancing/",
		"/proc/sys/kernel/numa_balancing_",
	};
	static const char *const knob[][2] = {
		{ "scan_delay_ms", "10" }, { "scan_period_min_ms", "10" },
		{ "scan_period_max_ms", "200" }, { "scan_size_mb", "256" },
	};
	char path[128];

	if (access("/sys/kernel/debug/sched", F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	for (size_t d = 0; d < 2; d++) {
		snprintf(path, sizeof(path), "%s%s", dirs[d], knob[0][0]);
		if (access(path, W_OK))
			continue;
		for (size_t i = 0; i < 4; i++) {
			snprintf(path, sizeof(path), "%s%s", dirs[d], knob[i][0]);
			if (knob_set(path, knob[i][1]))
				tap_diag("no %s", path);
		}
		return;
	}
}

struct numa_subject {
	struct mapwatch *mw;
	struct mapwatch_handle h;
	char *p;
};

static void numa_prepare(void *arg)
{
	struct numa_subject *n = arg;
	char *area;

	run_on_node(0);		/* its frames on node 0 */
	area = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(area != MAP_FAILED);
	n->p = (char *)(((uintptr_t)area + HPAGE - 1) & ~(HPAGE - 1));
	ASSERT_OK(madvise(n->p, HPAGE, MADV_HUGEPAGE));
	memset(n->p, 0x5a, HPAGE);
	n->mw = kernel_monitor(4);
	ASSERT_OK(mapwatch_watch(n->mw, n->p, HPAGE, 1, &n->h));
}

/* Used from node 1 until NUMA balancing moved it (a hang guard of 60 s,
 * not a timing check). */
static bool numa_act(void *arg)
{
	struct numa_subject *n = arg;
	volatile char *v = n->p;
	double t0 = now_s();

	run_on_node(1);
	while (!mapwatch_changed(&n->h) && now_s() - t0 < 60)
		for (size_t i = 0; i < HPAGE; i += PAGE)
			(void)v[i];
	tap_diag("subject: changed %d after %.1f s on node 1",
		 mapwatch_changed(&n->h), now_s() - t0);
	return mapwatch_changed(&n->h);
}

TEST(why_names_numa_balancing)
{
	static struct numa_subject n;
	struct subject s;
	int rc;

	if (online_nodes() < 2)
		NEED("numa2", "one NUMA node: needs a 2-node guest (vm/run --numa)");
	if (access("/proc/sys/kernel/numa_balancing", F_OK))
		SKIP("kernel without NUMA balancing (CONFIG_NUMA_BALANCING)");
	ASSERT_OK(knob_set("/proc/sys/kernel/numa_balancing", "1"));
	thp_madvise();
	numa_scan_fast();
	subject_start(&s, numa_prepare, numa_act, &n);
	subject_go(&s);
	rc = cli(false, "why %d --once", s.pid);
	knobs_restore();
	ASSERT_EQ(rc, 0);
	ASSERT_HAS(out, "bind memory (numactl --membind) or set kernel.numa_balancing=0");
	if (!mw_skips("protection_vma")) {
		/* 5.10: the scan's PROTECTION_VMA retires the region before
		 * the page moves (a THP may move with no event of its own). */
		tap_diag("this kernel does not skip the NUMA scan: the scan itself is named");
		ASSERT_HAS(out, "invalidated by NUMA balancing's scan");
		ASSERT_EQ(cli(false, "why %d --once --json", s.pid), 0);
		ASSERT_GE(json_num(out, "protection"), 1);
		ASSERT_GE(json_num(out, "numa_scan"), 1);
		subject_stop(&s);
		return;
	}
	ASSERT_HAS(out, "NUMA balancing moved pages (");
	ASSERT_EQ(cli(false, "why %d --once --json", s.pid), 0);
	ASSERT_GE(json_num(out, "replaced"), 1);
	ASSERT_GE(json_num(out, "fault"), 1);
	ASSERT_HAS(out, "{\"cause\":\"fault\",\"regions\":");
	subject_stop(&s);
}

/* --- a process that forks with a pinned THP ----------------------------- */

struct fork_subject {
	struct mapwatch *mw;
	struct mapwatch_handle h;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_mr *mr;
	char *p;
};


static void fork_prepare(void *arg)
{
	struct fork_subject *f = arg;
	struct ibv_device **list;
	char *area;
	int n = 0;

	list = ibv_get_device_list(&n);
	ASSERT_TRUE(list && n);
	for (int i = 0; i < n && !f->ctx; i++)
		if (!strcmp(ibv_get_device_name(list[i]), "rxe0"))
			f->ctx = ibv_open_device(list[i]);
	ibv_free_device_list(list);
	ASSERT_TRUE(f->ctx != NULL);
	f->pd = ibv_alloc_pd(f->ctx);
	ASSERT_TRUE(f->pd != NULL);
	area = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(area != MAP_FAILED);
	f->p = (char *)(((uintptr_t)area + HPAGE - 1) & ~(HPAGE - 1));
	ASSERT_OK(madvise(f->p, HPAGE, MADV_HUGEPAGE));
	memset(f->p, 0x3c, HPAGE);
	if (smaps_anon_huge_kb(f->p) != (long)(HPAGE / 1024))
		NEED("thp", "no transparent huge page behind a touched, aligned MADV_HUGEPAGE range");
	/* Pinned, as an RDMA library registers it, then watched. */
	f->mr = ibv_reg_mr(f->pd, f->p, HPAGE, IBV_ACCESS_LOCAL_WRITE |
			   IBV_ACCESS_REMOTE_WRITE);
	ASSERT_TRUE(f->mr != NULL);
	f->mw = kernel_monitor(4);
	ASSERT_OK(mapwatch_watch(f->mw, f->p, HPAGE, 1, &f->h));
}

/* fork() without MADV_DONTFORK: the kernel splits the pinned THP in the
 * parent (and copies its pages for the child). */
static bool fork_act(void *arg)
{
	struct fork_subject *f = arg;
	struct mapwatch_event_ex ev;
	int st, n;
	pid_t pid = fork();

	if (!pid)
		_exit(0);
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return false;
	n = mapwatch_read_events_ex(f->mw, &ev, 1, sizeof(ev));
	tap_diag("subject: after fork, changed %d, %d event: %s by %s, pages kept %d, huge page now %ld kB",
		 mapwatch_changed(&f->h), n,
		 n == 1 ? mapwatch_reason_name(ev.reason) : "-",
		 n == 1 ? mapwatch_cause_name(ev.cause) : "-",
		 n == 1 && (ev.flags & MAPWATCH_EVENT_F_PAGES_KEPT),
		 smaps_anon_huge_kb(f->p));
	return mapwatch_changed(&f->h) && n == 1 &&
	       ev.reason == MAPWATCH_CHANGE_REPLACED &&
	       ev.cause == MAPWATCH_BY_FORK;
}

TEST(why_names_fork_of_pinned_thp)
{
	static struct fork_subject f;
	struct subject s;

	tap_rxe_up();
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK))
		NEED("thp", "kernel without transparent huge pages");
	subject_start(&s, fork_prepare, fork_act, &f);
	subject_go(&s);
	ASSERT_EQ(cli(false, "why %d --once", s.pid), 0);
	ASSERT_HAS(out, "1 region invalidated since it opened its mapwatch fd");
	ASSERT_HAS(out, "by reason: replaced 1\n");
	ASSERT_HAS(out, "1 region changed by fork(): copy-on-write or a THP split of registered memory at fork");
	ASSERT_HAS(out, "MADV_DONTFORK with madvise() over whole huge pages");
	ASSERT_EQ(cli(false, "why %d --once --json", s.pid), 0);
	ASSERT_EQ(json_num(out, "invalidated"), 1);
	ASSERT_HAS(out, "{\"cause\":\"fork\",\"regions\":1,\"text\":");
	subject_stop(&s);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
