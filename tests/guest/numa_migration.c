// SPDX-License-Identifier: GPL-2.0-only
/*
 * Page migration between NUMA nodes, requested by ANOTHER process with
 * move_pages(2) and migrate_pages(2), changes the physical pages behind a
 * monitored region: the region must report changed (and its event be
 * queued) by the time that process's call returns.  A migration that moves
 * nothing (a query, a page already on its target node) changes nothing.
 *
 * NUMA balancing moving a watched transparent huge page to the node its
 * task runs on changes the frames too, with nobody calling anything: the
 * region must report changed (and its event be queued) once the frames
 * moved.  Before 5.14 that move (do_huge_pmd_numa_page() ->
 * migrate_misplaced_transhuge_page()) has no notifier range of its own; the
 * only one is the hinting scan's MMU_NOTIFY_PROTECTION_VMA before it.
 *
 * Needs two NUMA nodes (vm/run --numa; listed in numa.list); the migration
 * cases skip in a one-node guest, never pass.  System calls are made with
 * syscall(2): no libnuma needed.
 *
 * usage: numa_migration [CASE...]      (TAP)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>

#include "mapwatch_uapi.h"
#include "pagemap.h"
#include "tap.h"

#define PAGE 4096UL
#define NPAGES 4
#define MPOL_MF_MOVE_ (1 << 1)
#define MAXNODE 64	/* bits in one unsigned long node mask */

typedef struct kdreg2_monitoring_params params_t;

static int fd;
static const struct kdreg2_status_data *st;

static void setup(void)
{
	struct kdreg2_config_data c = { .max_regions = 16 };

	fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	st = c.status_data;
}

static params_t watch(const void *addr, size_t len, uint64_t cookie)
{
	struct kdreg2_ioctl_monitor m = { .addr = addr, .length = len,
					  .cookie = cookie };

	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
	return m.monitoring_params;
}

static bool changed(params_t p)
{
	return kdreg2_mapping_changed(st, &p);
}

static uint64_t pending(void)
{
	return kdreg2_read_counter(&st->pending_events);
}

static void expect_event(const void *addr, size_t len, uint64_t cookie)
{
	struct kdreg2_event ev;

	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)sizeof(ev));
	ASSERT_EQ(ev.type, KDREG2_EVENT_MAPPING_CHANGE);
	ASSERT_EQ((uintptr_t)ev.u.mapping_change.addr, (uintptr_t)addr);
	ASSERT_EQ(ev.u.mapping_change.len, len);
	ASSERT_EQ(ev.u.mapping_change.cookie, cookie);
}

