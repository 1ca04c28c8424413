// SPDX-License-Identifier: GPL-2.0-only
/*
 * Why a region was invalidated (issue 26): with MAPWATCH_POLICY_REASONS the
 * _alignment word of each event says what happened (enum mapwatch_reason),
 * who did it (enum mapwatch_cause) and whether the frames stayed
 * (MAPWATCH_EVENT_F_PAGES_KEPT); without the policy it is 0, as kdreg2
 * writes it.  One case per reason and cause a user process can bring
 * about, the covering record's reason, and the per-fd counters in
 * /proc/PID/fdinfo and the global ones in /sys/kernel/mapwatch.
 *
 * usage: reasons [CASE...]      (TAP)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "mapwatch_uapi.h"
#include "pagemap.h"
#include "skipped_events.h"
#include "tap.h"

#define PAGE 4096UL
#define HPAGE (2UL << 20)
#define EV_SIZE ((ssize_t)sizeof(struct kdreg2_event))
#define PARAM_MAX_PENDING "/sys/module/mapwatch/parameters/max_pending_events"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif

typedef struct kdreg2_monitoring_params params_t;

static const char *const reason_names[] = MAPWATCH_REASON_NAMES;
static const char *const cause_names[] = MAPWATCH_CAUSE_NAMES;

_Static_assert(sizeof(reason_names) / sizeof(reason_names[0]) ==
	       MAPWATCH_REASON_COUNT, "a name per reason");
_Static_assert(sizeof(cause_names) / sizeof(cause_names[0]) ==
	       MAPWATCH_CAUSE_COUNT, "a name per cause");

#define R(x) MAPWATCH_REASON_##x
#define C(x) MAPWATCH_CAUSE_##x
#define KEPT MAPWATCH_EVENT_F_PAGES_KEPT

static int fd;
static const struct kdreg2_status_data *st;

static long set_policy(int f, uint32_t flags)
{
	struct mapwatch_policy pol = { .size = sizeof(pol), .flags = flags };

	return ioctl(f, MAPWATCH_IOCTL_SET_POLICY, &pol);
}

/* This case's fd, non-blocking, with @policy (REASONS unless told). */
static void setup_policy(size_t max, uint32_t policy, int oflags)
{
	struct kdreg2_config_data c = { .max_regions = max };

	fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_NONBLOCK | oflags);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	st = c.status_data;
	ASSERT_OK(set_policy(fd, policy));
}

static void setup(void)
{
	setup_policy(64, MAPWATCH_POLICY_REASONS, O_CLOEXEC);
}

static char *map_anon(size_t n)
{
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	ASSERT_OK(madvise(p, n * PAGE, MADV_NOHUGEPAGE));
	memset(p, 0x5a, n * PAGE);
	return p;
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

static const char *rname(unsigned int r)
{
	return r < MAPWATCH_REASON_COUNT ? reason_names[r] : "?";
}

static const char *cname(unsigned int c)
{
	return c < MAPWATCH_CAUSE_COUNT ? cause_names[c] : "?";
}

static void show_word(const char *what, uint32_t w)
{
	tap_diag("%s: reason %s, cause %s%s (word %#x)", what,
		 rname(w & 0xff), cname(w >> 8 & 0xff),
		 w & KEPT ? ", pages kept" : "", w);
}

/* The next record's reason word; its type, range and cookie must match. */
static uint32_t next_word(const void *addr, size_t len, uint64_t cookie)
{
	struct kdreg2_event ev;

	ASSERT_EQ(read(fd, &ev, sizeof(ev)), EV_SIZE);
	ASSERT_EQ(ev.type, KDREG2_EVENT_MAPPING_CHANGE);
	ASSERT_EQ((uintptr_t)ev.u.mapping_change.addr, (uintptr_t)addr);
	ASSERT_EQ(ev.u.mapping_change.len, len);
	ASSERT_EQ(ev.u.mapping_change.cookie, cookie);
	ASSERT_EQ(MAPWATCH_EVENT_REASON(&ev), ev._alignment & 0xff);
	ASSERT_EQ(MAPWATCH_EVENT_CAUSE(&ev), ev._alignment >> 8 & 0xff);
	return ev._alignment;
}

/* The next record says exactly (reason, cause, flags). */
static void expect_why(const void *addr, size_t len, uint64_t cookie,
		       unsigned int reason, unsigned int cause,
		       unsigned int flags)
{
	uint32_t w = next_word(addr, len, cookie);
	uint32_t want = reason | cause << 8 | flags;

	show_word("event", w);
	if (w != want) {
		show_word("wanted", want);
		ASSERT_EQ(w, want);
	}
}

static void expect_no_event(void)
{
	struct kdreg2_event ev;

	ASSERT_EQ(pending(), 0);
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);
}

/* One region over [addr, addr+len): after @call, exactly this event. */
#define WHY(addr, len, call, reason, cause, flags)			\
	do {								\
		params_t why_p_ = watch((addr), (len), 42);		\
		ASSERT_OK(call);					\
		ASSERT_TRUE(changed(why_p_));				\
		ASSERT_EQ(pending(), 1);				\
		expect_why((addr), (len), 42, (reason), (cause), (flags)); \
		expect_no_event();					\
	} while (0)

static int write_str(const char *path, const char *val)
{
	int f = open(path, O_WRONLY);
	ssize_t n;

	if (f < 0)
		return -errno;
	n = write(f, val, strlen(val));
	n = n < 0 ? -errno : 0;
	close(f);
	return (int)n;
}

/*
 * Knobs a case changes, restored when it fails (exit) and by the case
 * itself when it passes (tap.h ends a passing case with _exit()).
 */
static struct {
	char path[160];
	char old[64];
} knobs[8];
static int nknobs;

static void knobs_restore(void)
{
	while (nknobs > 0) {
		nknobs--;
		write_str(knobs[nknobs].path, knobs[nknobs].old);
	}
}

