// SPDX-License-Identifier: GPL-2.0-only
/*
 * What one user can make the module hold, beyond the monitored regions that
 * limits.c counts: the capacity CONFIG_DATA reserves (status areas, live and
 * spare, and slot rings: max_user_memory), the contexts themselves
 * (max_user_contexts), the events queued unread (counted against
 * max_user_regions with the regions), and the uids of a user namespace
 * (charged to its owner too, as the kernel's ucounts are).  The device is
 * 0666, so every one of these is a way for an unprivileged user to pin
 * unreclaimable kernel memory unless it is bounded per user.
 *
 * A module without a bound must fail here cleanly, not take the guest down:
 * each case caps what it asks for, and stops with a failure as soon as the
 * memory it made the module hold passes the bound it is checking.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "mapwatch_uapi.h"
#include "module_state.h"
#include "tap.h"

#define PAGE 4096UL
#define MiB (1024LL * 1024)
#define PARAM MW_PARAM_DIR
#define SYSFS "/sys/kernel/mapwatch/"
#define NOBODY 65534

/*
 * Set a parameter for the case; its old value goes to *old (-1: no such
 * parameter, which this module does not have: the case goes on and shows
 * what the missing bound lets through).
 */
static int set_param(const char *name, long long v, long long *old)
{
	int err;

	*old = tap_read_ll(PARAM, name);
	if (*old < 0) {
		tap_diag("no parameter %s in this module", name);
		return ENOENT;
	}
	err = write_param_ll(name, v);
	if (err)
		tap_diag("writing %lld to %s: %s", v, name, strerror(err));
	return err;
}

static void restore_param(const char *name, long long old)
{
	if (old >= 0)
		EXPECT_EQ(write_param_ll(name, old), 0);
}

/* A /proc/meminfo figure in bytes, or -1. */
static long long meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	size_t n = strlen(key);
	char line[256];
	long long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = atoll(line + n + 1) * 1024;
			break;
		}
	fclose(f);
	return v;
}

/* Bytes of free pages held on the per-cpu lists (/proc/zoneinfo). */
static long long pcp_bytes(void)
{
	FILE *f = fopen("/proc/zoneinfo", "r");
	char line[256];
	long long n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "count:");

		if (p)
			n += atoll(p + 6);
	}
	fclose(f);
	return n * PAGE;
}

/*
 * Memory available: MemAvailable plus the free pages the per-cpu lists
 * hold, which MemFree leaves out; a large free (the exit of a process that
 * held 80 MiB of status areas) parks tens of MiB there for seconds.
 */
static long long avail(void)
{
	long long a = meminfo("MemAvailable");

	return a < 0 ? a : a + pcp_bytes();
}

/*
 * Wait (up to 3 s) until the memory available is back within @slack of
 * @before; returns how far below it still is.
 */
static long long settle_avail(long long before, long long slack)
{
	long long below = 0;

	for (int i = 0; i < 30; i++) {
		below = before - avail();
		if (below <= slack)
			break;
		usleep(100000);
	}
	return below;
}

/* Bytes of the status area for @n regions (module/status.c). */
static long long status_size(size_t n)
{
	return (MAPWATCH_STATE_ARRAY_OFFSET + (n + 1) * 4 + PAGE - 1) /
	       PAGE * PAGE;
}

/*
 * What max_user_memory charges for a capacity of @n: area, slot ring (4
 * bytes a slot, to a multiple of 8) and cookie hash (8 bytes a bucket, a
 * quarter of @n rounded up to a power of two, at least 1): module/region.c.
 */
static long long capacity_cost(size_t n)
{
	long long buckets = 1;

	if (!n)
		return status_size(0);
	while (n >= 4 && buckets * 4 < (long long)n)
		buckets *= 2;
	return status_size(n) + (4LL * n + 7) / 8 * 8 + 8 * buckets;
}

