// SPDX-License-Identifier: GPL-2.0-only
/*
 * How long a context lives.  close() must free the context, its notifier
 * and its regions at once, whether or not the status area is still mapped
 * (libfabric's kdreg2 monitor stops with close(fd) alone and opens a new fd
 * each time a domain comes back), and a forked child's inherited status
 * mapping must not keep the parent's context alive.  The status area stays
 * readable until unmapped, with every region it described reading changed.
 * Closing is not a mapping change: no event is counted for live regions.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>

#include "mapwatch_uapi.h"
#include "module_state.h"
#include "tap.h"

#define PAGE 4096UL
#define SYSFS "/sys/kernel/mapwatch/"
#define CYCLES 500

typedef struct kdreg2_monitoring_params params_t;
typedef const struct kdreg2_status_data status_t;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median cost of munmap() of a touched page nothing watches. */
static double unrelated_munmap_ns(void)
{
	double v[5];

	for (int r = 0; r < 5; r++) {
		double spent = 0;

		for (int i = 0; i < 400; i++) {
			char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			double t;

			if (q == MAP_FAILED)
				return -1;
			q[0] = 1;
			t = now_ns();
			munmap(q, PAGE);
			spent += now_ns() - t;
		}
		v[r] = spent / 400;
	}
	qsort(v, 5, sizeof(v[0]), cmp_double);
	return v[2];
}

/*
 * One restart of libfabric's kdreg2 monitor, in its call order: an exit
 * pipe, a blocking O_RDWR open without O_CLOEXEC, CONFIG_DATA with the MR
 * cache's entry count, an evictor thread polling the fd and the pipe, a
 * MONITOR per cache entry; then stop: a byte down the pipe, join, close
 * the fd (the status area is never unmapped), close the pipe.
 */
struct monitor {
	int fd, exit_pipe[2];
	pthread_t thread;
};

static void *evictor(void *arg)
{
	struct monitor *m = arg;
	struct pollfd pfd[2] = { { .fd = m->fd, .events = POLLIN },
				 { .fd = m->exit_pipe[0], .events = POLLIN } };

	for (;;) {
		struct kdreg2_event ev;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return (void *)1;
		}
		if (pfd[1].revents)
			return NULL;
		if (pfd[0].revents & POLLIN &&
		    read(m->fd, &ev, sizeof(ev)) != sizeof(ev))
			return (void *)1;
	}
}