static void knob_set(const char *path, const char *val)
{
	int f = open(path, O_RDONLY);
	ssize_t n;

	ASSERT_TRUE(f >= 0);
	ASSERT_LT(nknobs, 8);
	n = read(f, knobs[nknobs].old, sizeof(knobs[nknobs].old) - 1);
	close(f);
	ASSERT_GT(n, 0);
	knobs[nknobs].old[n] = 0;
	/* A choice file ("[always] madvise never"): the chosen word. */
	{
		char *o = knobs[nknobs].old, *b = strchr(o, '['), *e;

		if (b && (e = strchr(b, ']'))) {
			*e = 0;
			memmove(o, b + 1, strlen(b + 1) + 1);
		}
	}
	snprintf(knobs[nknobs].path, sizeof(knobs[nknobs].path), "%s", path);
	if (nknobs++ == 0)
		atexit(knobs_restore);
	ASSERT_EQ(write_str(path, val), 0);
}

static uint64_t pfn_of(const void *addr)
{
	int f = open("/proc/self/pagemap", O_RDONLY);
	uint64_t pfn;

	ASSERT_TRUE(f >= 0);
	pfn = pagemap_frame(f, addr);
	close(f);
	ASSERT_TRUE(pfn);
	return pfn;
}

static int wait_child(pid_t pid)
{
	int status;

	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * "mapwatch-PREFIX-NAME:\tN" of /proc/PID/fdinfo/FD; -1 if the line is not
 * there.
 */
static long long fdinfo_of(pid_t pid, int f, const char *prefix,
			   const char *name)
{
	char path[64], line[160], key[96];
	long long v = -1;
	size_t kl;
	FILE *in;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, f);
	snprintf(key, sizeof(key), "mapwatch-%s-%s:\t", prefix, name);
	kl = strlen(key);
	in = fopen(path, "r");
	ASSERT_TRUE(in != NULL);
	while (fgets(line, sizeof(line), in))
		if (!strncmp(line, key, kl))
			v = strtoll(line + kl, NULL, 10);
	fclose(in);
	return v;
}

static long long fdinfo(const char *prefix, const char *name)
{
	return fdinfo_of(getpid(), fd, prefix, name);
}

/* "NAME N" in /sys/kernel/mapwatch/FILE; -1 if not there. */
static long long sys_count(const char *file, const char *name)
{
	char path[96], w[64];
	long long v = -1, n;
	FILE *in;

	snprintf(path, sizeof(path), "/sys/kernel/mapwatch/%s", file);
	in = fopen(path, "r");
	ASSERT_TRUE(in != NULL);
	while (fscanf(in, "%63s %lld", w, &n) == 2)
		if (!strcmp(w, name))
			v = n;
	fclose(in);
	return v;
}

/* ---- the policy, the probe ------------------------------------------- */

TEST(probe_reports_reasons)
{
	struct mapwatch_probe p = { .size = sizeof(p) };

	setup_policy(8, 0, O_CLOEXEC);
	ASSERT_OK(ioctl(fd, MAPWATCH_IOCTL_PROBE, &p));
	ASSERT_TRUE(p.features & MAPWATCH_FEATURE_REASONS);
	ASSERT_OK(set_policy(fd, MAPWATCH_POLICY_REASONS));
	ASSERT_OK(set_policy(fd, MAPWATCH_POLICY_MASK));
	ASSERT_ERRNO(set_policy(fd, MAPWATCH_POLICY_MASK + 1), EINVAL);
}

/* Without the policy the word is 0 (kdreg2's), whatever happened. */
TEST(policy_off_leaves_alignment_zero)
{
	char *p = map_anon(3);
	params_t a, b;

	setup_policy(8, 0, O_CLOEXEC);
	a = watch(p, PAGE, 1);
	b = watch(p + PAGE, PAGE, 2);
	watch(p + 2 * PAGE, PAGE, 3);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_OK(madvise(p + PAGE, PAGE, MADV_DONTNEED));
	ASSERT_TRUE(changed(a) && changed(b));
	ASSERT_EQ(next_word(p, PAGE, 1), 0);
	/* The policy is read at read(), not at the change. */
	ASSERT_OK(set_policy(fd, MAPWATCH_POLICY_REASONS));
	ASSERT_OK(set_policy(fd, 0));
	ASSERT_EQ(next_word(p + PAGE, PAGE, 2), 0);
	ASSERT_OK(munmap(p + 2 * PAGE, PAGE));
	ASSERT_OK(set_policy(fd, MAPWATCH_POLICY_REASONS));
	expect_why(p + 2 * PAGE, PAGE, 3, R(UNMAPPED), C(MUNMAP), 0);
}

/* ---- unmapped --------------------------------------------------------- */

TEST(munmap_unmapped)
{
	char *p = map_anon(2);

	setup();
	WHY(p, 2 * PAGE, munmap(p + PAGE, PAGE), R(UNMAPPED), C(MUNMAP), 0);
}

TEST(mmap_fixed_over_unmapped)
{
	char *p = map_anon(2);

	setup();
	WHY(p, 2 * PAGE,
	    mmap(p, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) == p ? 0 : -1,
	    R(UNMAPPED), C(MMAP), 0);
}

TEST(madvise_dontneed_unmapped)
{
	char *p = map_anon(2);

	setup();
	WHY(p, 2 * PAGE, madvise(p, PAGE, MADV_DONTNEED),
	    R(UNMAPPED), C(MADVISE), 0);
}

/* MADV_FREE on touched anonymous pages invalidates at the call itself. */
TEST(madvise_free_unmapped)
{
	char *p = map_anon(2);

	setup();
	WHY(p, 2 * PAGE, madvise(p + PAGE, PAGE, MADV_FREE),
	    R(UNMAPPED), C(MADVISE), 0);
}

