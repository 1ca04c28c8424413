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
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include "mapwatch_uapi.h"
#include "tap.h"

#define PAGE 4096UL
#define SYSFS "/sys/kernel/mapwatch/"
#define CYCLES 500

typedef struct kdreg2_monitoring_params params_t;
typedef const struct kdreg2_status_data status_t;

/* How many status areas this process has mapped. */
static int status_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "[mapwatch-status]") != NULL;
	fclose(f);
	return n;
}

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

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