static void drop_to_nobody(void)
{
	ASSERT_OK(setresgid(NOBODY, NOBODY, NOBODY));
	ASSERT_OK(setresuid(NOBODY, NOBODY, NOBODY));
	ASSERT_EQ(geteuid(), NOBODY);
	/*
	 * Changing uids made the process undumpable, and on 5.10 its own
	 * /proc/self/fdinfo then answers EACCES: the cases read it.
	 */
	ASSERT_OK(prctl(PR_SET_DUMPABLE, 1));
}

/* Run @fn as nobody in a child; the child's exit status. */
static int as_nobody(void (*fn)(void))
{
	int status;
	pid_t pid = fork();

	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		drop_to_nobody();
		fn();
		fflush(stdout);
		_exit(tap_case_failed);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	return status;
}

static int exited_ok(int status)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Monitor @n one-page regions from @base, cookies from @c0: successes. */
static long watch_range(int fd, const char *base, uint64_t c0, uint32_t n)
{
	static struct mapwatch_monitor_entry e[16384];
	struct mapwatch_batch b = { .size = sizeof(b), .count = n,
				    .entry_size = sizeof(e[0]),
				    .entries = (uintptr_t)e };

	ASSERT_LE(n, sizeof(e) / sizeof(e[0]));
	for (uint32_t i = 0; i < n; i++)
		e[i] = (struct mapwatch_monitor_entry){
			.addr = (uintptr_t)base + i * PAGE, .length = PAGE,
			.cookie = c0 + i };
	return ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b);
}

/* Address space with nothing behind it: regions that never change. */
static char *reserve(size_t pages)
{
	char *p = mmap(NULL, pages * PAGE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	return p;
}

/*
 * 1. Capacity over many fds.  CONFIG_DATA(1M regions) costs 4 MiB of status
 * area and 4 MiB of slot ring before a single region is monitored, so
 * max_user_regions never comes into play: 64 fds would be half a GiB.
 * With max_user_memory at 64 MiB, at most 7 of them fit; the rest are
 * ENOSPC, and a refused CONFIG_DATA leaves its fd unconfigured.
 */
#define USER_MEMORY (64 * MiB)
#define SLACK (16 * MiB)
#define MANY_FDS 64
#define BIG (1UL << 20)

static void many_fds_as_nobody(void)
{
	long long avail0 = avail(), fell;
	int fd[MANY_FDS], ok = 0, refused = 0;

	ASSERT_GT(avail0, 0);
	for (int i = 0; i < MANY_FDS; i++) {
		struct kdreg2_config_data c = { .max_regions = BIG };
		int maps = status_mappings();

		fd[i] = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC);
		ASSERT_TRUE(fd[i] >= 0);
		if (!ioctl(fd[i], KDREG2_IOCTL_CONFIG_DATA, &c)) {
			ok++;
		} else {
			int e = errno;

			if (e != ENOSPC)
				tap_diag("CONFIG_DATA %d refused with %s, want ENOSPC",
					 i, tap_errname(e));
			ASSERT_EQ(e, ENOSPC);
			/* Refused: nothing mapped, the fd unconfigured. */
			ASSERT_EQ(status_mappings(), maps);
			ASSERT_EQ(fdinfo(fd[i], "mapwatch-max-regions"), 0);
			refused++;
		}
		fell = avail0 - avail();
		if (fell > USER_MEMORY + SLACK) {
			tap_diag("after %d CONFIG_DATA(%lu) (%d accepted, %d refused) memory available fell by %lld MiB: past max_user_memory (%lld MiB) + %lld MiB",
				 i + 1, BIG, ok, refused, fell / MiB,
				 USER_MEMORY / MiB, SLACK / MiB);
			ASSERT_LE(fell, USER_MEMORY + SLACK);
		}
	}
	tap_diag("%d of %d CONFIG_DATA(%lu) accepted (%lld MiB each), %d ENOSPC; memory available fell by %lld MiB",
		 ok, MANY_FDS, BIG, capacity_cost(BIG) / MiB, refused,
		 (avail0 - avail()) / MiB);
	ASSERT_GT(ok, 0);
	ASSERT_LE(ok * capacity_cost(BIG), USER_MEMORY);
	ASSERT_GT(refused, 0);
	LOG_BAD_INPUT("CONFIG_DATA", "capacity past max_user_memory over all fds",
		      "ENOSPC");
	/* Closed, the areas stay mapped as spares: still the user's. */
	for (int i = 0; i < MANY_FDS; i++)
		ASSERT_OK(close(fd[i]));
}