TEST(madvise_remove_on_shmem_unmapped)
{
	int f = memfd_create("mw-reasons", MFD_CLOEXEC);
	char *p;

	ASSERT_TRUE(f >= 0);
	ASSERT_OK(ftruncate(f, 4 * PAGE));
	p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 7, 4 * PAGE);
	setup();
	WHY(p + PAGE, 2 * PAGE, madvise(p + 2 * PAGE, PAGE, MADV_REMOVE),
	    R(UNMAPPED), C(MADVISE), 0);
}

TEST(brk_shrink_unmapped)
{
	uintptr_t cur = (uintptr_t)sbrk(0);
	uintptr_t base = (cur + PAGE - 1) & ~(PAGE - 1);

	setup();
	ASSERT_TRUE(sbrk(base - cur + 2 * PAGE) == (void *)cur);
	memset((void *)base, 1, 2 * PAGE);
	WHY((void *)(base + PAGE), PAGE,
	    sbrk(-(intptr_t)PAGE) == (void *)(base + 2 * PAGE) ? 0 : -1,
	    R(UNMAPPED), C(BRK), 0);
}

TEST(shmdt_unmapped)
{
	int id = shmget(IPC_PRIVATE, 2 * PAGE, IPC_CREAT | 0600);
	char *p;

	ASSERT_TRUE(id >= 0);
	p = shmat(id, NULL, 0);
	ASSERT_OK(shmctl(id, IPC_RMID, NULL));
	ASSERT_TRUE(p != (void *)-1);
	memset(p, 9, 2 * PAGE);
	setup();
	WHY(p + PAGE, 100, shmdt(p), R(UNMAPPED), C(SHMDT), 0);
}

/* ---- mremap ----------------------------------------------------------- */

TEST(mremap_move_moved)
{
	char *p = map_anon(2), *q = map_anon(2);
	char *r;

	setup();
	watch(p, 2 * PAGE, 1);
	r = mremap(p, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, q);
	ASSERT_TRUE(r == q);
	ASSERT_EQ(pending(), 1);
	expect_why(p, 2 * PAGE, 1, R(MOVED), C(MREMAP), 0);
	expect_no_event();
}

/* The tail a shrink gives back is unmapped; the head stays. */
TEST(mremap_shrink_unmapped)
{
	char *p = map_anon(4);
	params_t head;

	setup();
	head = watch(p, PAGE, 1);
	watch(p + 3 * PAGE, PAGE, 2);
	ASSERT_TRUE(mremap(p, 4 * PAGE, 2 * PAGE, 0) == p);
	ASSERT_FALSE(changed(head));
	expect_why(p + 3 * PAGE, PAGE, 2, R(UNMAPPED), C(MREMAP), 0);
	expect_no_event();
}

/* ---- replaced --------------------------------------------------------- */

/*
 * The parent writes a page it shares with its child after fork: the fault
 * copies it (the child still maps the old one).
 */
TEST(cow_after_fork_replaced_by_fault)
{
	char *p = map_anon(2);
	uint64_t before;
	params_t a, b;
	int go[2];
	pid_t pid;
	char c;

	setup();
	a = watch(p, PAGE, 1);
	b = watch(p + PAGE, PAGE, 2);
	ASSERT_OK(pipe(go));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(p[0] == 0x5a ? 0 : 1);
	}
	/* fork's write-protect is skipped by the default policy. */
	expect_no_event();
	before = pfn_of(p);
	p[0] = 1;
	ASSERT_NE(pfn_of(p), before);
	ASSERT_TRUE(changed(a));
	ASSERT_FALSE(changed(b));
	expect_why(p, PAGE, 1, R(REPLACED), C(FAULT), 0);
	expect_no_event();
	ASSERT_EQ(write(go[1], "g", 1), 1);
	ASSERT_EQ(wait_child(pid), 0);
}

static int online_nodes(void)
{
	char buf[64] = "";
	char *s = buf;
	int f = open("/sys/devices/system/node/online", O_RDONLY), n = 0;

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

/* move_pages(2) of our own page to the other node. */
TEST(move_pages_replaced_by_migrate)
{
	char *p = map_anon(2);
	void *pg = p + PAGE;
	int node = -1, status = -1;
	params_t a, b;

	if (online_nodes() < 2)
		NEED("numa2", "one NUMA node: needs a 2-node guest (vm/run --numa)");
	setup();
	a = watch(p, PAGE, 1);
	b = watch(p + PAGE, PAGE, 2);
	ASSERT_EQ(syscall(SYS_move_pages, 0, 1, &pg, NULL, &node, 0), 0);
	ASSERT_GE(node, 0);
	node = !node;
	ASSERT_EQ(syscall(SYS_move_pages, 0, 1, &pg, &node, &status,
			  MPOL_MF_MOVE), 0);
	ASSERT_EQ(status, node);
	ASSERT_FALSE(changed(a));
	ASSERT_TRUE(changed(b));
	expect_why(p + PAGE, PAGE, 2, R(REPLACED), C(MIGRATE), 0);
	expect_no_event();
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* Short NUMA balancing scan periods, where this kernel has the knobs. */
static const char *numa_scan_fast(void)
{
	static const char *const dirs[] = {
		"/proc/sys/kernel/numa_balancing_",
		"/sys/kernel/debug/sched/numa_balancing/",
	};
	static const char *const knob[][2] = {
		{ "scan_delay_ms", "10" },
		{ "scan_period_min_ms", "10" },
		{ "scan_period_max_ms", "100" },
	};
	char path[128];

	if (access("/sys/kernel/debug/sched", F_OK))
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	for (size_t d = 0; d < 2; d++) {
		snprintf(path, sizeof(path), "%s%s", dirs[d], knob[0][0]);
		if (access(path, W_OK))
			continue;
		for (size_t i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "%s%s", dirs[d],
				 knob[i][0]);
			knob_set(path, knob[i][1]);
		}
		return dirs[d];
	}
	return NULL;
}

/* A fresh mm (its first scan waits scan_delay_ms from its creation). */
static void numa_scan_child(void)
{
	volatile char *v;
	char *p = map_anon(16);
	unsigned int want_flags;
	double t0;

	setup_policy(8, MAPWATCH_POLICY_REASONS |
		     MAPWATCH_POLICY_ALL_INVALIDATIONS, O_CLOEXEC);
	watch(p, 16 * PAGE, 1);
	v = p;
	t0 = now_s();
	/* A hang guard on a slow guest, not a timing check. */
	while (!pending() && now_s() - t0 < 60)
		for (size_t i = 0; i < 16; i++)
			(void)v[i * PAGE];
	tap_diag("after %.1f s", now_s() - t0);
	ASSERT_EQ(pending(), 1);
	/* 5.10: a THP may move under the scan's range alone: not kept. */
	want_flags = mw_skips("protection_vma") ? KEPT : 0;
	expect_why(p, 16 * PAGE, 1, R(PROTECTION), C(NUMA_SCAN), want_flags);
}

/* NUMA balancing's scan (task work of the process) makes pages PROT_NONE. */
TEST(numa_scan_protection_by_numa_scan)
{
	const char *scan;
	pid_t pid;

	if (online_nodes() < 2)
		NEED("numa2", "one NUMA node: needs a 2-node guest (vm/run --numa)");
	if (access("/proc/sys/kernel/numa_balancing", F_OK))
		SKIP("kernel without NUMA balancing (CONFIG_NUMA_BALANCING)");
	knob_set("/proc/sys/kernel/numa_balancing", "1");
	scan = numa_scan_fast();
	tap_diag("scan periods: %s", scan ? scan : "defaults (no knobs)");
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		numa_scan_child();
		fflush(stdout);
		_exit(tap_case_failed);
	}
	ASSERT_EQ(wait_child(pid), 0);
	knobs_restore();
}