/* Online nodes, from /sys ("0", "0-1", "0,2"...). */
static int online_nodes(void)
{
	char buf[64] = "";
	int f = open("/sys/devices/system/node/online", O_RDONLY), n = 0;
	char *s = buf;

	if (f < 0)
		return 1;	/* no NUMA support: one node */
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

static void need_two_nodes(void)
{
	if (online_nodes() < 2)
		NEED("numa2", "one NUMA node: needs a 2-node guest (vm/run --numa)");
}

static long move_pages_(pid_t pid, unsigned long n, void **pages,
			const int *nodes, int *status, int flags)
{
	return syscall(SYS_move_pages, pid, n, pages, nodes, status, flags);
}

/* The node a page of ours is on (query only: moves nothing). */
static int node_of(const void *addr)
{
	void *pg = (void *)addr;
	int status = -1;

	ASSERT_EQ(move_pages_(0, 1, &pg, NULL, &status, 0), 0);
	ASSERT_GE(status, 0);
	return status;
}

static char *map_pages(void)
{
	char *p = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	ASSERT_OK(madvise(p, NPAGES * PAGE, MADV_NOHUGEPAGE));
	for (size_t i = 0; i < NPAGES; i++)
		memset(p + i * PAGE, (int)(0x10 + i), PAGE);
	return p;
}

/* Put every page of p on node (before anything is monitored). */
static void place_all(char *p, int node)
{
	void *pages[NPAGES];
	int nodes[NPAGES], status[NPAGES];

	for (int i = 0; i < NPAGES; i++) {
		pages[i] = p + i * PAGE;
		nodes[i] = node;
	}
	ASSERT_EQ(move_pages_(0, NPAGES, pages, nodes, status,
			      MPOL_MF_MOVE_), 0);
	for (int i = 0; i < NPAGES; i++)
		ASSERT_EQ(status[i], node);
}

static void check_contents(const char *p)
{
	for (size_t i = 0; i < NPAGES; i++)
		ASSERT_EQ(p[i * PAGE + 100], (char)(0x10 + i));
}

/*
 * The other process: forked before the memory under test exists, so it
 * shares none of it (a shared page would not be moved).  It performs one
 * request and answers with the call's result.
 */
enum { OP_EXIT, OP_MOVE, OP_QUERY, OP_MIGRATE };

struct req {
	int op;
	int n;
	uintptr_t addr[NPAGES];
	int node;		/* OP_MOVE: target; OP_MIGRATE: to */
	int from;		/* OP_MIGRATE */
};

struct reply {
	long ret;
	int err;
	int status[NPAGES];
};

struct helper {
	pid_t pid;
	int to[2], from[2];
};

static void helper_serve(pid_t target, int in, int out)
{
	struct req r;

	while (read(in, &r, sizeof(r)) == sizeof(r) && r.op != OP_EXIT) {
		struct reply y = { 0 };
		void *pages[NPAGES];
		int nodes[NPAGES];
		unsigned long from = 1UL << r.from, to = 1UL << r.node;

		for (int i = 0; i < r.n; i++) {
			pages[i] = (void *)r.addr[i];
			nodes[i] = r.node;
			y.status[i] = -1;
		}
		errno = 0;
		if (r.op == OP_MOVE)
			y.ret = move_pages_(target, r.n, pages, nodes,
					    y.status, MPOL_MF_MOVE_);
		else if (r.op == OP_QUERY)
			y.ret = move_pages_(target, r.n, pages, NULL,
					    y.status, 0);
		else
			y.ret = syscall(SYS_migrate_pages, target, MAXNODE,
					&from, &to);
		y.err = errno;
		if (write(out, &y, sizeof(y)) != sizeof(y))
			_exit(2);
	}
	_exit(0);
}

static void helper_start(struct helper *h)
{
	pid_t parent = getpid();

	ASSERT_OK(pipe(h->to));
	ASSERT_OK(pipe(h->from));
	h->pid = fork();
	ASSERT_GE(h->pid, 0);
	if (h->pid == 0)
		helper_serve(parent, h->to[0], h->from[1]);
}

/* Returns once the other process's call has returned. */
static struct reply helper_call(struct helper *h, struct req *r)
{
	struct reply y;

	ASSERT_EQ(write(h->to[1], r, sizeof(*r)), (ssize_t)sizeof(*r));
	ASSERT_EQ(read(h->from[0], &y, sizeof(y)), (ssize_t)sizeof(y));
	return y;
}

static void helper_stop(struct helper *h)
{
	struct req r = { .op = OP_EXIT };
	int status;

	ASSERT_EQ(write(h->to[1], &r, sizeof(r)), (ssize_t)sizeof(r));
	ASSERT_EQ(waitpid(h->pid, &status, 0), h->pid);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(move_pages_by_other_process_invalidates)
{
	struct helper h;
	struct req r = { .op = OP_MOVE, .n = 1 };
	struct reply y;
	params_t a[NPAGES];
	char *p;
	int src;

	need_two_nodes();
	helper_start(&h);
	p = map_pages();
	setup();
	for (int i = 0; i < NPAGES; i++)
		a[i] = watch(p + i * PAGE, PAGE, i);
	src = node_of(p + PAGE);
	r.addr[0] = (uintptr_t)p + PAGE;
	r.node = !src;
	y = helper_call(&h, &r);
	ASSERT_EQ(y.ret, 0);
	ASSERT_EQ(y.status[0], !src);	/* it did move */
	/* The other process's call returned: ours already reports it. */
	ASSERT_TRUE(changed(a[1]));
	ASSERT_EQ(pending(), 1);
	for (int i = 0; i < NPAGES; i++)
		if (i != 1)
			ASSERT_FALSE(changed(a[i]));
	expect_event(p + PAGE, PAGE, 1);
	ASSERT_EQ(node_of(p + PAGE), !src);
	check_contents(p);
	helper_stop(&h);
}

TEST(move_pages_of_several_regions_by_other_process)
{
	struct helper h;
	struct req r = { .op = OP_MOVE, .n = NPAGES, .node = 1 };
	struct reply y;
	params_t whole, half, other;
	char *p;

	need_two_nodes();
	helper_start(&h);
	p = map_pages();
	place_all(p, 0);
	setup();
	whole = watch(p, NPAGES * PAGE, 1);
	half = watch(p + 2 * PAGE, 2 * PAGE, 2);
	other = watch(p + NPAGES * PAGE, PAGE, 3);	/* just past the end */
	for (int i = 0; i < NPAGES; i++)
		r.addr[i] = (uintptr_t)p + i * PAGE;
	y = helper_call(&h, &r);
	ASSERT_EQ(y.ret, 0);
	for (int i = 0; i < NPAGES; i++)
		ASSERT_EQ(y.status[i], 1);
	ASSERT_TRUE(changed(whole));
	ASSERT_TRUE(changed(half));
	ASSERT_FALSE(changed(other));
	ASSERT_EQ(pending(), 2);
	ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 1);
	check_contents(p);
	helper_stop(&h);
}

TEST(migrate_pages_by_other_process_invalidates)
{
	struct helper h;
	struct req r = { .op = OP_MIGRATE, .from = 0, .node = 1 };
	struct reply y;
	params_t a;
	char *p;

	need_two_nodes();
	helper_start(&h);
	p = map_pages();
	place_all(p, 0);
	setup();
	a = watch(p, NPAGES * PAGE, 7);
	ASSERT_FALSE(changed(a));
	y = helper_call(&h, &r);
	if (y.ret < 0)
		tap_diag("migrate_pages: errno %d", y.err);
	ASSERT_GE(y.ret, 0);	/* pages it could not move, or 0 */
	for (int i = 0; i < NPAGES; i++)
		ASSERT_EQ(node_of(p + i * PAGE), 1);
	ASSERT_TRUE(changed(a));
	ASSERT_EQ(pending(), 1);
	expect_event(p, NPAGES * PAGE, 7);
	check_contents(p);
	helper_stop(&h);
}

/* No page moves, no translation changes: nothing may be reported. */
TEST(migration_that_moves_nothing_does_not_invalidate)
{
	struct helper h;
	struct req r = { .n = NPAGES };
	struct reply y;
	params_t a;
	char *p;
	int node;

	need_two_nodes();
	helper_start(&h);
	p = map_pages();
	place_all(p, 1);
	setup();
	a = watch(p, NPAGES * PAGE, 1);
	for (int i = 0; i < NPAGES; i++)
		r.addr[i] = (uintptr_t)p + i * PAGE;
	r.op = OP_QUERY;
	y = helper_call(&h, &r);
	ASSERT_EQ(y.ret, 0);
	for (int i = 0; i < NPAGES; i++)
		ASSERT_EQ(y.status[i], 1);
	/* Already there. */
	r.op = OP_MOVE;
	r.node = 1;
	y = helper_call(&h, &r);
	ASSERT_EQ(y.ret, 0);
	ASSERT_FALSE(changed(a));
	/* Everything from a node that holds none of them. */
	r.op = OP_MIGRATE;
	r.from = 0;
	r.node = 1;
	y = helper_call(&h, &r);
	ASSERT_GE(y.ret, 0);
	ASSERT_FALSE(changed(a));
	place_all(p, 1);	/* ourselves, to where they are */
	node = node_of(p);
	ASSERT_EQ(node, 1);
	ASSERT_FALSE(changed(a));
	ASSERT_EQ(pending(), 0);
	/* The real move afterwards is caught. */
	r.op = OP_MOVE;
	r.node = 0;
	y = helper_call(&h, &r);
	ASSERT_EQ(y.ret, 0);
	ASSERT_TRUE(changed(a));
	expect_event(p, NPAGES * PAGE, 1);
	helper_stop(&h);
}

/*
 * NUMA balancing of a watched THP.  The knobs it turns are global, so they
 * are put back before the case ends (the case's other work runs in a child
 * bounded well within the TAP timeout).
 */
#define HPAGE (2UL << 20)
#define HPAGE_NR (HPAGE / PAGE)
#define NUMA_WAIT_S 60		/* a hang guard, not a timing check */
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct knob {
	char path[128];
	char old[64];
};

static struct knob knobs[8];
static int nknobs;

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

/* Sets the knob at @path, keeping its old value; -1 if there is none. */
static int knob_set(const char *path, const char *val)
{
	struct knob *k = &knobs[nknobs];
	int f = open(path, O_RDONLY);
	ssize_t n;

	if (f < 0)
		return -1;
	ASSERT_LT(nknobs, (int)NELEM(knobs));
	n = read(f, k->old, sizeof(k->old) - 1);
	close(f);
	ASSERT_GT(n, 0);
	k->old[n] = 0;
	snprintf(k->path, sizeof(k->path), "%s", path);
	nknobs++;
	ASSERT_EQ(write_str(path, val), 0);
	return 0;
}

static void knobs_restore(void)
{
	while (nknobs > 0) {
		struct knob *k = &knobs[--nknobs];

		if (write_str(k->path, k->old))
			tap_diag("could not restore %s", k->path);
	}
}

/*
 * Short NUMA-balancing scan periods: sysctls before 5.13
 * (kernel.numa_balancing_scan_*), debugfs from 5.13 on.  Returns where they
 * were found, or NULL (the defaults are slower, not different).
 */
static const char *numa_scan_fast(void)
{
	static const char *const dirs[] = {
		"/proc/sys/kernel/numa_balancing_",
		"/sys/kernel/debug/sched/numa_balancing/",
	};
	static const char *const knob[][2] = {
		{ "scan_delay_ms", "10" },
		{ "scan_period_min_ms", "10" },
		{ "scan_period_max_ms", "200" },
		{ "scan_size_mb", "256" },
	};
	char path[128];

	if (access("/sys/kernel/debug/sched", F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	for (size_t d = 0; d < NELEM(dirs); d++) {
		snprintf(path, sizeof(path), "%s%s", dirs[d], knob[0][0]);
		if (access(path, W_OK))
			continue;
		for (size_t i = 0; i < NELEM(knob); i++) {
			snprintf(path, sizeof(path), "%s%s", dirs[d],
				 knob[i][0]);
			if (knob_set(path, knob[i][1]))
				tap_diag("no %s", path);
		}
		return dirs[d];
	}
	return NULL;
}

/* The CPUs of @node, from /sys/devices/system/node/nodeN/cpulist. */
static void node_cpus(int node, cpu_set_t *set)
{
	char path[64], buf[256] = "";
	char *s = buf;
	int f;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist",
		 node);
	f = open(path, O_RDONLY);
	ASSERT_TRUE(f >= 0);
	ASSERT_GT(read(f, buf, sizeof(buf) - 1), 0);
	close(f);
	CPU_ZERO(set);
	while (*s >= '0' && *s <= '9') {
		long a = strtol(s, &s, 10), b = a;

		if (*s == '-')
			b = strtol(s + 1, &s, 10);
		for (long c = a; c <= b && c < CPU_SETSIZE; c++)
			CPU_SET(c, set);
		while (*s == ',')
			s++;
	}
	ASSERT_GT(CPU_COUNT(set), 0);
}

static void run_on_node(int node)
{
	cpu_set_t set;

	node_cpus(node, &set);
	ASSERT_OK(sched_setaffinity(0, sizeof(set), &set));
	sched_yield();
}

/* AnonHugePages (kB, PMD-mapped THP) of the VMA holding @addr. */
static long anon_huge_kb(const void *addr)
{
	long kb = smaps_anon_huge_kb(addr);

	ASSERT_GE(kb, 0);
	return kb;
}

/* The NUMA-balancing counters of /proc/vmstat this case reports. */
static const char *const vmstat_names[] = {
	"numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults",
	"numa_hint_faults_local", "numa_pages_migrated", "pgmigrate_success",
	"pgmigrate_fail", "thp_migration_success", "thp_migration_fail",
};
#define NVMSTAT NELEM(vmstat_names)

static void vmstat_read(long long v[NVMSTAT])
{
	FILE *f = fopen("/proc/vmstat", "r");
	char name[64];
	long long x;

	ASSERT_TRUE(f != NULL);
	for (size_t i = 0; i < NVMSTAT; i++)
		v[i] = -1;	/* not on this kernel */
	while (fscanf(f, "%63s %lld", name, &x) == 2)
		for (size_t i = 0; i < NVMSTAT; i++)
			if (!strcmp(name, vmstat_names[i]))
				v[i] = x;
	fclose(f);
}

static void vmstat_diag(const long long a[NVMSTAT], const long long b[NVMSTAT])
{
	for (size_t i = 0; i < NVMSTAT; i++)
		if (a[i] >= 0)
			tap_diag("  %s +%lld", vmstat_names[i], b[i] - a[i]);
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* Pages of the THP at @p whose frame is no longer the one in @before. */
static int frames_moved(int pm, const char *p, const uint64_t *before)
{
	int n = 0;

	for (size_t i = 0; i < HPAGE_NR; i++) {
		uint64_t f = pagemap_frame(pm, p + i * PAGE);

		if (f && f != before[i])
			n++;
	}
	return n;
}

/* THP off ("[never]" selected): MADV_HUGEPAGE would get none. */
static bool thp_never(void)
{
	char buf[128] = "";
	int f = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY);

	if (f < 0)
		return false;
	if (read(f, buf, sizeof(buf) - 1) < 0)
		buf[0] = 0;
	close(f);
	return strstr(buf, "[never]") != NULL;
}

/* mm->numa_scan_seq from /proc/self/sched: NUMA scan passes begun; -1 if none. */
static long numa_scan_seq(void)
{
	char line[256];
	long seq = -1;
	FILE *f = fopen("/proc/self/sched", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "mm->numa_scan_seq", 17)) {
			const char *c = strchr(line, ':');

			if (c)
				seq = strtol(c + 1, NULL, 10);
		}
	fclose(f);
	return seq;
}

/*
 * The case's own child: a fresh mm that starts under the short periods.
 * @scanned_first: before watching, wait without touching the page until
 * NUMA balancing has begun two scan passes of this mm since it was filled,
 * so the hinting scan has made its PMD PROT_NONE before the region exists
 * (before 5.14 the move that follows has no notifier range of its own).
 */
static void thp_balancing_child(bool scanned_first)
{
	static uint64_t before[HPAGE_NR];
	long long vm0[NVMSTAT], vm1[NVMSTAT];
	volatile char *v;
	unsigned long iters = 0;
	uint64_t skipped0;
	double t0, t;
	int pm, moved = 0, node;
	params_t a;
	char *area, *p;

	/* Populated while running on node 0: its frames are there. */
	run_on_node(0);
	area = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(area != MAP_FAILED);
	p = (char *)(((uintptr_t)area + HPAGE - 1) & ~(HPAGE - 1));
	ASSERT_OK(madvise(p, HPAGE, MADV_HUGEPAGE));
	memset(p, 0x5a, HPAGE);
	if (anon_huge_kb(p) != (long)(HPAGE / 1024))
		NEED("thp", "no transparent huge page behind a touched, "
		     "aligned MADV_HUGEPAGE range");
	ASSERT_EQ(node_of(p), 0);
	ASSERT_EQ(node_of(p + HPAGE - PAGE), 0);
	pm = open("/proc/self/pagemap", O_RDONLY);
	ASSERT_TRUE(pm >= 0);
	for (size_t i = 0; i < HPAGE_NR; i++) {
		before[i] = pagemap_frame(pm, p + i * PAGE);
		ASSERT_NE(before[i], 0);	/* frames need root */
	}

	if (scanned_first) {
		long seq0 = numa_scan_seq(), seq = seq0;
		volatile unsigned long spin = 0;

		if (seq0 < 0)
			NEED("numa_scan_seq", "no mm->numa_scan_seq in "
			     "/proc/self/sched");
		t0 = now_s();
		do {	/* busy on node 0, never touching the page */
			for (int i = 0; i < 1000000; i++)
				spin++;
			seq = numa_scan_seq();
		} while (seq < seq0 + 2 && now_s() - t0 < NUMA_WAIT_S);
		tap_diag("scan passes begun while waiting: %ld, in %.1f s",
			 seq - seq0, now_s() - t0);
		ASSERT_GE(seq, seq0 + 2);
		/* Not touched, so not faulted back or moved yet. */
		ASSERT_EQ(pagemap_frame(pm, p), before[0]);
	}

	/* Watched, not pinned. */
	setup();
	a = watch(p, HPAGE, 42);
	skipped0 = kdreg2_read_counter(
		&mapwatch_status_ext(st)->skipped_invalidations);
	vmstat_read(vm0);

	/* Used from node 1 until NUMA balancing brings the page over. */
	run_on_node(1);
	v = p;
	t0 = now_s();
	do {
		for (size_t i = 0; i < HPAGE_NR; i++)
			(void)v[i * PAGE];
		iters++;
		if (pagemap_frame(pm, p) != before[0] ||
		    pagemap_frame(pm, p + HPAGE - PAGE) != before[HPAGE_NR - 1])
			moved = frames_moved(pm, p, before);
		t = now_s();
	} while (!moved && t - t0 < NUMA_WAIT_S && iters < 100000000UL);
	vmstat_read(vm1);
	tap_diag("after %.1f s, %lu passes: %d of %lu frames moved, node %d, "
		 "changed %d, pending %llu, skipped invalidations %llu",
		 t - t0, iters, moved, HPAGE_NR, node_of(p), changed(a),
		 (unsigned long long)pending(),
		 (unsigned long long)(kdreg2_read_counter(
			&mapwatch_status_ext(st)->skipped_invalidations) -
			skipped0));
	vmstat_diag(vm0, vm1);
	if (!moved)
		tap_diag("NUMA balancing never moved the page within %d s "
			 "(the counters above: did a scan mark it, did a "
			 "fault try to move it)", NUMA_WAIT_S);
	ASSERT_GT(moved, 0);

	/* The frames moved: that is a change the region must report. */
	ASSERT_TRUE(changed(a));
	ASSERT_EQ(pending(), 1);
	expect_event(p, HPAGE, 42);
	node = node_of(p);
	ASSERT_EQ(node, 1);
	ASSERT_EQ(moved, (int)HPAGE_NR);	/* one huge page, moved whole */
	for (size_t i = 0; i < HPAGE; i += PAGE)
		ASSERT_EQ(p[i], 0x5a);
	close(pm);
}

static void thp_balancing_case(bool scanned_first)
{
	const char *scan;
	pid_t pid;
	int status;

	need_two_nodes();
	if (access("/proc/sys/kernel/numa_balancing", F_OK))
		SKIP("kernel without NUMA balancing (CONFIG_NUMA_BALANCING)");
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK))
		NEED("thp", "kernel without transparent huge pages");
	if (thp_never())
		ASSERT_OK(knob_set("/sys/kernel/mm/transparent_hugepage/enabled",
				   "madvise"));
	ASSERT_OK(knob_set("/proc/sys/kernel/numa_balancing", "1"));
	scan = numa_scan_fast();
	tap_diag("scan periods: %s", scan ? scan : "defaults (no knobs)");
	pid = fork();
	if (pid == 0) {
		thp_balancing_child(scanned_first);
		fflush(stdout);
		_exit(tap_case_failed);
	}
	if (pid > 0)
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	knobs_restore();
	ASSERT_GT(pid, 0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == TAP_SKIP_EXIT)
		exit(TAP_SKIP_EXIT);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		tap_diag("the case's child failed (wait status %#x)", status);
		exit(1);
	}
}