/*
 * fdinfo's mapwatch-user-memory grows by exactly what a capacity costs
 * (status area, slot ring, cookie hash), for the sizes where the hash's
 * rounding changes: the per-slot memory the bench's figure M measures.
 */
TEST(capacity_charge_is_exact)
{
	static const size_t sizes[] = { 1, 3, 4, 5, 8, 9, 1000, 1024,
					1025, 1000000, 1UL << 20 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		int status;
		pid_t pid = fork();

		ASSERT_TRUE(pid >= 0);
		if (pid == 0) {
			/* A process of its own: no spare area to take over. */
			struct kdreg2_config_data c = {
				.max_regions = sizes[k] };
			int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
			long long m0, m1;

			ASSERT_TRUE(fd >= 0);
			m0 = fdinfo(fd, "mapwatch-user-memory");
			ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
			m1 = fdinfo(fd, "mapwatch-user-memory");
			if (m1 - m0 != capacity_cost(sizes[k]))
				tap_diag("CONFIG_DATA(%zu) charged %lld bytes, want %lld",
					 sizes[k], m1 - m0,
					 capacity_cost(sizes[k]));
			ASSERT_EQ(m1 - m0, capacity_cost(sizes[k]));
			fflush(stdout);
			_exit(tap_case_failed);
		}
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		ASSERT_TRUE(exited_ok(status));
	}
}

TEST(capacity_many_fds_is_bounded)
{
	long long old, before = avail(), below;
	int set, status;

	ASSERT_GT(before, 0);
	ASSERT_GE(tap_read_ll(PARAM, "max_regions_limit"), (long long)BIG);
	set = set_param("max_user_memory", USER_MEMORY, &old);
	status = as_nobody(many_fds_as_nobody);
	restore_param("max_user_memory", old);
	EXPECT_EQ(set, 0);
	EXPECT_TRUE(exited_ok(status));
	/* Everything back once the process is gone. */
	below = settle_avail(before, SLACK);
	tap_diag("memory available %lld MiB below where it was, after the exit",
		 below / MiB);
	EXPECT_LE(below, SLACK);
}

/*
 * 2. Capacity on one fd, grown a page at a time and never used: each
 * CONFIG_DATA finds no area big enough, maps a new one and keeps the old
 * one mapped as a spare (the module never unmaps user memory), so k grows
 * hold 1 + 2 + ... + k pages.  Both bounds stop it: max_user_memory counts
 * spares, and a process keeps at most 8 of them (a CONFIG_DATA that needs
 * a new area while 8 too small spares exist is ENOSPC).
 */
#define GROWS 2048

static void growing_as_nobody(void)
{
	long long avail0 = avail();
	long long vm0 = meminfo("VmallocUsed");
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC), k, e = 0;
	long long fell = 0, grew = 0;

	ASSERT_TRUE(fd >= 0);
	ASSERT_GT(avail0, 0);
	ASSERT_GE(vm0, 0);
	for (k = 1; k <= GROWS; k++) {
		/* Exactly k pages of status area, and about k of slots. */
		struct kdreg2_config_data c = { .max_regions = 1024 * k - 33 };

		if (ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c)) {
			e = errno;
			break;
		}
		ASSERT_EQ(status_size(c.max_regions), (long long)k * PAGE);
		fell = avail0 - avail();
		grew = meminfo("VmallocUsed") - vm0;
		if (fell > USER_MEMORY + SLACK || grew > USER_MEMORY + SLACK) {
			tap_diag("after %d growing CONFIG_DATA on one fd (%d areas mapped) memory available fell by %lld MiB, VmallocUsed grew by %lld MiB: past max_user_memory (%lld MiB) + %lld MiB",
				 k, status_mappings(), fell / MiB, grew / MiB,
				 USER_MEMORY / MiB, SLACK / MiB);
			ASSERT_LE(fell, USER_MEMORY + SLACK);
			ASSERT_LE(grew, USER_MEMORY + SLACK);
		}
	}
	tap_diag("CONFIG_DATA refused at grow %d (%s), %d areas mapped; memory available fell by %lld MiB, VmallocUsed grew by %lld MiB",
		 k, k > GROWS ? "never" : tap_errname(e),
		 status_mappings(), fell / MiB, grew / MiB);
	ASSERT_LE(k, GROWS);
	ASSERT_EQ(e, ENOSPC);
	LOG_BAD_INPUT("CONFIG_DATA", "a new area past max_user_memory or 8 spares",
		      "ENOSPC");
	ASSERT_LE(fell, USER_MEMORY + SLACK);
	ASSERT_LE(grew, USER_MEMORY + SLACK);
	/* The refused call changed nothing: the fd keeps its last size. */
	ASSERT_EQ(fdinfo(fd, "mapwatch-max-regions"), 1024 * (k - 1) - 33);
	ASSERT_OK(close(fd));
}