static bool ksm_all_merged(const char *p, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (pfn_of(p + i * PAGE) != pfn_of(p))
			return false;
	return true;
}

/* ksmd merges four identical pages: every region says ksm. */
TEST(ksm_merge_replaced_by_ksm)
{
	char *p = map_anon(4);
	int i;

	if (access("/sys/kernel/mm/ksm/run", W_OK) ||
	    madvise(p, 4 * PAGE, MADV_MERGEABLE))
		NEED("ksm", "kernel without KSM (CONFIG_KSM)");
	setup();
	for (i = 0; i < 4; i++)
		watch(p + i * PAGE, PAGE, i);
	knob_set("/sys/kernel/mm/ksm/pages_to_scan", "1000");
	knob_set("/sys/kernel/mm/ksm/sleep_millisecs", "10");
	knob_set("/sys/kernel/mm/ksm/run", "1");
	/* A hang guard on a slow guest, not a timing check. */
	for (i = 0; i < 3000 && !ksm_all_merged(p, 4); i++)
		usleep(20000);
	ASSERT_TRUE(ksm_all_merged(p, 4));
	ASSERT_EQ(pending(), 4);
	for (i = 0; i < 4; i++) {
		struct kdreg2_event ev;

		ASSERT_EQ(read(fd, &ev, sizeof(ev)), EV_SIZE);
		show_word("event", ev._alignment);
		ASSERT_EQ(ev._alignment, R(REPLACED) | C(KSM) << 8);
	}
	knobs_restore();
}

static long anon_huge_kb(const void *addr)
{
	long kb = smaps_anon_huge_kb(addr);

	ASSERT_GE(kb, 0);
	return kb;
}

/* An aligned 2 MiB of small pages (no THP yet), touched. */
static char *map_2m_small(void)
{
	char *a = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	ASSERT_TRUE(a != MAP_FAILED);
	p = (char *)(((uintptr_t)a + HPAGE - 1) & ~(HPAGE - 1));
	ASSERT_OK(madvise(p, HPAGE, MADV_NOHUGEPAGE));
	memset(p, 0x5a, HPAGE);
	ASSERT_EQ(anon_huge_kb(p), 0);
	return p;
}

TEST(khugepaged_collapse_replaced_by_khugepaged)
{
	const char *kh = "/sys/kernel/mm/transparent_hugepage/khugepaged/";
	char path[128];
	char *p;
	int i;

	if (access(kh, F_OK))
		NEED("thp", "kernel without transparent huge pages");
	p = map_2m_small();
	setup();
	watch(p + 7 * PAGE, PAGE, 1);
	snprintf(path, sizeof(path), "%spages_to_scan", kh);
	knob_set(path, "4096");
	snprintf(path, sizeof(path), "%salloc_sleep_millisecs", kh);
	knob_set(path, "10");
	snprintf(path, sizeof(path), "%sscan_sleep_millisecs", kh);
	knob_set(path, "10");
	ASSERT_OK(madvise(p, HPAGE, MADV_HUGEPAGE));
	/* A hang guard on a slow guest, not a timing check. */
	for (i = 0; i < 3000 && anon_huge_kb(p) == 0; i++)
		usleep(20000);
	ASSERT_EQ(anon_huge_kb(p), (long)(HPAGE / 1024));
	expect_why(p + 7 * PAGE, PAGE, 1, R(REPLACED), C(KHUGEPAGED), 0);
	expect_no_event();
	knobs_restore();
}

/*
 * MADV_COLLAPSE, on a range khugepaged leaves alone: THP "madvise" for the
 * case and no MADV_HUGEPAGE, so khugepaged does not collapse it first (it
 * did, once, between a MADV_HUGEPAGE and the collapse; and the test guest
 * runs THP "always").  MADV_COLLAPSE ignores that setting.
 */