static void libfabric_cycle(void *buf, uint64_t cookie, status_t **st,
			    params_t *params)
{
	struct kdreg2_config_data c = { .max_regions = 1024 };
	struct kdreg2_ioctl_monitor mon = { .addr = buf, .length = PAGE,
					    .cookie = cookie };
	struct monitor m;
	void *ret;

	ASSERT_OK(pipe(m.exit_pipe));
	m.fd = open(KDREG2_DEVICE_NAME, O_RDWR);
	ASSERT_TRUE(m.fd >= 0);
	ASSERT_OK(ioctl(m.fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	*st = c.status_data;
	ASSERT_EQ(pthread_create(&m.thread, NULL, evictor, &m), 0);
	ASSERT_OK(ioctl(m.fd, KDREG2_IOCTL_MONITOR, &mon));
	*params = mon.monitoring_params;
	ASSERT_EQ(write(m.exit_pipe[1], "X", 1), 1);
	ASSERT_EQ(pthread_join(m.thread, &ret), 0);
	ASSERT_TRUE(ret == NULL);
	ASSERT_OK(close(m.fd));
	ASSERT_OK(close(m.exit_pipe[0]));
	ASSERT_OK(close(m.exit_pipe[1]));
}

static status_t *cycle_st[CYCLES];
static params_t cycle_params[CYCLES];

TEST(libfabric_restarts_free_every_context)
{
	long long base = tap_read_ll(SYSFS, "contexts");
	long long events = tap_read_ll(SYSFS, "events");
	char *buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double before, after, t;

	ASSERT_TRUE(access(KDREG2_DEVICE_NAME, R_OK | W_OK) == 0);
	ASSERT_GE(base, 0);
	ASSERT_GE(events, 0);
	ASSERT_TRUE(buf != MAP_FAILED);
	buf[0] = 1;
	before = unrelated_munmap_ns();
	t = now_ns();
	for (int i = 0; i < CYCLES; i++)
		libfabric_cycle(buf, i + 1, &cycle_st[i], &cycle_params[i]);
	t = (now_ns() - t) / CYCLES;
	after = unrelated_munmap_ns();
	tap_diag("%d restarts: %.0f us per open+CONFIG_DATA+MONITOR+close cycle",
		 CYCLES, t / 1000);
	tap_diag("unrelated munmap: %.1f us before, %.1f us after: %.2fx",
		 before / 1000, after / 1000, after / before);
	EXPECT_EQ(tap_read_ll(SYSFS, "contexts"), base);
	/* Closing is not a change of the region's translation. */
	EXPECT_EQ(tap_read_ll(SYSFS, "events"), events);
	/* Still readable, and every region it described reads changed. */
	int changed = 0;

	for (int i = 0; i < CYCLES; i++)
		changed += kdreg2_mapping_changed(cycle_st[i],
						  &cycle_params[i]);
	EXPECT_EQ(changed, CYCLES);
	EXPECT_EQ(kdreg2_read_counter(&cycle_st[0]->num_active_regions), 0);
	EXPECT_EQ(kdreg2_read_counter(&cycle_st[0]->total_events), 0);
	/* Nothing piles up: each restart took over the area left behind. */
	int areas = 0;

	for (int i = 0; i < CYCLES; i++)
		areas += i == 0 || cycle_st[i] != cycle_st[i - 1];
	EXPECT_EQ(areas, 1);
	EXPECT_EQ(status_mappings(), 1);
}

static int open_watch(size_t n, char **mem, status_t **st, params_t *p)
{
	struct kdreg2_config_data c = { .max_regions = n };
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	*st = c.status_data;
	*mem = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(*mem != MAP_FAILED);
	for (size_t i = 0; i < n; i++) {
		struct kdreg2_ioctl_monitor m = { .addr = *mem + i * PAGE,
						  .length = PAGE,
						  .cookie = i + 1 };

		(*mem)[i * PAGE] = 1;
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
		p[i] = m.monitoring_params;
	}
	return fd;
}

static size_t status_size(size_t n)
{
	return (MAPWATCH_STATE_ARRAY_OFFSET + (n + 1) * 4 + PAGE - 1) /
	       PAGE * PAGE;
}

/* Neither order of close and munmap counts an event for a live region. */
TEST(close_counts_no_events)
{
	long long base = tap_read_ll(SYSFS, "contexts");
	long long events = tap_read_ll(SYSFS, "events");
	params_t p[8];
	status_t *st;
	char *mem;
	int fd;

	ASSERT_GE(events, 0);
	/* Status area unmapped first, then close. */
	fd = open_watch(8, &mem, &st, p);
	ASSERT_EQ(tap_read_ll(SYSFS, "contexts"), base + 1);
	ASSERT_OK(munmap((void *)st, status_size(8)));
	ASSERT_OK(close(fd));
	EXPECT_EQ(tap_read_ll(SYSFS, "contexts"), base);
	EXPECT_EQ(tap_read_ll(SYSFS, "events"), events);
	/* Closed while mapped, then unmapped. */
	fd = open_watch(8, &mem, &st, p);
	ASSERT_OK(close(fd));
	EXPECT_EQ(tap_read_ll(SYSFS, "contexts"), base);
	for (int i = 0; i < 8; i++)
		EXPECT_TRUE(kdreg2_mapping_changed(st, &p[i]));
	EXPECT_EQ(kdreg2_read_counter(&st->total_events), 0);
	EXPECT_EQ(kdreg2_read_counter(&st->pending_events), 0);
	ASSERT_OK(munmap((void *)st, status_size(8)));
	/* The memory going away later is nobody's business any more. */
	ASSERT_OK(munmap(mem, 8 * PAGE));
	EXPECT_EQ(tap_read_ll(SYSFS, "events"), events);
}

/* A forked child holds the fd and the status mapping; it closes the fd. */
TEST(fork_child_mapping_does_not_keep_context)
{
	long long base = tap_read_ll(SYSFS, "contexts");
	int to_child[2], to_parent[2], status;
	params_t p[4];
	status_t *st;
	char *mem, c;
	pid_t pid;
	int fd;

	ASSERT_OK(pipe(to_child));
	ASSERT_OK(pipe(to_parent));
	fd = open_watch(4, &mem, &st, p);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		int changed = 0;

		close(fd);
		if (write(to_parent[1], "c", 1) != 1 ||
		    read(to_child[0], &c, 1) != 1)
			_exit(2);
		/* The inherited mapping still reads, and reads changed. */
		for (int i = 0; i < 4; i++)
			changed += kdreg2_mapping_changed(st, &p[i]);
		_exit(changed == 4 ? 0 : 1);
	}
	ASSERT_EQ(read(to_parent[0], &c, 1), 1);
	ASSERT_OK(close(fd));
	/* The parent keeps its mapping too: the context is gone anyway. */
	EXPECT_EQ(tap_read_ll(SYSFS, "contexts"), base);
	for (int i = 0; i < 4; i++)
		EXPECT_TRUE(kdreg2_mapping_changed(st, &p[i]));
	ASSERT_EQ(write(to_child[1], "g", 1), 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * An area left behind is taken over only while it is still mapped where it
 * was: memory the user put at that address is never touched.
 */
TEST(left_behind_area_replaced_by_user_memory_is_left_alone)
{
	struct kdreg2_config_data c = { .max_regions = 8 };
	params_t p[8];
	status_t *st;
	char *mem, *mine;
	int fd;

	fd = open_watch(8, &mem, &st, p);
	ASSERT_OK(close(fd));
	ASSERT_EQ(status_mappings(), 1);
	ASSERT_OK(munmap((void *)st, status_size(8)));
	mine = mmap((void *)st, status_size(8), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_TRUE(mine == (char *)st);
	memset(mine, 0x42, status_size(8));
	fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_TRUE(c.status_data != st);
	ASSERT_EQ(status_mappings(), 1);
	for (size_t i = 0; i < status_size(8); i++)
		ASSERT_EQ(mine[i], 0x42);
	ASSERT_OK(close(fd));
}

/*
 * close() while another thread's munmap is retiring the context's regions
 * (a batch per lock hold): the close waits for the notifier to let go of
 * the context, and nothing is left behind.
 */
struct unmapper {
	char *base;
	size_t len;
};

static void *unmap_it(void *arg)
{
	struct unmapper *u = arg;

	return (void *)(long)munmap(u->base, u->len);
}

TEST(close_during_large_invalidation)
{
	enum { N = 20000 };
	static struct mapwatch_monitor_entry e[N];
	long long base = tap_read_ll(SYSFS, "contexts");
	long long regions = tap_read_ll(SYSFS, "regions");
	struct mapwatch_batch b = { .size = sizeof(b), .count = N,
				    .entry_size = sizeof(e[0]),
				    .entries = (uintptr_t)e };

	for (int round = 0; round < 10; round++) {
		struct kdreg2_config_data c = { .max_regions = N };
		struct unmapper u = { .len = N * PAGE };
		pthread_t th;
		void *ret;
		int fd;

		u.base = mmap(NULL, u.len, PROT_NONE, MAP_PRIVATE |
			      MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		ASSERT_TRUE(u.base != MAP_FAILED);
		fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
		ASSERT_TRUE(fd >= 0);
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
		for (int i = 0; i < N; i++)
			e[i] = (struct mapwatch_monitor_entry){
				.addr = (uintptr_t)u.base + i * PAGE,
				.length = PAGE, .cookie = i + 1 };
		ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), N);
		ASSERT_EQ(pthread_create(&th, NULL, unmap_it, &u), 0);
		usleep(round * 100);
		ASSERT_OK(close(fd));
		ASSERT_EQ(pthread_join(th, &ret), 0);
		ASSERT_TRUE(ret == NULL);
		ASSERT_EQ(tap_read_ll(SYSFS, "contexts"), base);
		ASSERT_EQ(tap_read_ll(SYSFS, "regions"), regions);
	}
}

/* The state letter of process or thread @tid ('D', 'S', 'Z'...), or 0. */
static char task_state(pid_t tid)
{
	char path[64], line[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	p = p ? strrchr(line, ')') : NULL;
	return p && p[1] == ' ' ? p[2] : 0;
}

/*
 * Review #5: at the mm's ->release every region's translation is gone, but
 * no task can ever read that mm's events again (read() from another mm is
 * EIO).  libfabric opens without O_CLOEXEC, so a helper it forked keeps the
 * fd, and with it whatever was queued at exit, for its own lifetime.  The
 * owner's exit must queue nothing and hold no region: the sleeper's fd
 * shows an empty context.
 */
#define RELEASE_REGIONS 10000

struct release_msg {
	pid_t sleeper;
	int fd;
};

static void release_owner(int ready, int hold)
{
	static struct mapwatch_monitor_entry e[RELEASE_REGIONS];
	struct kdreg2_config_data c = { .max_regions = RELEASE_REGIONS };
	struct mapwatch_batch b = { .size = sizeof(b),
				    .count = RELEASE_REGIONS,
				    .entry_size = sizeof(e[0]),
				    .entries = (uintptr_t)e };
	char *mem = mmap(NULL, RELEASE_REGIONS * PAGE, PROT_NONE, MAP_PRIVATE |
			 MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	/* libfabric's open: blocking, and no O_CLOEXEC. */
	int fd = open(KDREG2_DEVICE_NAME, O_RDWR);
	struct release_msg msg = { .fd = fd };
	char x;

	if (fd < 0 || mem == MAP_FAILED ||
	    ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c))
		_exit(2);
	for (int i = 0; i < RELEASE_REGIONS; i++)
		e[i] = (struct mapwatch_monitor_entry){
			.addr = (uintptr_t)mem + i * PAGE, .length = PAGE,
			.cookie = i + 1 };
	if (ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b) != RELEASE_REGIONS)
		_exit(3);
	msg.sleeper = fork();
	if (msg.sleeper < 0)
		_exit(4);
	if (msg.sleeper == 0) {
		/* The helper: keeps the inherited fd, does nothing with it. */
		close(ready);
		if (read(hold, &x, 1) < 0)
			_exit(5);
		_exit(0);
	}
	if (write(ready, &msg, sizeof(msg)) != sizeof(msg))
		_exit(6);
	_exit(0);	/* the owner's mm goes with it */
}

TEST(release_queues_nothing_unreadable)
{
	long long contexts = tap_read_ll(SYSFS, "contexts");
	long long pending = tap_read_ll(SYSFS, "pending");
	long long regions = tap_read_ll(SYSFS, "regions");
	int ready[2], hold[2], status;
	struct release_msg msg;
	pid_t owner;

	ASSERT_GE(contexts, 0);
	ASSERT_GE(pending, 0);
	ASSERT_GE(regions, 0);
	/* The sleeper outlives its parent: reap it here. */
	ASSERT_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	ASSERT_OK(pipe(ready));
	ASSERT_OK(pipe(hold));
	owner = fork();
	ASSERT_TRUE(owner >= 0);
	if (owner == 0) {
		close(ready[0]);
		close(hold[1]);
		release_owner(ready[1], hold[0]);
	}
	close(ready[1]);
	close(hold[0]);
	ASSERT_EQ(read(ready[0], &msg, sizeof(msg)), (ssize_t)sizeof(msg));
	ASSERT_EQ(waitpid(owner, &status, 0), owner);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The owner is gone; its context lives on in the sleeper's fd. */
	EXPECT_EQ(tap_read_ll(SYSFS, "contexts"), contexts + 1);
	tap_diag("after the owner's exit, with the fd alive in pid %d: regions +%lld, pending +%lld (fdinfo: regions %lld, pending %lld)",
		 msg.sleeper, tap_read_ll(SYSFS, "regions") - regions,
		 tap_read_ll(SYSFS, "pending") - pending,
		 fdinfo_of(msg.sleeper, msg.fd, "mapwatch-regions"),
		 fdinfo_of(msg.sleeper, msg.fd, "mapwatch-pending"));
	EXPECT_EQ(tap_read_ll(SYSFS, "regions"), regions);
	EXPECT_EQ(tap_read_ll(SYSFS, "pending"), pending);
	EXPECT_EQ(fdinfo_of(msg.sleeper, msg.fd, "mapwatch-pending"), 0);
	ASSERT_EQ(write(hold[1], "x", 1), 1);
	ASSERT_EQ(waitpid(msg.sleeper, &status, 0), msg.sleeper);
	EXPECT_EQ(tap_read_ll(SYSFS, "contexts"), contexts);
	EXPECT_EQ(tap_read_ll(SYSFS, "pending"), pending);
}

/*
 * Review #10: close() against a munmap of a watched page in another
 * thread.  Whatever the order, once munmap() has returned the region must
 * read changed in the area (which stays mapped after close): retired by
 * the munmap, or moved on by the close.  A close that stops the notifier
 * from seeing the context before it has moved the context's words on
 * leaves a window where the munmap is missed and the word still reads
 * unchanged.  16384 other regions make the close long (the watched region
 * has the largest cookie, so the close reaches it last), and the munmap is
 * started at a sweep of delays across the close's duration, for 8 s.
 */
#define CLOSE_OTHERS 16384

struct close_race {
	status_t *st;
	params_t p;
	char *page;
	double delay_ns;
	int go, unchanged, ret;
};

static void *close_race_unmap(void *arg)
{
	struct close_race *r = arg;
	double t0;

	while (!__atomic_load_n(&r->go, __ATOMIC_ACQUIRE))
		;
	t0 = now_ns();
	while (now_ns() - t0 < r->delay_ns)
		;
	r->ret = munmap(r->page, PAGE);
	r->unchanged = !kdreg2_mapping_changed(r->st, &r->p);
	return NULL;
}

TEST(close_never_leaves_a_changed_region_unchanged)
{
	static struct mapwatch_monitor_entry e[CLOSE_OTHERS];
	struct mapwatch_batch b = { .size = sizeof(b), .count = CLOSE_OTHERS,
				    .entry_size = sizeof(e[0]),
				    .entries = (uintptr_t)e };
	char *others = mmap(NULL, CLOSE_OTHERS * PAGE, PROT_NONE, MAP_PRIVATE |
			    MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	double close_ns = 0, end = now_ns() + 8e9;
	int round, bad = 0;

	ASSERT_TRUE(others != MAP_FAILED);
	for (int i = 0; i < CLOSE_OTHERS; i++)
		e[i] = (struct mapwatch_monitor_entry){
			.addr = (uintptr_t)others + i * PAGE, .length = PAGE,
			.cookie = i + 1 };
	for (round = 0; round < 2000 && now_ns() < end && !bad; round++) {
		struct kdreg2_config_data c = {
			.max_regions = CLOSE_OTHERS + 1 };
		struct kdreg2_ioctl_monitor m = { .length = PAGE,
						  .cookie = CLOSE_OTHERS + 1 };
		struct close_race r = { 0 };
		pthread_t th;
		double t;
		int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC);

		ASSERT_TRUE(fd >= 0);
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
		ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b),
			  CLOSE_OTHERS);
		r.page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_TRUE(r.page != MAP_FAILED);
		r.page[0] = 1;
		m.addr = r.page;
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
		r.st = c.status_data;
		r.p = m.monitoring_params;
		ASSERT_FALSE(kdreg2_mapping_changed(r.st, &r.p));
		/* 0.05 to 0.95 times the close's duration, in 10 steps. */
		r.delay_ns = close_ns * (round % 10 + 0.5) / 10;
		ASSERT_EQ(pthread_create(&th, NULL, close_race_unmap, &r), 0);
		usleep(200);	/* the thread spinning on go */
		__atomic_store_n(&r.go, 1, __ATOMIC_RELEASE);
		t = now_ns();
		ASSERT_OK(close(fd));
		t = now_ns() - t;
		close_ns = close_ns ? (3 * close_ns + t) / 4 : t;
		ASSERT_EQ(pthread_join(th, NULL), 0);
		ASSERT_EQ(r.ret, 0);
		if (r.unchanged) {
			tap_diag("round %d: munmap() of the watched page returned (started %.0f us into a %.0f us close) and its region still read unchanged",
				 round, r.delay_ns / 1000, t / 1000);
			bad = 1;
		}
	}
	tap_diag("%d rounds, close() %.0f us on average", round,
		 close_ns / 1000);
	ASSERT_FALSE(bad);
}

/*
 * Review #11: CONFIG_DATA with the size the fd already has returns the
 * area it already has, but the caller may have unmapped that area and put
 * its own memory at the address.  Handing the address back would make the
 * caller read its own memory as the status area: it must get a new area
 * (or an error), and its memory must stay untouched.
 */
TEST(same_size_config_rechecks_address)
{
	struct kdreg2_config_data c = { .max_regions = 8 };
	struct kdreg2_config_data again = { .max_regions = 8 };
	struct kdreg2_ioctl_monitor m = { .length = PAGE, .cookie = 1 };
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC);
	char *mine, *page;
	status_t *st;

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	st = c.status_data;
	ASSERT_OK(munmap((void *)st, status_size(8)));
	mine = mmap((void *)st, status_size(8), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_TRUE(mine == (char *)st);
	memset(mine, 0x42, status_size(8));
	if (ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &again)) {
		tap_diag("same-size CONFIG_DATA after the area was unmapped: %s",
			 tap_errname(errno));
	} else {
		if (again.status_data == st)
			tap_diag("same-size CONFIG_DATA handed back %p, where the caller's own memory now is",
				 (void *)st);
		ASSERT_TRUE(again.status_data != st);
		ASSERT_EQ(again.status_data->max_regions, 8);
		ASSERT_EQ(mapwatch_status_ext(again.status_data)->magic,
			  MAPWATCH_STATUS_MAGIC);
		/* And the fd works with its new area. */
		page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_TRUE(page != MAP_FAILED);
		m.addr = page;
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
		ASSERT_FALSE(kdreg2_mapping_changed(again.status_data,
						    &m.monitoring_params));
		ASSERT_OK(munmap(page, PAGE));
		ASSERT_TRUE(kdreg2_mapping_changed(again.status_data,
						   &m.monitoring_params));
	}
	for (size_t i = 0; i < status_size(8); i++)
		ASSERT_EQ(mine[i], 0x42);
	ASSERT_OK(close(fd));
}