TEST(capacity_growing_one_fd_is_bounded)
{
	long long old, before = avail(), below;
	long long vm = meminfo("VmallocUsed");
	int set, status;

	ASSERT_GT(before, 0);
	set = set_param("max_user_memory", USER_MEMORY, &old);
	status = as_nobody(growing_as_nobody);
	restore_param("max_user_memory", old);
	EXPECT_EQ(set, 0);
	EXPECT_TRUE(exited_ok(status));
	below = settle_avail(before, SLACK);
	tap_diag("after the exit: memory available %lld MiB below, VmallocUsed %lld MiB above where they were",
		 below / MiB, (meminfo("VmallocUsed") - vm) / MiB);
	EXPECT_LE(below, SLACK);
	EXPECT_LE(meminfo("VmallocUsed") - vm, SLACK);
}

/*
 * 3. Events queued unread count against max_user_regions: a retired
 * region's record lives until it is read, so without that MONITOR_BATCH +
 * INVALIDATE repeated over fds queues budget-sized piles of records each.
 * A MONITOR that finds the user at the budget first folds the user's
 * unread records (on all its fds) into each fd's covering record (cookie
 * (u64)-1 over their range) and tries again: so every MONITOR_BATCH below
 * succeeds whole, and regions plus unread records over the user's fds stay
 * within the budget plus one covering record per fd.
 */
#define BUDGET 3000
#define EV_FDS 4

/* Regions plus unread records over the status areas of @nfds fds. */
static long long user_load(int nfds,
			   const struct kdreg2_status_data *const *st)
{
	long long sum = 0;

	for (int i = 0; i < nfds; i++)
		sum += kdreg2_read_counter(&st[i]->num_active_regions) +
		       kdreg2_read_counter(&st[i]->pending_events);
	return sum;
}

static void check_load(const char *step, int i, int nfds,
		       const struct kdreg2_status_data *const *st,
		       long long sys0)
{
	long long load = user_load(nfds, st);
	long long sys = tap_read_ll(SYSFS, "regions") +
			tap_read_ll(SYSFS, "pending") - sys0;

	if (load > BUDGET + nfds || sys > BUDGET + nfds)
		tap_diag("%s on fd %d: regions + unread records over the user's %d fds %lld (sysfs %lld), budget %d + %d covering records",
			 step, i, nfds, load, sys, BUDGET, nfds);
	EXPECT_LE(load, BUDGET + nfds);
	EXPECT_LE(sys, BUDGET + nfds);
}