TEST(madv_collapse_replaced_by_madvise)
{
	const char *thp = "/sys/kernel/mm/transparent_hugepage/enabled";
	int r, tries = 0;
	char *a, *p;

	if (access(thp, W_OK))
		NEED("thp", "kernel without transparent huge pages");
	knob_set(thp, "madvise");
	a = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(a != MAP_FAILED);
	p = (char *)(((uintptr_t)a + HPAGE - 1) & ~(HPAGE - 1));
	memset(p, 0x5a, HPAGE);
	ASSERT_EQ(anon_huge_kb(p), 0);
	setup();
	watch(p + 5 * PAGE, PAGE, 1);
	do {
		r = madvise(p, HPAGE, MADV_COLLAPSE);
	} while (r && (errno == EAGAIN || errno == ENOMEM) && ++tries < 5);
	if (r && errno == EINVAL)
		NEED("madv_collapse", "kernel without MADV_COLLAPSE (6.1)");
	ASSERT_EQ(r, 0);
	ASSERT_EQ(anon_huge_kb(p), (long)(HPAGE / 1024));
	expect_why(p + 5 * PAGE, PAGE, 1, R(REPLACED), C(MADVISE), 0);
	expect_no_event();
	knobs_restore();
}

static void swap_off(void)
{
	syscall(SYS_swapoff, "/dev/zram0");
	write_str("/sys/block/zram0/reset", "1");
}

/* Swap on a zram device for the case; swap_off() (also at exit) undoes it. */
static void swap_on_zram(void)
{
	if (system("modprobe zram num_devices=1 2>/dev/null") != 0 ||
	    access("/sys/block/zram0/disksize", W_OK))
		NEED("zram", "no zram device for swap (CONFIG_ZRAM)");
	swap_off();
	atexit(swap_off);
	ASSERT_EQ(write_str("/sys/block/zram0/disksize", "64M"), 0);
	ASSERT_EQ(system("mkswap /dev/zram0 >/dev/null"), 0);
	ASSERT_OK(syscall(SYS_swapon, "/dev/zram0", 0));
}

/* The page's pagemap entry (present bit 63, swapped bit 62). */
static uint64_t pagemap_of(const void *addr)
{
	int f = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;

	ASSERT_TRUE(f >= 0);
	ASSERT_EQ(pread(f, &e, sizeof(e),
			(off_t)((uintptr_t)addr / PAGE * sizeof(e))),
		  (ssize_t)sizeof(e));
	close(f);
	return e;
}

/* MADV_PAGEOUT writes a private anonymous page to swap (on zram). */
TEST(madv_pageout_replaced_by_madvise)
{
	char *p = map_anon(2);

	swap_on_zram();
	setup();
	WHY(p + PAGE, PAGE, madvise(p + PAGE, PAGE, MADV_PAGEOUT),
	    R(REPLACED), C(MADVISE), 0);
	ASSERT_EQ(p[PAGE], 0x5a);
	swap_off();
}

/*
 * Reclaim under a cgroup's memory.high: the task reclaims for itself
 * (PF_MEMALLOC) on its way back to user space, writing the oldest pages,
 * the watched ones, to swap.  Reclaim may also start on a page and keep
 * it: every region it reported says reclaim.
 */
static void cg2_cleanup(void)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d\n", getpid());
	write_str("/tmp/mw-reasons-cg2/cgroup.procs", buf);
	rmdir("/tmp/mw-reasons-cg2/mw");
	umount2("/tmp/mw-reasons-cg2", MNT_DETACH);
	rmdir("/tmp/mw-reasons-cg2");
}

TEST(memory_high_replaced_by_reclaim)
{
	const size_t fill = 96UL << 20, step = 4UL << 20;
	char buf[32], *p, *f;
	size_t done = 0;
	int i, swapped = 0, n = 0;
	struct kdreg2_event ev;

	swap_on_zram();
	mkdir("/tmp/mw-reasons-cg2", 0700);
	if (mount("cgroup2", "/tmp/mw-reasons-cg2", "cgroup2", 0, NULL))
		NEED("memcg", "no cgroup2: errno %d", errno);
	atexit(cg2_cleanup);
	if (write_str("/tmp/mw-reasons-cg2/cgroup.subtree_control", "+memory"))
		NEED("memcg", "no memory controller (CONFIG_MEMCG)");
	ASSERT_OK(mkdir("/tmp/mw-reasons-cg2/mw", 0700));
	ASSERT_EQ(write_str("/tmp/mw-reasons-cg2/mw/memory.high", "16M"), 0);
	snprintf(buf, sizeof(buf), "%d\n", getpid());
	ASSERT_EQ(write_str("/tmp/mw-reasons-cg2/mw/cgroup.procs", buf), 0);
	p = map_anon(4);	/* charged to the group from here on */
	setup();
	for (i = 0; i < 4; i++)
		watch(p + i * PAGE, PAGE, i);
	f = mmap(NULL, fill, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(f != MAP_FAILED);
	ASSERT_OK(madvise(f, fill, MADV_NOHUGEPAGE));
	while (!swapped && done < fill) {
		memset(f + done, 0x11, step);
		done += step;
		for (i = 0; i < 4; i++)
			swapped += pagemap_of(p + i * PAGE) >> 62 & 1;
	}
	tap_diag("%d of 4 watched pages swapped out after %zu MiB", swapped,
		 done >> 20);
	ASSERT_GT(swapped, 0);
	while (read(fd, &ev, sizeof(ev)) == EV_SIZE) {
		show_word("event", ev._alignment);
		ASSERT_EQ(ev._alignment, R(REPLACED) | C(RECLAIM) << 8);
		n++;
	}
	ASSERT_GE(n, swapped);
	ASSERT_EQ(p[0], 0x5a);
	ASSERT_OK(munmap(f, fill));
	cg2_cleanup();
	swap_off();
}

/*
 * A file shrinking under a shared mapping (ftruncate, a system call the
 * module does not name): the mapping stays, its pages went.
 */
TEST(ftruncate_replaced_by_syscall)
{
	int f = memfd_create("mw-reasons-trunc", MFD_CLOEXEC);
	char *p;

	ASSERT_TRUE(f >= 0);
	ASSERT_OK(ftruncate(f, 4 * PAGE));
	p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 7, 4 * PAGE);
	setup();
	WHY(p + 2 * PAGE, 2 * PAGE, ftruncate(f, 2 * PAGE),
	    R(REPLACED), C(SYSCALL), 0);
}