/* A userfaultfd over one fresh page of ours, in @mode; the page in *page. */
static int uffd_page(char **page, __u64 mode, __u64 *features)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = mode };
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	ASSERT_TRUE(uffd >= 0);
	ASSERT_OK(ioctl(uffd, UFFDIO_API, &api));
	if (features)
		*features = api.features;
	*page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(*page != MAP_FAILED);
	if (mode & UFFDIO_REGISTER_MODE_WP)
		(*page)[0] = 0;	/* present: only writes will stop */
	reg.range.start = (uintptr_t)*page;
	reg.range.len = PAGE;
	if (mode & UFFDIO_REGISTER_MODE_WP &&
	    !(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
		return uffd;	/* the caller skips */
	ASSERT_OK(ioctl(uffd, UFFDIO_REGISTER, &reg));
	return uffd;
}

/* Wait up to @ms for *done. */
static int done_within(int *done, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (__atomic_load_n(done, __ATOMIC_SEQ_CST))
			return 1;
		usleep(10000);
	}
	return __atomic_load_n(done, __ATOMIC_SEQ_CST);
}

/*
 * Review #9: read() holds the read lock across copy_to_user, which can
 * stall as long as the reader's buffer page does (here a userfaultfd page
 * nobody fills yet).  A reader on an O_NONBLOCK fd must not wait behind it:
 * it returns at once, EAGAIN (or an event), while the stalled reader is
 * still stalled.
 */