static void unread_as_nobody(void)
{
	const struct kdreg2_status_data *st[EV_FDS];
	long long sys0 = tap_read_ll(SYSFS, "regions") +
			 tap_read_ll(SYSFS, "pending");
	char *mem = reserve(BUDGET);
	struct mapwatch_invalidate inv = {
		.size = sizeof(inv), .addr = (uintptr_t)mem,
		.length = BUDGET * PAGE };
	struct kdreg2_event ev[64];
	int fd[EV_FDS], covered = 0;
	ssize_t n;

	ASSERT_GE(sys0, 0);
	for (int i = 0; i < EV_FDS; i++) {
		struct kdreg2_config_data c = { .max_regions = BUDGET };
		long ok;

		fd[i] = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC);
		ASSERT_TRUE(fd[i] >= 0);
		ASSERT_OK(ioctl(fd[i], KDREG2_IOCTL_CONFIG_DATA, &c));
		st[i] = c.status_data;
		ok = watch_range(fd[i], mem, (uint64_t)i << 32, BUDGET);
		if (ok != BUDGET)
			tap_diag("fd %d: MONITOR_BATCH of %d accepted %ld: the user's unread records were not folded to make room",
				 i, BUDGET, ok);
		ASSERT_EQ(ok, BUDGET);
		check_load("MONITOR_BATCH", i, i + 1, st, sys0);
		if (i == EV_FDS - 1)
			break;
		/* Every region retired, its record queued, nothing read. */
		ASSERT_OK(ioctl(fd[i], MAPWATCH_IOCTL_INVALIDATE, &inv));
		ASSERT_EQ(kdreg2_read_counter(&st[i]->num_active_regions), 0);
		check_load("INVALIDATE", i, i + 1, st, sys0);
	}
	/* At the budget with nothing unread to fold: refused. */
	ASSERT_BAD_INPUT("MONITOR",
			 "at max_user_regions, no unread records to fold",
			 ioctl(fd[0], KDREG2_IOCTL_MONITOR,
			       &(struct kdreg2_ioctl_monitor){
				       .addr = mem, .length = PAGE,
				       .cookie = 1ULL << 40 }), ENOSPC);
	/* fd 0's records were folded: one covering record for the range. */
	n = read(fd[0], ev, sizeof(ev));
	ASSERT_GT(n, 0);
	for (ssize_t i = 0; i < n / (ssize_t)sizeof(ev[0]); i++) {
		const struct kdreg2_mapping_change *m = &ev[i].u.mapping_change;

		if (m->cookie != KDREG2_BAD_COOKIE_VALUE)
			continue;
		EXPECT_EQ(ev[i].type, KDREG2_EVENT_MAPPING_CHANGE);
		covered = (const char *)m->addr <= mem &&
			  (const char *)m->addr + m->len >= mem + BUDGET * PAGE;
	}
	if (!covered)
		tap_diag("fd 0's first read: %zd records, the first with cookie %#llx: no covering record over the %d invalidated regions",
			 n / sizeof(ev[0]),
			 (unsigned long long)ev[0].u.mapping_change.cookie,
			 BUDGET);
	ASSERT_TRUE(covered);
	for (int i = 0; i < EV_FDS; i++)
		ASSERT_OK(close(fd[i]));
}

TEST(user_budget_counts_unread_events)
{
	long long old = tap_read_ll(PARAM, "max_user_regions");
	int status;

	ASSERT_GT(old, 0);
	ASSERT_GE(tap_read_ll(PARAM, "max_pending_events"), BUDGET);
	ASSERT_EQ(write_param_ll("max_user_regions", BUDGET), 0);
	status = as_nobody(unread_as_nobody);
	ASSERT_EQ(write_param_ll("max_user_regions", old), 0);
	EXPECT_TRUE(exited_ok(status));
}

/*
 * 4. A user namespace's uids are charged to its owner too.  nobody creates
 * a namespace that root maps onto 1000 host uids (as a subuid range from
 * /etc/subuid would); eight processes inside, as uids 0..7 (host uids
 * 100000..100007), each monitor up to the budget.  With a flat per-kuid key
 * each gets a whole budget; charged up the chain like the kernel's
 * ucounts, all eight share nobody's one.
 */
#define NS_BUDGET 1000
#define NS_USERS 8

struct ns_report {
	int err;			/* 0, or the errno of a set-up step */
	int step;			/* which one */
	long regions[NS_USERS];
};