static int clone_fn(void *arg)
{
	(void)arg;
	return 0;	/* exits: the kernel clears *ctid on its way out */
}

/*
 * An exiting task changes a page: a CLONE_VM child with its clear-tid word
 * in a watched page that a fork left shared with another process.  The
 * kernel's write of 0 there at the child's exit copies the page
 * (copy-on-write) in a task already marked exiting.
 */
TEST(exit_of_clone_vm_child_replaced_by_exit)
{
	char *p = map_anon(1), *stack = map_anon(16);
	uint64_t before;
	int go[2];
	pid_t f, c;
	char ch;

	setup();
	watch(p, PAGE, 1);
	ASSERT_OK(pipe(go));
	f = fork();	/* shares p until told to go */
	ASSERT_GE(f, 0);
	if (f == 0) {
		if (read(go[0], &ch, 1) != 1)
			_exit(2);
		_exit(p[0] == 0x5a ? 0 : 1);
	}
	expect_no_event();
	before = pfn_of(p);
	c = clone(clone_fn, stack + 16 * PAGE,
		  CLONE_VM | CLONE_CHILD_CLEARTID | SIGCHLD, NULL, NULL, NULL,
		  (pid_t *)p);
	ASSERT_GT(c, 0);
	ASSERT_EQ(wait_child(c), 0);
	ASSERT_EQ(*(volatile pid_t *)p, 0);	/* the kernel's write */
	ASSERT_NE(pfn_of(p), before);
	expect_why(p, PAGE, 1, R(REPLACED), C(EXIT), 0);
	expect_no_event();
	ASSERT_EQ(write(go[1], "g", 1), 1);
	ASSERT_EQ(wait_child(f), 0);
}

/* ---- protection (ALL_INVALIDATIONS) ----------------------------------- */

TEST(fork_write_protect_protection_by_fork)
{
	char *p = map_anon(2);
	pid_t pid;

	setup_policy(8, MAPWATCH_POLICY_REASONS |
		     MAPWATCH_POLICY_ALL_INVALIDATIONS, O_CLOEXEC);
	watch(p, 2 * PAGE, 1);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(wait_child(pid), 0);
	expect_why(p, 2 * PAGE, 1, R(PROTECTION), C(FORK), KEPT);
	expect_no_event();
}

TEST(mprotect_protection_by_mprotect)
{
	char *p = map_anon(2);

	setup_policy(8, MAPWATCH_POLICY_REASONS |
		     MAPWATCH_POLICY_ALL_INVALIDATIONS, O_CLOEXEC);
	/* 5.10: no PROTECTION_VMA says the frames stayed (a THP may move
	 * under a NUMA scan's, and a scan can read as mprotect). */
	WHY(p, PAGE, mprotect(p, 2 * PAGE, PROT_READ),
	    R(PROTECTION), C(MPROTECT),
	    mw_skips("protection_vma") ? KEPT : 0);
}

/* Where mprotect is skipped (not 5.10), the skip is counted by cause. */
TEST(mprotect_skipped_counted_by_cause)
{
	char *p = map_anon(2);
	params_t a;

	setup();
	a = watch(p, PAGE, 1);
	ASSERT_OK(mprotect(p, 2 * PAGE, PROT_READ));
	if (!mw_skips("protection_vma")) {
		tap_diag("this kernel does not skip mprotect (5.10: a THP "
			 "may move under the NUMA scan's PROTECTION_VMA)");
		expect_why(p, PAGE, 1, R(PROTECTION), C(MPROTECT), 0);
		ASSERT_EQ(fdinfo("skipped-cause", "mprotect"), 0);
		return;
	}
	ASSERT_FALSE(changed(a));
	expect_no_event();
	ASSERT_EQ(fdinfo("skipped-cause", "mprotect"), 1);
	ASSERT_EQ(fdinfo("reason", "protection"), 0);
}

TEST(clear_refs_protection_by_soft_dirty)
{
	char *p = map_anon(2);
	int cr = open("/proc/self/clear_refs", O_WRONLY);

	ASSERT_TRUE(cr >= 0);
	setup_policy(8, MAPWATCH_POLICY_REASONS |
		     MAPWATCH_POLICY_ALL_INVALIDATIONS, O_CLOEXEC);
	watch(p, 2 * PAGE, 1);
	errno = 0;
	if (write(cr, "4", 1) != 1) {
		if (errno == EINVAL)
			NEED("soft_dirty", "kernel without CONFIG_MEM_SOFT_DIRTY");
		ASSERT_TRUE(!"write to clear_refs failed");
	}
	expect_why(p, 2 * PAGE, 1, R(PROTECTION), C(SOFT_DIRTY), KEPT);
	expect_no_event();
}

/* ---- user, exit ------------------------------------------------------- */

/* ---- review cases ----------------------------------------------------- */

/*
 * A THP split at the edge of MADV_DONTNEED (the whole PMD's CLEAR) keeps
 * the pages past the advice's range: a region there reads replaced, not
 * unmapped.
 */