struct reader {
	int fd;
	void *buf;
	ssize_t ret;
	int err, done;
};

static void *do_read(void *arg)
{
	struct reader *r = arg;

	r->ret = read(r->fd, r->buf, sizeof(struct kdreg2_event));
	r->err = errno;
	__atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

TEST(nonblocking_read_never_waits_on_a_reader)
{
	struct kdreg2_config_data c = { .max_regions = 4 };
	struct kdreg2_ioctl_monitor m = { .length = PAGE, .cookie = 9 };
	struct uffdio_zeropage zp = { .range.len = PAGE };
	struct pollfd pfd = { .events = POLLIN };
	struct reader stuck = { 0 }, nb = { 0 };
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC);
	int uffd, returned, stalled;
	struct kdreg2_event ev;
	struct uffd_msg msg;
	pthread_t t1, t2;
	char *page, *buf;

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	/* One event pending, so a reader gets as far as copying it out. */
	page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(page != MAP_FAILED);
	m.addr = page;
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
	ASSERT_OK(munmap(page, PAGE));
	ASSERT_OK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK));
	uffd = uffd_page(&buf, UFFDIO_REGISTER_MODE_MISSING, NULL);

	stuck.fd = fd;
	stuck.buf = buf;
	ASSERT_EQ(pthread_create(&t1, NULL, do_read, &stuck), 0);
	pfd.fd = uffd;
	ASSERT_EQ(poll(&pfd, 1, 10000), 1);
	ASSERT_EQ(read(uffd, &msg, sizeof(msg)), (ssize_t)sizeof(msg));
	ASSERT_EQ(msg.event, UFFD_EVENT_PAGEFAULT);
	ASSERT_EQ(msg.arg.pagefault.address & ~(PAGE - 1), (uintptr_t)buf);
	/* The first reader is in its fault, inside read(). */
	nb.fd = fd;
	nb.buf = &ev;
	ASSERT_EQ(pthread_create(&t2, NULL, do_read, &nb), 0);
	returned = done_within(&nb.done, 2000);
	stalled = !__atomic_load_n(&stuck.done, __ATOMIC_SEQ_CST);
	/* Let the first reader finish. */
	zp.range.start = (uintptr_t)buf;
	ASSERT_OK(ioctl(uffd, UFFDIO_ZEROPAGE, &zp));
	ASSERT_TRUE(done_within(&stuck.done, 10000));
	ASSERT_TRUE(done_within(&nb.done, 10000));
	ASSERT_EQ(pthread_join(t1, NULL), 0);
	ASSERT_EQ(pthread_join(t2, NULL), 0);
	if (!returned)
		tap_diag("an O_NONBLOCK read() still waited 2 s behind a reader stalled in copy_to_user (once the fault was filled it returned %zd, %s)",
			 nb.ret, nb.ret < 0 ? tap_errname(nb.err) : "data");
	ASSERT_TRUE(returned);
	ASSERT_TRUE(stalled);
	ASSERT_TRUE(nb.ret == (ssize_t)sizeof(ev) ||
		    (nb.ret < 0 && nb.err == EAGAIN));
	/* The one event went to exactly one of them. */
	ASSERT_EQ((stuck.ret == (ssize_t)sizeof(ev)) +
		  (nb.ret == (ssize_t)sizeof(ev)), 1);
	close(uffd);
	close(fd);
}