TEST(numa_balancing_thp_migration_invalidates)
{
	thp_balancing_case(false);
}

/*
 * The hinting scan marks the huge page before the region is watched, the
 * move comes after.  Before 5.14 nothing but that earlier scan announced
 * the move, so MONITOR itself must notice the PROT_NONE PMD
 * (module/protnone.c).  From 5.14 on a THP's NUMA move has its own range
 * and the scan skips VMAs the task has not touched lately (so waiting
 * without touching may never mark it): the case is about the older kernels.
 */
TEST(numa_balancing_thp_scanned_before_watch_invalidates)
{
	struct utsname u;
	int maj = 0, min = 0;

	ASSERT_OK(uname(&u));
	ASSERT_EQ(sscanf(u.release, "%d.%d", &maj, &min), 2);
	if (maj > 5 || (maj == 5 && min >= 14))
		SKIP("a THP's NUMA move has its own notifier range from 5.14 "
		     "on (numa_balancing_thp_migration_invalidates covers it)");
	thp_balancing_case(true);
}

/*
 * A huge page mprotect()ed PROT_NONE (a guard) has the same PMD as one a
 * NUMA scan marked, but never faults back in: watching a range over it is
 * no change (before 5.14 MONITOR looks for scan-marked PMDs; it must tell
 * the two apart, or every watch over a guard would be stale at once).  Two
 * nodes: with one the search never runs.
 */