TEST(madvise_edge_split_of_a_thp_replaced)
{
	char *a = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	ASSERT_TRUE(a != MAP_FAILED);
	p = (char *)(((uintptr_t)a + HPAGE - 1) & ~(HPAGE - 1));
	if (madvise(p, HPAGE, MADV_HUGEPAGE))
		NEED("thp", "kernel without transparent huge pages");
	memset(p, 0x5a, HPAGE);
	if (anon_huge_kb(p) != (long)(HPAGE / 1024))
		NEED("thp", "no huge page at fault (THP off or memory short)");
	setup();
	watch(p + HPAGE / 2, PAGE, 1);
	ASSERT_OK(madvise(p, PAGE, MADV_DONTNEED));
	ASSERT_EQ(p[HPAGE / 2], 0x5a);
	expect_why(p + HPAGE / 2, PAGE, 1, R(REPLACED), C(MADVISE), 0);
	expect_no_event();
}

/*
 * Another process's hole punch in shmem both map: not this process's
 * madvise (the cause is the other's system call).
 */
TEST(another_process_madvise_remove_replaced_by_syscall)
{
	int f = memfd_create("mw-reasons-peer", MFD_CLOEXEC);
	pid_t pid;
	char *p;

	ASSERT_TRUE(f >= 0);
	ASSERT_OK(ftruncate(f, 2 * PAGE));
	p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 7, 2 * PAGE);
	setup();
	watch(p, PAGE, 1);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		char *q = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
			       MAP_SHARED, f, 0);

		_exit(q == MAP_FAILED || madvise(q, PAGE, MADV_REMOVE) ? 1 : 0);
	}
	ASSERT_EQ(wait_child(pid), 0);
	expect_why(p, PAGE, 1, R(REPLACED), C(SYSCALL), 0);
	expect_no_event();
}

/* hugetlb moves its page tables under CLEAR (5.16 on): still moved. */
TEST(mremap_of_hugetlb_moved)
{
	char *p, *q, *dst;

	if (write_str("/proc/sys/vm/nr_hugepages", "4"))
		NEED("hugetlb", "cannot reserve huge pages");
	p = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED)
		NEED("hugetlb", "no huge page to map");
	memset(p, 0x5a, HPAGE);
	dst = mmap(NULL, 2 * HPAGE, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_TRUE(dst != MAP_FAILED);
	dst = (char *)(((uintptr_t)dst + HPAGE - 1) & ~(HPAGE - 1));
	setup();
	watch(p, HPAGE, 1);
	q = mremap(p, HPAGE, HPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	if (q == MAP_FAILED && (errno == EINVAL || errno == EFAULT)) {
		write_str("/proc/sys/vm/nr_hugepages", "0");
		SKIP("this kernel cannot mremap hugetlb memory (Linux 5.16 on)");
	}
	ASSERT_TRUE(q == dst);
	ASSERT_EQ(q[0], 0x5a);
	expect_why(p, HPAGE, 1, R(MOVED), C(MREMAP), 0);
	expect_no_event();
	ASSERT_OK(munmap(q, HPAGE));
	write_str("/proc/sys/vm/nr_hugepages", "0");
}

TEST(invalidate_ioctl_user)
{
	char *p = map_anon(2);
	struct mapwatch_invalidate inv = { .size = sizeof(inv),
					   .addr = (uintptr_t)p,
					   .length = PAGE };

	setup();
	WHY(p, 2 * PAGE, ioctl(fd, MAPWATCH_IOCTL_INVALIDATE, &inv),
	    R(USER), C(IOCTL), 0);
	ASSERT_EQ(fdinfo("reason", "user"), 1);
	ASSERT_EQ(fdinfo("cause", "ioctl"), 1);
}

/*
 * The address space goes (exit_mmap): no event can be read, but the regions
 * are counted as exit/exit on the context, which a child that inherited
 * the fd keeps open.
 */
TEST(exit_counted_by_reason_and_cause)
{
	long long before = sys_count("reasons", "exit");
	int pidp[2], go[2];
	pid_t a, b = 0;
	char c;

	ASSERT_GE(before, 0);
	ASSERT_OK(pipe(pidp));
	ASSERT_OK(pipe(go));
	a = fork();
	ASSERT_GE(a, 0);
	if (a == 0) {
		char *p = map_anon(3);

		setup_policy(8, MAPWATCH_POLICY_REASONS, 0);
		watch(p, PAGE, 1);
		watch(p + PAGE, 2 * PAGE, 2);
		b = fork();
		if (b == 0) {
			/* Keeps the fd (and the context) after A is gone. */
			if (read(go[0], &c, 1) != 1)
				_exit(2);
			_exit(0);
		}
		if (write(pidp[1], &b, sizeof(b)) != sizeof(b))
			_exit(3);
		_exit(0);
	}
	ASSERT_EQ(read(pidp[0], &b, sizeof(b)), (ssize_t)sizeof(b));
	ASSERT_EQ(wait_child(a), 0);	/* A's mm went before it was reaped */
	/* fd number: the first free one in A, the same in B (inherited). */
	{
		char path[64], name[64];
		int f = -1;

		for (int i = 3; i < 64 && f < 0; i++) {
			ssize_t n;

			snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)b, i);
			n = readlink(path, name, sizeof(name) - 1);
			if (n > 0) {
				name[n] = 0;
				if (strstr(name, "mapwatch"))
					f = i;
			}
		}
		ASSERT_GE(f, 0);
		EXPECT_EQ(fdinfo_of(b, f, "reason", "exit"), 2);
		EXPECT_EQ(fdinfo_of(b, f, "cause", "exit"), 2);
		EXPECT_EQ(fdinfo_of(b, f, "reason", "unmapped"), 0);
	}
	ASSERT_GE(sys_count("reasons", "exit"), before + 2);
	ASSERT_EQ(write(go[1], "g", 1), 1);
	close(go[1]);
	/* B is A's orphan: reaped by init, not by us. */
}

/* ---- the covering record, the counters -------------------------------- */

static void set_cap(const char *v)
{
	knob_set(PARAM_MAX_PENDING, v);
}