/*
 * Review #9: CONFIG_DATA holds ctx->mutex across copy_to_user of its
 * argument, so it can hold it as long as that page stalls; another
 * CONFIG_DATA on the fd waits for the mutex, and that wait must be
 * killable.  The stalled call runs in process X, which shares the child's
 * mm (CLONE_VM, so the fd serves it) but not its thread group: a kill of
 * the child leaves X stalled with the mutex held (a stall inside the
 * child itself would end with the kill, since userfaultfd waits are
 * killable, and release the mutex: that would prove nothing).  The child,
 * with a thread waiting for the mutex, is SIGKILLed and must be reaped
 * while X is still stalled.
 *
 * Getting X stalled inside the mutex: the argument page is write-protected
 * with userfaultfd.  CONFIG_DATA writes its argument once before taking
 * the mutex (the first fault: let it go) and once after mapping the new
 * area, under the mutex; in between it allocates and fills a 2M-region
 * area (tens of ms), and the page is write-protected again meanwhile.  A
 * second fault with the new area already in /proc/self/maps is the one
 * under the mutex; a miss is retried with a longer or shorter delay.
 */
struct stall {
	int fd;
	struct kdreg2_config_data *arg;
	long ret;
};

static int stall_config(void *arg)
{
	struct stall *s = arg;

	s->ret = syscall(SYS_ioctl, s->fd, KDREG2_IOCTL_CONFIG_DATA, s->arg);
	return 0;
}