/* One uid inside the namespace: monitor up to the budget, hold, exit. */
static void ns_user(int k, char *mem, int res, int hold)
{
	struct kdreg2_config_data c = { .max_regions = NS_BUDGET };
	long n = -1;
	char x;
	int fd;

	if (!setresgid(k, k, k) && !setresuid(k, k, k)) {
		fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC);
		if (fd >= 0 && !ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c))
			n = watch_range(fd, mem, 1, NS_BUDGET);
	}
	if (write(res, &n, sizeof(n)) != sizeof(n))
		_exit(2);
	/* Keep the regions until the owner has counted everybody's. */
	if (read(hold, &x, 1) < 0)
		_exit(3);
	_exit(0);
}

/* Who makes the namespace (NOBODY, or 0: root, as a container runtime). */
static uid_t ns_owner_uid = NOBODY;
static int ns_users = NS_USERS;

/* The namespace owner: nobody, then unshare, then the eight users. */
static void ns_owner(const char *dir, int to_parent, int from_parent,
		     int hold)
{
	struct ns_report rep = { 0 };
	int res[2], hold_users[2];
	char *mem = reserve(NS_BUDGET);
	int host = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	char x;

	/*
	 * The test guest runs everything chrooted into the host's root, and
	 * a chrooted process may not create a user namespace (EPERM): step
	 * out of the chroot first (root may), and back in once inside.
	 */
	if (host < 0 || chroot(dir)) {
		rep.err = errno;
		rep.step = 1;
	} else {
		for (int i = 0; i < 64; i++)
			if (chdir(".."))
				break;
		if (chroot(".")) {
			rep.err = errno;
			rep.step = 1;
		}
	}
	if (!rep.err && ns_owner_uid &&
	    (setresgid(ns_owner_uid, ns_owner_uid, ns_owner_uid) ||
	     setresuid(ns_owner_uid, ns_owner_uid, ns_owner_uid))) {
		rep.err = errno;
		rep.step = 2;
	}
	if (!rep.err && unshare(CLONE_NEWUSER)) {
		rep.err = errno;
		rep.step = 3;
	}
	/* Tell the parent to write the maps (or why not), wait for them. */
	if (write(to_parent, &rep, sizeof(rep)) != sizeof(rep) || rep.err ||
	    read(from_parent, &x, 1) != 1 || pipe(res) || pipe(hold_users))
		_exit(2);
	/* Full capabilities in the namespace: back into the chroot. */
	if (fchdir(host) || chroot("."))
		_exit(7);
	for (int k = 0; k < ns_users; k++) {
		pid_t pid = fork();

		if (pid < 0)
			_exit(3);
		if (pid == 0) {
			close(res[0]);
			close(hold_users[1]);
			ns_user(k, mem, res[1], hold_users[0]);
		}
		/* One at a time: user k monitors while 0..k-1 hold theirs. */
		if (read(res[0], &rep.regions[k], sizeof(long)) != sizeof(long))
			_exit(4);
	}
	if (write(to_parent, &rep, sizeof(rep)) != sizeof(rep))
		_exit(5);
	/* The parent reads the global count while all of them hold. */
	if (read(hold, &x, 1) < 0)
		_exit(6);
	close(hold_users[1]);
	while (wait(NULL) > 0)
		;
	_exit(0);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	int err = 0;

	if (fd < 0)
		return errno;
	if (write(fd, text, strlen(text)) < 0)
		err = errno;
	close(fd);
	return err;
}

/* Namespaces need CONFIG_USER_NS (the debug lane's kernel has none). */
static void need_user_namespaces(void)
{
	if (access("/proc/self/ns/user", F_OK))
		SKIP("kernel without user namespaces (no /proc/self/ns/user)");
}