TEST(overflow_record_carries_shared_reason)
{
	char *p = map_anon(6), *q = map_anon(2);
	char *r, *lo, *hi;

	setup();
	watch(p, PAGE, 1);
	watch(p + PAGE, PAGE, 2);
	watch(p + 2 * PAGE, PAGE, 3);
	set_cap("1");
	/* One munmap over three regions: one record, two folded. */
	ASSERT_OK(munmap(p, 3 * PAGE));
	ASSERT_EQ(pending(), 2);
	expect_why(p, PAGE, 1, R(UNMAPPED), C(MUNMAP), 0);
	expect_why(p + PAGE, 2 * PAGE, KDREG2_BAD_COOKIE_VALUE,
		   R(UNMAPPED), C(MUNMAP), 0);
	expect_no_event();
	/* Same reason, two causes: the cause is unknown. */
	watch(p + 3 * PAGE, PAGE, 4);
	watch(p + 4 * PAGE, PAGE, 5);
	watch(p + 5 * PAGE, PAGE, 6);
	ASSERT_OK(munmap(p + 3 * PAGE, PAGE));
	ASSERT_OK(munmap(p + 4 * PAGE, PAGE));
	ASSERT_OK(madvise(p + 5 * PAGE, PAGE, MADV_DONTNEED));
	ASSERT_EQ(pending(), 2);
	expect_why(p + 3 * PAGE, PAGE, 4, R(UNMAPPED), C(MUNMAP), 0);
	expect_why(p + 4 * PAGE, 2 * PAGE, KDREG2_BAD_COOKIE_VALUE,
		   R(UNMAPPED), C(UNKNOWN), 0);
	/* Two reasons: unknown. */
	watch(q, PAGE, 7);
	watch(q + PAGE, PAGE, 8);
	watch(p + 5 * PAGE, PAGE, 9);
	ASSERT_OK(munmap(q + PAGE, PAGE));
	r = mremap(q, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, p + 4 * PAGE);
	ASSERT_TRUE(r == p + 4 * PAGE);
	ASSERT_OK(madvise(p + 5 * PAGE, PAGE, MADV_DONTNEED));
	ASSERT_EQ(pending(), 2);
	expect_why(q + PAGE, PAGE, 8, R(UNMAPPED), C(MUNMAP), 0);
	lo = q < p + 5 * PAGE ? q : p + 5 * PAGE;
	hi = q + PAGE > p + 6 * PAGE ? q + PAGE : p + 6 * PAGE;
	expect_why(lo, (size_t)(hi - lo), KDREG2_BAD_COOKIE_VALUE,
		   R(UNKNOWN), C(UNKNOWN), 0);
	expect_no_event();
	knobs_restore();	/* a case that passes ends with _exit() */
}

/* Every name is listed; the counts are those of the events read. */
TEST(fdinfo_counters_match_events)
{
	long long r0[MAPWATCH_REASON_COUNT], c0[MAPWATCH_CAUSE_COUNT];
	long long rs[MAPWATCH_REASON_COUNT], cs[MAPWATCH_CAUSE_COUNT];
	long long seen_r[MAPWATCH_REASON_COUNT] = { 0 };
	long long seen_c[MAPWATCH_CAUSE_COUNT] = { 0 };
	char *p = map_anon(6);
	struct kdreg2_event ev;
	int i, n = 0;

	for (i = 0; i < MAPWATCH_REASON_COUNT; i++)
		r0[i] = sys_count("reasons", reason_names[i]);
	for (i = 0; i < MAPWATCH_CAUSE_COUNT; i++)
		c0[i] = sys_count("causes", cause_names[i]);
	setup();
	for (i = 0; i < 6; i++)
		watch(p + i * PAGE, PAGE, i);
	ASSERT_OK(munmap(p, 2 * PAGE));
	ASSERT_OK(madvise(p + 2 * PAGE, PAGE, MADV_DONTNEED));
	ASSERT_TRUE(mremap(p + 3 * PAGE, PAGE, PAGE,
			   MREMAP_MAYMOVE | MREMAP_FIXED, p) == p);
	ASSERT_OK(mprotect(p + 5 * PAGE, PAGE, PROT_READ));
	while (read(fd, &ev, sizeof(ev)) == EV_SIZE) {
		seen_r[ev._alignment & 0xff]++;
		seen_c[ev._alignment >> 8 & 0xff]++;
		n++;
	}
	ASSERT_EQ(n, mw_skips("protection_vma") ? 4 : 5);
	ASSERT_EQ(seen_r[R(UNMAPPED)], 3);
	ASSERT_EQ(seen_r[R(MOVED)], 1);
	ASSERT_EQ(seen_c[C(MUNMAP)], 2);
	ASSERT_EQ(seen_c[C(MADVISE)], 1);
	ASSERT_EQ(seen_c[C(MREMAP)], 1);
	for (i = 0; i < MAPWATCH_REASON_COUNT; i++) {
		ASSERT_EQ(fdinfo("reason", reason_names[i]), seen_r[i]);
		rs[i] = sys_count("reasons", reason_names[i]);
		ASSERT_GE(r0[i], 0);
		ASSERT_GE(rs[i] - r0[i], seen_r[i]);
	}
	for (i = 0; i < MAPWATCH_CAUSE_COUNT; i++) {
		ASSERT_EQ(fdinfo("cause", cause_names[i]), seen_c[i]);
		ASSERT_GE(fdinfo("skipped-cause", cause_names[i]), 0);
		cs[i] = sys_count("causes", cause_names[i]);
		ASSERT_GE(c0[i], 0);
		ASSERT_GE(cs[i] - c0[i], seen_c[i]);
	}
	if (mw_skips("protection_vma"))
		ASSERT_EQ(fdinfo("skipped-cause", "mprotect"), 1);
	/* The closed context's counts stay in the sums. */
	close(fd);
	ASSERT_GE(sys_count("reasons", "unmapped"), rs[R(UNMAPPED)]);
	ASSERT_GE(sys_count("causes", "munmap"), cs[C(MUNMAP)]);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