struct waiter {
	int fd;
	pid_t tid;
};

static void *config_behind(void *arg)
{
	struct waiter *w = arg;
	struct kdreg2_config_data c = { .max_regions = 16 };

	__atomic_store_n(&w->tid, (pid_t)syscall(SYS_gettid),
			 __ATOMIC_SEQ_CST);
	ioctl(w->fd, KDREG2_IOCTL_CONFIG_DATA, &c);
	return NULL;
}

static int write_protect(int uffd, char *page, int on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)page, .len = PAGE },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
}

/* 1: a fault on @uffd came; 0: process @x exited first; -1: neither. */
static int fault_or_exit(int uffd, pid_t x, int ms)
{
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };
	struct uffd_msg msg;

	for (int i = 0; i < ms / 20; i++) {
		if (poll(&pfd, 1, 20) == 1 &&
		    read(uffd, &msg, sizeof(msg)) == sizeof(msg) &&
		    msg.event == UFFD_EVENT_PAGEFAULT)
			return 1;
		if (waitpid(x, NULL, WNOHANG) == x)
			return 0;
	}
	return -1;
}

struct kill_report {
	int step;		/* 0: set up; -1: no userfaultfd WP; else failed */
	int tries;
	pid_t x, w;
	char wstate;
};

static void stall_child(int rep_fd)
{
	static char stack[1 << 16] __attribute__((aligned(16)));
	struct kill_report rep = { .step = 1 };
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct waiter w = { .fd = fd };
	long delay_us = 4000;
	__u64 features;
	struct stall s;
	pthread_t wt;
	char *page;
	int uffd;

	ASSERT_TRUE(fd >= 0);
	uffd = uffd_page(&page, UFFDIO_REGISTER_MODE_WP, &features);
	if (!(features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		rep.step = -1;
		goto report;
	}
	s.fd = fd;
	s.arg = (struct kdreg2_config_data *)page;
	for (rep.tries = 1; rep.tries <= 8; rep.tries++) {
		int maps = status_mappings(), got;

		/* A new, larger area each try: the old one cannot serve. */
		s.arg->max_regions = (2UL << 20) + rep.tries * 1024;
		s.arg->status_data = NULL;
		ASSERT_OK(write_protect(uffd, page, 1));
		rep.x = clone(stall_config, stack + sizeof(stack),
			      CLONE_VM | SIGCHLD, &s);
		ASSERT_TRUE(rep.x > 0);
		rep.step = 2;
		if (fault_or_exit(uffd, rep.x, 10000) != 1)
			goto report;	/* the write before the mutex: none */
		ASSERT_OK(write_protect(uffd, page, 0));
		usleep(delay_us);
		ASSERT_OK(write_protect(uffd, page, 1));
		got = fault_or_exit(uffd, rep.x, 10000);
		if (got == 1 && status_mappings() > maps)
			break;		/* stalled under the mutex */
		/* Too early (the first write again) or too late: again. */
		delay_us = got == 1 ? delay_us * 2 : delay_us / 2 + 1;
		ASSERT_OK(write_protect(uffd, page, 0));
		if (got != 0)
			ASSERT_EQ(waitpid(rep.x, NULL, 0), rep.x);
	}
	rep.step = 3;
	if (rep.tries > 8)
		goto report;
	ASSERT_EQ(pthread_create(&wt, NULL, config_behind, &w), 0);
	for (int i = 0; i < 200 && rep.wstate != 'D'; i++) {
		usleep(10000);
		if (__atomic_load_n(&w.tid, __ATOMIC_SEQ_CST))
			rep.wstate = task_state(__atomic_load_n(&w.tid,
							 __ATOMIC_SEQ_CST));
	}
	rep.w = w.tid;
	rep.step = rep.wstate == 'D' ? 0 : 4;
report:
	if (write(rep_fd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(2);
	for (;;)
		pause();	/* until killed */
}

TEST(config_data_is_killable)
{
	struct kill_report rep = { .step = 9 };
	int rep_pipe[2], status, reaped = 0;
	char xstate = 0;
	pid_t child;

	/* X outlives the child: reap it here. */
	ASSERT_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	ASSERT_OK(pipe(rep_pipe));
	child = fork();
	ASSERT_TRUE(child >= 0);
	if (child == 0) {
		close(rep_pipe[0]);
		stall_child(rep_pipe[1]);
	}
	close(rep_pipe[1]);
	ASSERT_EQ(read(rep_pipe[0], &rep, sizeof(rep)), (ssize_t)sizeof(rep));
	if (rep.step) {
		kill(child, SIGKILL);
		if (rep.x > 0)
			kill(rep.x, SIGKILL);
		waitpid(child, NULL, 0);
		if (rep.step == -1)
			SKIP("no userfaultfd write-protect");
		tap_diag("set-up step %d failed after %d tries (waiter state '%c')",
			 rep.step, rep.tries, rep.wstate ? rep.wstate : '?');
		ASSERT_EQ(rep.step, 0);
	}
	tap_diag("CONFIG_DATA stalled under ctx->mutex in process %d (try %d); another CONFIG_DATA waiting in thread %d ('%c')",
		 rep.x, rep.tries, rep.w, rep.wstate);
	ASSERT_OK(kill(child, SIGKILL));
	for (int i = 0; i < 300 && !reaped; i++) {
		reaped = waitpid(child, &status, WNOHANG) == child;
		if (!reaped)
			usleep(10000);
	}
	xstate = task_state(rep.x);
	/* X's stall is killable: that ends it all. */
	ASSERT_OK(kill(rep.x, SIGKILL));
	if (!reaped)
		ASSERT_EQ(waitpid(child, &status, 0), child);
	ASSERT_EQ(waitpid(rep.x, NULL, 0), rep.x);
	if (!reaped)
		tap_diag("the child was not reaped 3 s after SIGKILL: its thread waiting for ctx->mutex in CONFIG_DATA does not die");
	ASSERT_TRUE(reaped);
	/* And it was reaped while the CONFIG_DATA holding the mutex stalled. */
	ASSERT_TRUE(xstate != 0 && xstate != 'Z');
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