TEST(user_namespace_shares_owner_budget)
{
	static const char clone_ok[] = "/proc/sys/kernel/unprivileged_userns_clone";
	long long old = tap_read_ll(PARAM, "max_user_regions");
	long long regions0 = tap_read_ll(SYSFS, "regions"), regions;
	long long userns_clone = tap_read_ll(clone_ok, "");
	char dir[] = "/tmp/budgets-userns.XXXXXX";
	int up[2], down[2], hold[2], status;
	struct ns_report rep;
	char path[64];
	long total = 0;
	pid_t pid;

	need_user_namespaces();
	ASSERT_GT(old, 0);
	ASSERT_GE(regions0, 0);
	ASSERT_OK(pipe(up));
	ASSERT_OK(pipe(down));
	ASSERT_OK(pipe(hold));
	/* Where the namespace's owner steps out of the guest's chroot. */
	ASSERT_TRUE(mkdtemp(dir) != NULL);
	/* Debian's switch for unprivileged user namespaces: on for this. */
	if (userns_clone == 0)
		ASSERT_EQ(write_file(clone_ok, "1"), 0);
	ASSERT_EQ(write_param_ll("max_user_regions", NS_BUDGET), 0);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		close(hold[1]);
		ns_owner(dir, up[1], down[0], hold[0]);
	}
	close(up[1]);
	close(down[0]);
	close(hold[0]);
	ASSERT_EQ(read(up[0], &rep, sizeof(rep)), (ssize_t)sizeof(rep));
	if (!rep.err) {
		/* root maps the namespace's 0..999 onto 100000..100999. */
		snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
		EXPECT_EQ(write_file(path, "deny"), 0);
		snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
		EXPECT_EQ(write_file(path, "0 100000 1000"), 0);
		snprintf(path, sizeof(path), "/proc/%d/gid_map", pid);
		EXPECT_EQ(write_file(path, "0 100000 1000"), 0);
		ASSERT_EQ(write(down[1], "m", 1), 1);
		ASSERT_EQ(read(up[0], &rep, sizeof(rep)), (ssize_t)sizeof(rep));
	}
	regions = tap_read_ll(SYSFS, "regions") - regions0;
	close(hold[1]);
	close(down[1]);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(write_param_ll("max_user_regions", old), 0);
	EXPECT_EQ(rmdir(dir), 0);
	if (userns_clone == 0)
		EXPECT_EQ(write_file(clone_ok, "0"), 0);
	if (rep.err == EINVAL && rep.step == 3)
		SKIP("kernel without user namespaces (unshare: EINVAL)");
	if (rep.err)
		tap_diag("set-up step %d (%s) failed: %s", rep.step,
			 rep.step == 1 ? "leaving the chroot" :
			 rep.step == 2 ? "setresuid nobody" : "unshare",
			 strerror(rep.err));
	ASSERT_EQ(rep.err, 0);
	EXPECT_TRUE(exited_ok(status));
	for (int k = 0; k < NS_USERS; k++) {
		tap_diag("uid %d in the namespace (host uid %d): %ld regions",
			 k, 100000 + k, rep.regions[k]);
		ASSERT_GE(rep.regions[k], 0);
		total += rep.regions[k];
	}
	tap_diag("%ld regions over the namespace's %d uids (global count %lld), owner's budget %d",
		 total, NS_USERS, regions, NS_BUDGET);
	/* The first one fits whole; then the owner's budget is spent. */
	EXPECT_EQ(rep.regions[0], NS_BUDGET);
	ASSERT_LE(total, NS_BUDGET);
	ASSERT_LE(regions, NS_BUDGET);
}

/*
 * Namespaces root makes (a container runtime's) are tenants of their own:
 * their users are not charged to root's one budget, or the first container
 * to fill it would refuse every other container (review of the ucounts
 * emulation, 2026-12-07).  Two root-owned namespaces, one user each, each
 * monitors the whole budget while the other holds its regions.
 */
static pid_t ns_start(const char *dir, int base, int up[2], int down[2],
		      int hold[2], struct ns_report *rep)
{
	char path[64], map[32];
	pid_t pid;

	if (pipe(up) || pipe(down) || pipe(hold))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		close(hold[1]);
		ns_owner(dir, up[1], down[0], hold[0]);
	}
	close(up[1]);
	close(down[0]);
	close(hold[0]);
	if (pid < 0 || read(up[0], rep, sizeof(*rep)) != sizeof(*rep))
		return -1;
	if (rep->err)
		return pid;
	snprintf(map, sizeof(map), "0 %d 1000", base);
	snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
	write_file(path, "deny");
	snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
	if (write_file(path, map))
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/gid_map", pid);
	if (write_file(path, map) || write(down[1], "m", 1) != 1 ||
	    read(up[0], rep, sizeof(*rep)) != sizeof(*rep))
		return -1;
	return pid;
}