TEST(protnone_guard_thp_is_no_change_at_monitor)
{
	char *area, *p;
	params_t a;

	need_two_nodes();
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) ||
	    thp_never())
		NEED("thp", "transparent huge pages off or absent");
	area = mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(area != MAP_FAILED);
	p = (char *)(((uintptr_t)area + HPAGE - 1) & ~(HPAGE - 1));
	ASSERT_OK(madvise(p, 2 * HPAGE, MADV_HUGEPAGE));
	memset(p, 0x5a, 2 * HPAGE);
	/* smaps counts a whole VMA: both huge pages, then the guard's. */
	if (anon_huge_kb(p) != (long)(2 * HPAGE / 1024))
		NEED("thp", "no transparent huge pages behind a touched, "
		     "aligned MADV_HUGEPAGE range");
	ASSERT_OK(mprotect(p + HPAGE, HPAGE, PROT_NONE));
	ASSERT_EQ(anon_huge_kb(p + HPAGE), (long)(HPAGE / 1024));
	setup();
	a = watch(p, 2 * HPAGE, 7);
	ASSERT_FALSE(changed(a));
	ASSERT_EQ(pending(), 0);
	ASSERT_OK(munmap(area, 3 * HPAGE));
	ASSERT_TRUE(changed(a));
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