TEST(root_made_namespaces_are_separate_tenants)
{
	long long old = tap_read_ll(PARAM, "max_user_regions");
	char dir[] = "/tmp/budgets-userns.XXXXXX";
	int up[2][2], down[2][2], hold[2][2], status;
	struct ns_report rep[2];
	pid_t pid[2];

	need_user_namespaces();
	ASSERT_GT(old, 0);
	ASSERT_TRUE(mkdtemp(dir) != NULL);
	ASSERT_EQ(write_param_ll("max_user_regions", NS_BUDGET), 0);
	ns_owner_uid = 0;
	ns_users = 1;
	pid[0] = ns_start(dir, 100000, up[0], down[0], hold[0], &rep[0]);
	pid[1] = ns_start(dir, 200000, up[1], down[1], hold[1], &rep[1]);
	/* Each owner holds a copy of the other's pipes: close all, then wait. */
	for (int i = 0; i < 2; i++) {
		close(hold[i][1]);
		close(down[i][1]);
	}
	for (int i = 0; i < 2; i++)
		if (pid[i] > 0)
			EXPECT_EQ(waitpid(pid[i], &status, 0), pid[i]);
	ASSERT_EQ(write_param_ll("max_user_regions", old), 0);
	EXPECT_EQ(rmdir(dir), 0);
	for (int i = 0; i < 2; i++) {
		ASSERT_TRUE(pid[i] > 0);
		if (rep[i].err == EINVAL && rep[i].step == 3)
			SKIP("kernel without user namespaces (unshare: EINVAL)");
		ASSERT_EQ(rep[i].err, 0);
		tap_diag("root's namespace %d, its uid 0: %ld regions", i,
			 rep[i].regions[0]);
	}
	/* The second container got its whole budget while the first held. */
	ASSERT_EQ(rep[0].regions[0], NS_BUDGET);
	ASSERT_EQ(rep[1].regions[0], NS_BUDGET);
}

/*
 * 5. Contexts per user (max_user_contexts, like inotify's
 * max_user_instances): each context is a notifier subscription, a context
 * and a read buffer whatever its capacity, and with max_user_memory the
 * number that multiplies it.  Past the bound open() is EMFILE for every
 * process of the user; a close gives one back.
 */
#define CONTEXTS 50

static void contexts_as_nobody(void)
{
	int fd[CONTEXTS], extra, status;
	pid_t pid;

	for (int i = 0; i < CONTEXTS; i++) {
		fd[i] = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC);
		if (fd[i] < 0)
			tap_diag("open %d of %d: %s", i + 1, CONTEXTS,
				 strerror(errno));
		ASSERT_TRUE(fd[i] >= 0);
	}
	ASSERT_BAD_INPUT("open", "past max_user_contexts",
			 open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC),
			 EMFILE);
	ASSERT_BAD_INPUT("open", "past max_user_contexts (kdreg2 name)",
			 open(KDREG2_DEVICE_NAME, O_RDWR | O_CLOEXEC), EMFILE);
	/* Another process of the same user is at the bound too. */
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		int f = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC);

		_exit(f < 0 && errno == EMFILE ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(exited_ok(status));
	/* A close gives its context back. */
	ASSERT_OK(close(fd[0]));
	extra = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC);
	ASSERT_TRUE(extra >= 0);
	ASSERT_ERRNO(open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC), EMFILE);
	ASSERT_OK(close(extra));
	for (int i = 1; i < CONTEXTS; i++)
		ASSERT_OK(close(fd[i]));
}

TEST(contexts_per_user_are_bounded)
{
	long long old;
	int set, status;

	set = set_param("max_user_contexts", CONTEXTS, &old);
	status = as_nobody(contexts_as_nobody);
	restore_param("max_user_contexts", old);
	EXPECT_EQ(set, 0);
	EXPECT_TRUE(exited_ok(status));
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
