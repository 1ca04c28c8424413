// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kdreg2 user ABI as mapwatch serves it, one behaviour per case: every
 * ioctl and its errno, read(), poll/epoll, the read-only status area, the
 * binary layout, fork/exec/exit/fd passing, two fds, both device names and a
 * million regions on one fd.
 *
 * usage: kdreg2_abi [CASE...]      (TAP)
 *        kdreg2_abi --exec-check FD   (internal: the image after exec)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "mapwatch_uapi.h"
#include "pagemap.h"
#include "tap.h"

#define PAGE 4096UL
#define EV_SIZE sizeof(struct kdreg2_event)
#define SYSFS "/sys/kernel/mapwatch/"
#define PARAM "/sys/module/mapwatch/parameters/"

typedef struct kdreg2_monitoring_params params_t;
typedef const struct kdreg2_status_data status_t;

/* ---- helpers ---------------------------------------------------------- */

static int open_cfg_on(const char *dev, int flags, size_t max, status_t **st)
{
	struct kdreg2_config_data c = { .max_regions = max };
	int fd = open(dev, O_RDWR | O_CLOEXEC | flags);

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_TRUE(c.status_data != NULL);
	*st = c.status_data;
	return fd;
}

static int open_cfg(size_t max, status_t **st)
{
	return open_cfg_on(MAPWATCH_DEVICE_NAME, 0, max, st);
}

static char *map_pages(size_t n)
{
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 0x5a, n * PAGE);
	return p;
}

static params_t watch(int fd, const void *addr, size_t len, uint64_t cookie)
{
	struct kdreg2_ioctl_monitor m = { .addr = addr, .length = len,
					  .cookie = cookie };

	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
	return m.monitoring_params;
}

static long unwatch(int fd, uint64_t cookie, params_t p)
{
	struct kdreg2_ioctl_unmonitor u = { .cookie = cookie,
					    .monitoring_params = p };

	return ioctl(fd, KDREG2_IOCTL_UNMONITOR, &u);
}

static uint64_t pending(status_t *st)
{
	return kdreg2_read_counter(&st->pending_events);
}

static uint64_t total(status_t *st)
{
	return kdreg2_read_counter(&st->total_events);
}

static uint64_t active(status_t *st)
{
	return kdreg2_read_counter(&st->num_active_regions);
}

static uint32_t state_at(status_t *st, size_t loc)
{
	return st->monitoring_state_base[loc].u.raw;
}

/* Bytes of the status area for max_regions (layout in mapwatch_uapi.h). */
static size_t status_size(size_t max)
{
	size_t b = MAPWATCH_STATE_ARRAY_OFFSET + (max + 1) * sizeof(uint32_t);

	return (b + PAGE - 1) & ~(PAGE - 1);
}

static uint64_t read_u64(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ASSERT_TRUE(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ASSERT_GT(n, 0);
	return strtoull(buf, NULL, 0);
}

/* How many mappings of a mapwatch device this process has. */
static int device_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	ASSERT_TRUE(f != NULL);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "[mapwatch-status]"))
			n++;
	fclose(f);
	return n;
}

static bool mapped(const void *addr)
{
	unsigned char v;

	return mincore((void *)((uintptr_t)addr & ~(PAGE - 1)), PAGE, &v) == 0;
}

/* Wait for a child; its exit code, or 128 + signal. */
static int wait_child(pid_t pid)
{
	int status;

	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Wait until thread tid sleeps inside system call nr (bounded: 60 s). */
static void wait_blocked_in(pid_t tid, long nr)
{
	char path[64], buf[128];

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	for (int i = 0; i < 60000; i++) {
		int fd = open(path, O_RDONLY);
		ssize_t n;

		ASSERT_TRUE(fd >= 0);
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			if (strtol(buf, NULL, 10) == nr && buf[0] != 'r')
				return;
		}
		usleep(1000);
	}
	ASSERT_TRUE(!"thread never blocked in the expected system call");
}

/* read(2) without the compiler's buffer-size checks, for bad buffers. */
static ssize_t raw_read(int fd, void *buf, size_t n)
{
	return syscall(SYS_read, fd, buf, n);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Read exactly one event, non-blocking, and check it. */
static void expect_event(int fd, const void *addr, size_t len, uint64_t cookie)
{
	struct kdreg2_event ev;
	int fl = fcntl(fd, F_GETFL);

	ASSERT_OK(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)EV_SIZE);
	ASSERT_OK(fcntl(fd, F_SETFL, fl));
	ASSERT_EQ(ev.type, KDREG2_EVENT_MAPPING_CHANGE);
	ASSERT_EQ((uintptr_t)ev.u.mapping_change.addr, (uintptr_t)addr);
	ASSERT_EQ(ev.u.mapping_change.len, len);
	ASSERT_EQ(ev.u.mapping_change.cookie, cookie);
}

/*
 * A region that failed operations must have left alone: still monitored,
 * unchanged, and a correct UNMONITOR still succeeds (then re-monitor it).
 */
static params_t expect_intact(int fd, status_t *st, const void *addr,
			      size_t len, uint64_t cookie, params_t p)
{
	ASSERT_FALSE(kdreg2_mapping_changed(st, &p));
	ASSERT_OK(unwatch(fd, cookie, p));
	return watch(fd, addr, len, cookie);
}

/* ---- layout ----------------------------------------------------------- */

TEST(struct_sizes_match_kdreg2)
{
	ASSERT_EQ(sizeof(struct kdreg2_config_data), 16);
	ASSERT_EQ(sizeof(struct kdreg2_status_data), 48);
	ASSERT_EQ(sizeof(struct kdreg2_ioctl_monitor), 40);
	ASSERT_EQ(sizeof(struct kdreg2_ioctl_unmonitor), 24);
	ASSERT_EQ(sizeof(struct kdreg2_monitoring_params), 16);
	ASSERT_EQ(sizeof(struct kdreg2_event), 32);
	ASSERT_EQ(sizeof(struct kdreg2_monitoring_state), 4);
	ASSERT_EQ(offsetof(struct kdreg2_status_data, version), 0);
	ASSERT_EQ(offsetof(struct kdreg2_status_data, max_regions), 8);
	ASSERT_EQ(offsetof(struct kdreg2_status_data, pending_events), 16);
	ASSERT_EQ(offsetof(struct kdreg2_status_data, total_events), 24);
	ASSERT_EQ(offsetof(struct kdreg2_status_data, num_active_regions), 32);
	ASSERT_EQ(offsetof(struct kdreg2_status_data, monitoring_state_base), 40);
	ASSERT_EQ(offsetof(struct kdreg2_ioctl_monitor, monitoring_params), 24);
	ASSERT_EQ(offsetof(struct kdreg2_ioctl_unmonitor, monitoring_params), 8);
	ASSERT_EQ(offsetof(struct kdreg2_event, u.mapping_change.addr), 8);
	ASSERT_EQ(offsetof(struct kdreg2_event, u.mapping_change.len), 16);
	ASSERT_EQ(offsetof(struct kdreg2_event, u.mapping_change.cookie), 24);
}

TEST(request_codes_match_kdreg2)
{
	status_t *st;
	int fd;
	char *p = map_pages(1);
	struct kdreg2_config_data c = { .max_regions = 4 };
	struct kdreg2_ioctl_monitor m = { .addr = p, .length = PAGE,
					  .cookie = 9 };
	struct kdreg2_ioctl_unmonitor u = { .cookie = 9 };

	ASSERT_EQ(KDREG2_IOCTL_CONFIG_DATA, 0xc0106b01UL);
	ASSERT_EQ(KDREG2_IOCTL_MONITOR, 0xc0286b02UL);
	ASSERT_EQ(KDREG2_IOCTL_UNMONITOR, 0x40186b03UL);
	ASSERT_EQ(KDREG2_IOCTL_UNMONITOR_ALL, 0x6b04UL);
	ASSERT_EQ(KDREG2_IOCTL_FLUSH, 0x6b05UL);
	ASSERT_EQ(KDREG2_IOCTL_DUMP_STATS, 0x6b06UL);
	/* A client that hard-codes the numbers is served. */
	fd = open(KDREG2_DEVICE_NAME, O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, 0xc0106b01UL, &c));
	st = c.status_data;
	ASSERT_EQ(st->max_regions, 4);
	ASSERT_OK(ioctl(fd, 0xc0286b02UL, &m));
	ASSERT_EQ(active(st), 1);
	u.monitoring_params = m.monitoring_params;
	ASSERT_OK(ioctl(fd, 0x40186b03UL, &u));
	ASSERT_EQ(active(st), 0);
	watch(fd, p, PAGE, 9);
	ASSERT_OK(ioctl(fd, 0x6b04UL));
	ASSERT_EQ(active(st), 0);
	ASSERT_OK(ioctl(fd, 0x6b05UL));
	ASSERT_OK(ioctl(fd, 0x6b06UL));
}

/* ---- CONFIG_DATA ------------------------------------------------------ */

TEST(config_data_fills_status_area)
{
	status_t *st;
	int before = device_mappings();
	int fd = open_cfg(100, &st);

	ASSERT_EQ(device_mappings(), before + 1);
	ASSERT_EQ(st->version, MAPWATCH_ABI_VERSION);
	ASSERT_EQ(st->max_regions, 100);
	ASSERT_EQ(pending(st), 0);
	ASSERT_EQ(total(st), 0);
	ASSERT_EQ(active(st), 0);
	ASSERT_EQ((uintptr_t)st->monitoring_state_base,
		  (uintptr_t)st + MAPWATCH_STATE_ARRAY_OFFSET);
	ASSERT_EQ((uintptr_t)st % PAGE, 0);
	/* Every entry up to and including [max_regions] is readable. */
	for (size_t i = 0; i <= 100; i++)
		(void)state_at(st, i);
	ASSERT_TRUE(mapped((const char *)st + status_size(100) - 1));
	ASSERT_EQ(mapwatch_status_ext(st)->magic, MAPWATCH_STATUS_MAGIC);
	close(fd);
}

TEST(config_data_zero_regions)
{
	status_t *st;
	int fd = open_cfg(0, &st);
	char *p = map_pages(1);
	struct kdreg2_ioctl_monitor m = { .addr = p, .length = PAGE,
					  .cookie = 1 };
	params_t at_end = { .location = 0, .generation = state_at(st, 0) };

	ASSERT_EQ(st->max_regions, 0);
	ASSERT_BAD_INPUT("MONITOR", "max_regions 0", ioctl(fd,
			 KDREG2_IOCTL_MONITOR, &m), ENOSPC);
	/* location == max_regions passes the inline bound check. */
	ASSERT_FALSE(kdreg2_mapping_changed(st, &at_end));
}

TEST(config_data_above_limit_is_enospc)
{
	uint64_t limit = read_u64(PARAM "max_regions_limit");
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	int before = device_mappings();
	struct kdreg2_config_data c = { .max_regions = limit + 1 };
	status_t *st;

	ASSERT_TRUE(fd >= 0);
	ASSERT_BAD_INPUT("CONFIG_DATA", "max_regions limit+1",
			 ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c), ENOSPC);
	c.max_regions = SIZE_MAX;
	ASSERT_BAD_INPUT("CONFIG_DATA", "max_regions SIZE_MAX",
			 ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c), ENOSPC);
	ASSERT_EQ(device_mappings(), before);
	/* The fd is still fresh: a valid CONFIG_DATA works afterwards. */
	c.max_regions = 8;
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	st = c.status_data;
	ASSERT_EQ(st->max_regions, 8);
}

TEST(config_data_bad_pointer_is_efault)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	int before = device_mappings();
	struct kdreg2_config_data *ro;

	ASSERT_TRUE(fd >= 0);
	ASSERT_BAD_INPUT("CONFIG_DATA", "NULL argument",
			 ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, NULL), EFAULT);
	ASSERT_BAD_INPUT("CONFIG_DATA", "argument pointer 8",
			 ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, (void *)8), EFAULT);
	ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(ro != MAP_FAILED);
	ro->max_regions = 4;
	ASSERT_OK(mprotect(ro, PAGE, PROT_READ));
	ASSERT_BAD_INPUT("CONFIG_DATA", "read-only argument",
			 ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, ro), EFAULT);
	/* Nothing was mapped by the failed calls. */
	ASSERT_EQ(device_mappings(), before);
}

TEST(config_data_resize_when_idle)
{
	status_t *st, *old;
	int fd = open_cfg(4, &st);
	char *p = map_pages(2);
	struct kdreg2_config_data c = { .max_regions = 3000 };
	params_t a, stale;
	int fd2;

	a = watch(fd, p, PAGE, 1);
	ASSERT_OK(unwatch(fd, 1, a));
	stale = a;
	old = st;
	/* Grows past the area: a new one; the module never unmaps. */
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	st = c.status_data;
	ASSERT_TRUE(st != old);
	ASSERT_TRUE(mapped(old));
	ASSERT_TRUE(kdreg2_mapping_changed(old, &stale));
	ASSERT_EQ(device_mappings(), 2);
	ASSERT_EQ(st->max_regions, 3000);
	ASSERT_TRUE(mapped((const char *)st + status_size(3000) - 1));
	ASSERT_EQ(active(st), 0);
	/* All 3000 slots are usable. */
	for (int i = 0; i < 3000; i++) {
		a = watch(fd, p, PAGE, 100 + i);
		ASSERT_LT(a.location, 3000);
	}
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_UNMONITOR_ALL));
	/* Smaller again: it fits, so the same address, as kdreg2 keeps it. */
	old = st;
	c.max_regions = 2;
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	st = c.status_data;
	ASSERT_TRUE(st == old);
	ASSERT_EQ(device_mappings(), 2);
	ASSERT_EQ(st->max_regions, 2);
	a = watch(fd, p, PAGE, 1);
	watch(fd, p + PAGE, PAGE, 2);
	ASSERT_FALSE(kdreg2_mapping_changed(st, &a));
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_TRUE(kdreg2_mapping_changed(st, &a));
	ASSERT_EQ(pending(st), 1);
	/* The area left behind by the first resize serves the next fd. */
	c.max_regions = 4;
	fd2 = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	ASSERT_TRUE(fd2 >= 0);
	ASSERT_OK(ioctl(fd2, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_EQ(device_mappings(), 2);
	ASSERT_TRUE(kdreg2_mapping_changed(c.status_data, &stale));
	ASSERT_EQ(c.status_data->max_regions, 4);
	ASSERT_EQ(active(c.status_data), 0);
	a = watch(fd2, p + PAGE, PAGE, 1);
	ASSERT_FALSE(kdreg2_mapping_changed(c.status_data, &a));
}

TEST(config_data_resize_spares_a_foreign_mapping_at_the_old_address)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	struct kdreg2_config_data c = { .max_regions = 8 };
	char *mine;

	/* The user unmaps the status area and maps its own memory there. */
	ASSERT_OK(munmap((void *)st, status_size(4)));
	mine = mmap((void *)st, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE |
		    MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_TRUE(mine == (char *)st);
	mine[0] = 42;
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_TRUE(c.status_data != st);
	/* The resize left the user's memory alone. */
	ASSERT_TRUE(mapped(mine));
	ASSERT_EQ(mine[0], 42);
	ASSERT_EQ(c.status_data->max_regions, 8);
	ASSERT_EQ(device_mappings(), 1);
}

TEST(config_data_resize_with_region_is_ebusy)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	struct kdreg2_config_data c = { .max_regions = 8 };
	params_t a = watch(fd, p, PAGE, 1);

	ASSERT_BAD_INPUT("CONFIG_DATA", "resize while a region is monitored",
			 ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c), EBUSY);
	/* The status area is the same one, still mapped, unchanged. */
	ASSERT_TRUE(mapped(st));
	ASSERT_EQ(st->max_regions, 4);
	ASSERT_EQ(device_mappings(), 1);
	a = expect_intact(fd, st, p, PAGE, 1, a);
	ASSERT_OK(unwatch(fd, 1, a));
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_EQ(c.status_data->max_regions, 8);
}

/* The area is mapped through its own read-only file: any open mode works. */
TEST(config_data_on_write_only_fd)
{
	struct kdreg2_config_data c = { .max_regions = 4 };
	int fd = open(MAPWATCH_DEVICE_NAME, O_WRONLY | O_CLOEXEC);
	char *p = map_pages(1);
	params_t a;

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_EQ(c.status_data->max_regions, 4);
	a = watch(fd, p, PAGE, 1);
	ASSERT_FALSE(kdreg2_mapping_changed(c.status_data, &a));
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_TRUE(kdreg2_mapping_changed(c.status_data, &a));
}

/* kdreg2: CONFIG_DATA with the size it already has changes nothing, busy or not. */
TEST(config_data_same_size_is_no_change)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(2);
	struct kdreg2_config_data c = { .max_regions = 4 };
	params_t a = watch(fd, p, PAGE, 1);

	watch(fd, p + PAGE, PAGE, 2);
	ASSERT_OK(munmap(p + PAGE, PAGE));	/* one event pending */
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_TRUE(c.status_data == st);
	ASSERT_EQ(st->max_regions, 4);
	ASSERT_EQ(pending(st), 1);
	ASSERT_EQ(device_mappings(), 1);
	a = expect_intact(fd, st, p, PAGE, 1, a);
}

TEST(config_data_resize_with_pending_event_is_ebusy)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(2);
	struct kdreg2_config_data c = { .max_regions = 8 };
	struct kdreg2_event ev;

	watch(fd, p, PAGE, 1);
	watch(fd, p + PAGE, PAGE, 2);
	ASSERT_OK(munmap(p, 2 * PAGE));
	ASSERT_EQ(active(st), 0);
	ASSERT_EQ(pending(st), 2);
	ASSERT_BAD_INPUT("CONFIG_DATA", "resize while events are pending",
			 ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c), EBUSY);
	ASSERT_EQ(pending(st), 2);
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)EV_SIZE);
	ASSERT_ERRNO(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c), EBUSY);
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)EV_SIZE);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	/* 8 regions fit in the same page: kept in place, as kdreg2 does. */
	ASSERT_TRUE(c.status_data == st);
	ASSERT_EQ(c.status_data->max_regions, 8);
}

TEST(config_data_resize_after_flush)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	struct kdreg2_config_data c = { .max_regions = 6 };

	watch(fd, p, PAGE, 1);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_ERRNO(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c), EBUSY);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_EQ(c.status_data->max_regions, 6);
	/* Counters carry over: the event happened on this fd. */
	ASSERT_EQ(total(c.status_data), 1);
	ASSERT_EQ(pending(c.status_data), 0);
}

/* ---- MONITOR ---------------------------------------------------------- */

TEST(monitor_returns_distinct_slots_and_generations)
{
	status_t *st;
	int fd = open_cfg(16, &st);
	char *p = map_pages(16);
	params_t a[16];

	for (int i = 0; i < 16; i++) {
		a[i] = watch(fd, p + i * PAGE, PAGE, 1000 + i);
		ASSERT_LT(a[i].location, 16);
		ASSERT_EQ(state_at(st, a[i].location), a[i].generation);
		for (int j = 0; j < i; j++)
			ASSERT_NE(a[i].location, a[j].location);
		ASSERT_EQ(active(st), i + 1);
	}
	for (int i = 0; i < 16; i++)
		ASSERT_FALSE(kdreg2_mapping_changed(st, &a[i]));
	ASSERT_EQ(pending(st), 0);
}

TEST(monitor_zero_length_is_einval)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	struct kdreg2_ioctl_monitor m = { .addr = p, .length = 0,
					  .cookie = 1 };

	ASSERT_BAD_INPUT("MONITOR", "length 0",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EINVAL);
	ASSERT_EQ(active(st), 0);
	/* The cookie was not taken. */
	watch(fd, p + 1, 1, 1);
}

TEST(monitor_bad_cookie_is_einval)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	struct kdreg2_ioctl_monitor m = { .addr = p, .length = PAGE,
					  .cookie = KDREG2_BAD_COOKIE_VALUE };

	ASSERT_BAD_INPUT("MONITOR", "cookie (u64)-1",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EINVAL);
	ASSERT_EQ(active(st), 0);
	/* Its neighbour is an ordinary cookie. */
	watch(fd, p, PAGE, KDREG2_BAD_COOKIE_VALUE - 1);
	watch(fd, p, PAGE, 0);
	ASSERT_EQ(active(st), 2);
}

TEST(monitor_wrapping_or_kernel_range_is_einval)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	struct kdreg2_ioctl_monitor m = { .length = PAGE, .cookie = 1 };

	m.addr = (void *)0xffff888000000000UL;
	ASSERT_BAD_INPUT("MONITOR", "kernel address",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EINVAL);
	m.addr = (void *)-PAGE;
	ASSERT_BAD_INPUT("MONITOR", "last page of the address space",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EINVAL);
	m.addr = (void *)0x10000UL;
	m.length = (size_t)-0x8000;
	ASSERT_BAD_INPUT("MONITOR", "addr + length wraps",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EINVAL);
	m.addr = (void *)PAGE;
	m.length = SIZE_MAX;
	ASSERT_BAD_INPUT("MONITOR", "length SIZE_MAX",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EINVAL);
	/* Past the top of user space, with 4-level or 5-level paging. */
	m.addr = (void *)0x7fff00000000UL;
	m.length = 1UL << 57;
	ASSERT_BAD_INPUT("MONITOR", "range runs past the top of user space",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EINVAL);
	ASSERT_EQ(active(st), 0);
}

TEST(monitor_unmapped_memory_is_allowed)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(2);
	params_t a;

	ASSERT_OK(munmap(p, 2 * PAGE));
	a = watch(fd, p, 2 * PAGE, 1);
	ASSERT_EQ(active(st), 1);
	ASSERT_FALSE(kdreg2_mapping_changed(st, &a));
}

TEST(monitor_duplicate_cookie_other_range_is_ebusy)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(2);
	params_t a = watch(fd, p, PAGE, 7);
	struct kdreg2_ioctl_monitor m = { .addr = p + PAGE, .length = PAGE,
					  .cookie = 7 };

	ASSERT_BAD_INPUT("MONITOR", "cookie in use, other address",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EBUSY);
	m.addr = p;
	m.length = 2 * PAGE;
	ASSERT_BAD_INPUT("MONITOR", "cookie in use, other length",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EBUSY);
	ASSERT_EQ(active(st), 1);
	/* Nothing changed for the region that owns the cookie. */
	ASSERT_OK(munmap(p + PAGE, PAGE));
	ASSERT_FALSE(kdreg2_mapping_changed(st, &a));
	ASSERT_EQ(pending(st), 0);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_TRUE(kdreg2_mapping_changed(st, &a));
	expect_event(fd, p, PAGE, 7);
}

TEST(monitor_same_triple_returns_same_params)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	params_t a = watch(fd, p, PAGE, 7);
	params_t b = watch(fd, p, PAGE, 7);

	ASSERT_EQ(a.location, b.location);
	ASSERT_EQ(a.generation, b.generation);
	ASSERT_EQ(active(st), 1);
	/* One region: one UNMONITOR retires it, a second finds nothing. */
	ASSERT_OK(unwatch(fd, 7, b));
	ASSERT_ERRNO(unwatch(fd, 7, a), ESRCH);
	ASSERT_EQ(active(st), 0);
}

TEST(monitor_max_regions_enospc_and_unmonitor_frees_slot)
{
	status_t *st;
	int fd = open_cfg(3, &st);
	char *p = map_pages(1);
	params_t a[3];
	struct kdreg2_ioctl_monitor m = { .addr = p, .length = PAGE,
					  .cookie = 99 };

	for (int i = 0; i < 3; i++)
		a[i] = watch(fd, p, PAGE, i);
	ASSERT_BAD_INPUT("MONITOR", "max_regions regions monitored",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), ENOSPC);
	ASSERT_EQ(active(st), 3);
	/* The same triple as a monitored region is still answered. */
	ASSERT_EQ(watch(fd, p, PAGE, 1).location, a[1].location);
	ASSERT_OK(unwatch(fd, 1, a[1]));
	ASSERT_EQ(active(st), 2);
	/* The slot is free at once. */
	params_t b = watch(fd, p, PAGE, 99);

	ASSERT_EQ(b.location, a[1].location);
	ASSERT_NE(b.generation, a[1].generation);
	ASSERT_TRUE(kdreg2_mapping_changed(st, &a[1]));
	m.length = 2 * PAGE;
	ASSERT_ERRNO(ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EBUSY);
	m.cookie = 100;
	ASSERT_ERRNO(ioctl(fd, KDREG2_IOCTL_MONITOR, &m), ENOSPC);
	/* An event frees its slot too. */
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_EQ(active(st), 0);
	for (int i = 0; i < 3; i++)
		watch(fd, p, PAGE, 200 + i);
}

TEST(monitor_bad_pointer_is_efault)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	struct kdreg2_ioctl_monitor *ro;

	ASSERT_BAD_INPUT("MONITOR", "NULL argument",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, NULL), EFAULT);
	ASSERT_BAD_INPUT("MONITOR", "argument pointer 8",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, (void *)8), EFAULT);
	/* Readable but not writable: the params cannot be returned. */
	ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(ro != MAP_FAILED);
	ro->addr = p;
	ro->length = PAGE;
	ro->cookie = 5;
	ASSERT_OK(mprotect(ro, PAGE, PROT_READ));
	ASSERT_BAD_INPUT("MONITOR", "read-only argument",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, ro), EFAULT);
	/* No region was left behind: the cookie is free for another range. */
	ASSERT_EQ(active(st), 0);
	watch(fd, p + 8, 8, 5);
	ASSERT_EQ(active(st), 1);
}

/* ---- UNMONITOR -------------------------------------------------------- */

TEST(unmonitor_unknown_cookie_is_esrch)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	params_t a = watch(fd, p, PAGE, 1);

	ASSERT_BAD_INPUT("UNMONITOR", "cookie never monitored",
			 unwatch(fd, 2, a), ESRCH);
	ASSERT_BAD_INPUT("UNMONITOR", "cookie (u64)-1",
			 unwatch(fd, KDREG2_BAD_COOKIE_VALUE, a), ESRCH);
	ASSERT_EQ(active(st), 1);
	a = expect_intact(fd, st, p, PAGE, 1, a);
	ASSERT_OK(unwatch(fd, 1, a));
	ASSERT_BAD_INPUT("UNMONITOR", "cookie already unmonitored",
			 unwatch(fd, 1, a), ESRCH);
}

/*
 * Every fresh status area starts its generations at a random value, so a
 * (location, generation) pair kept from another fd does not match by
 * chance; freed slots are reused oldest first.
 */
TEST(generations_start_random_per_area)
{
	status_t *st1, *st2;
	int fd1 = open_cfg(4, &st1), fd2 = open_cfg(4, &st2);
	char *p = map_pages(1);
	params_t a = watch(fd1, p, PAGE, 1), b = watch(fd2, p, PAGE, 1);

	ASSERT_TRUE(st1 != st2);
	ASSERT_EQ(a.location, b.location);
	/* 1 in 2^31 to fail by chance. */
	ASSERT_NE(a.generation, b.generation);
	ASSERT_TRUE(kdreg2_mapping_changed(st2, &a));
	ASSERT_TRUE(kdreg2_mapping_changed(st1, &b));
}

TEST(freed_slots_are_reused_oldest_first)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	params_t a = watch(fd, p, PAGE, 1), b = watch(fd, p, PAGE, 2), c, d,
		 e;

	watch(fd, p, PAGE, 3);
	ASSERT_OK(unwatch(fd, 1, a));
	/* The never used slot first, then a's, then b's. */
	c = watch(fd, p, PAGE, 4);
	ASSERT_NE(c.location, a.location);
	ASSERT_OK(unwatch(fd, 2, b));
	d = watch(fd, p, PAGE, 5);
	ASSERT_EQ(d.location, a.location);
	e = watch(fd, p, PAGE, 6);
	ASSERT_EQ(e.location, b.location);
}

TEST(resize_carries_generations)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	struct kdreg2_config_data c = { .max_regions = 3000 };
	params_t a[4];

	for (int i = 0; i < 4; i++)
		a[i] = watch(fd, p, PAGE, i + 1);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_UNMONITOR_ALL));
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_TRUE(c.status_data != st);
	/* A pair from before the resize does not match in the new area. */
	for (int i = 0; i < 4; i++) {
		ASSERT_TRUE(kdreg2_mapping_changed(c.status_data, &a[i]));
		ASSERT_EQ(state_at(c.status_data, a[i].location),
			  a[i].generation + 1);
	}
}

TEST(unmonitor_stale_generation_is_ebadslt)
{
	status_t *st;
	int fd = open_cfg(1, &st);
	char *p = map_pages(1);
	params_t old = watch(fd, p, PAGE, 1), cur, bad;

	ASSERT_OK(unwatch(fd, 1, old));
	cur = watch(fd, p, PAGE, 1);
	ASSERT_EQ(cur.location, old.location);	/* the only slot */
	ASSERT_NE(cur.generation, old.generation);
	ASSERT_BAD_INPUT("UNMONITOR", "stale generation (slot reused)",
			 unwatch(fd, 1, old), EBADSLT);
	bad = cur;
	bad.generation++;
	ASSERT_BAD_INPUT("UNMONITOR", "generation + 1",
			 unwatch(fd, 1, bad), EBADSLT);
	ASSERT_EQ(active(st), 1);
	cur = expect_intact(fd, st, p, PAGE, 1, cur);
	ASSERT_OK(munmap(p, PAGE));
	expect_event(fd, p, PAGE, 1);
}

TEST(unmonitor_wrong_location_is_ebadslt)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(2);
	params_t a = watch(fd, p, PAGE, 1);
	params_t b = watch(fd, p + PAGE, PAGE, 2);
	params_t wrong = a;

	wrong.location = b.location;
	ASSERT_BAD_INPUT("UNMONITOR", "location of another region",
			 unwatch(fd, 1, wrong), EBADSLT);
	wrong.location = 3;	/* a free slot */
	ASSERT_NE(a.location, 3);
	ASSERT_NE(b.location, 3);
	ASSERT_BAD_INPUT("UNMONITOR", "location of a free slot",
			 unwatch(fd, 1, wrong), EBADSLT);
	ASSERT_EQ(active(st), 2);
	a = expect_intact(fd, st, p, PAGE, 1, a);
	b = expect_intact(fd, st, p + PAGE, PAGE, 2, b);
}

TEST(unmonitor_location_out_of_range_is_einval)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	params_t a = watch(fd, p, PAGE, 1), bad = a;

	bad.location = 4;
	ASSERT_BAD_INPUT("UNMONITOR", "location == max_regions",
			 unwatch(fd, 1, bad), EINVAL);
	bad.location = SIZE_MAX;
	ASSERT_BAD_INPUT("UNMONITOR", "location SIZE_MAX",
			 unwatch(fd, 1, bad), EINVAL);
	/* The range check comes first, even for an unknown cookie. */
	ASSERT_BAD_INPUT("UNMONITOR", "location SIZE_MAX, unknown cookie",
			 unwatch(fd, 77, bad), EINVAL);
	ASSERT_EQ(active(st), 1);
	expect_intact(fd, st, p, PAGE, 1, a);
}

TEST(unmonitor_reported_region_is_esrch)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(2);
	params_t a = watch(fd, p, PAGE, 1);
	params_t b = watch(fd, p + PAGE, PAGE, 2);

	ASSERT_OK(munmap(p, PAGE));
	ASSERT_TRUE(kdreg2_mapping_changed(st, &a));
	/* Retired by the event, whether or not the event was read. */
	ASSERT_BAD_INPUT("UNMONITOR", "region retired by an unread event",
			 unwatch(fd, 1, a), ESRCH);
	expect_event(fd, p, PAGE, 1);
	ASSERT_BAD_INPUT("UNMONITOR", "region retired by a read event",
			 unwatch(fd, 1, a), ESRCH);
	ASSERT_EQ(active(st), 1);
	ASSERT_EQ(pending(st), 0);
	ASSERT_EQ(total(st), 1);
	b = expect_intact(fd, st, p + PAGE, PAGE, 2, b);
}

TEST(unmonitor_bad_pointer_is_efault)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	params_t a = watch(fd, p, PAGE, 1);

	ASSERT_BAD_INPUT("UNMONITOR", "NULL argument",
			 ioctl(fd, KDREG2_IOCTL_UNMONITOR, NULL), EFAULT);
	ASSERT_BAD_INPUT("UNMONITOR", "argument pointer 8",
			 ioctl(fd, KDREG2_IOCTL_UNMONITOR, (void *)8), EFAULT);
	expect_intact(fd, st, p, PAGE, 1, a);
}

TEST(unmonitor_failures_change_nothing)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(3);
	params_t a = watch(fd, p, PAGE, 1);
	params_t b = watch(fd, p + PAGE, PAGE, 2);
	params_t c = watch(fd, p + 2 * PAGE, PAGE, 3), bad;
	uint32_t snap[5];

	ASSERT_OK(munmap(p + 2 * PAGE, PAGE));	/* one pending event */
	for (int i = 0; i < 5; i++)
		snap[i] = state_at(st, i);
	bad = a;
	bad.generation ^= 2;
	ASSERT_ERRNO(unwatch(fd, 1, bad), EBADSLT);
	bad = a;
	bad.location = b.location;
	ASSERT_ERRNO(unwatch(fd, 1, bad), EBADSLT);
	bad.location = 4;
	ASSERT_ERRNO(unwatch(fd, 1, bad), EINVAL);
	ASSERT_ERRNO(unwatch(fd, 3, c), ESRCH);
	ASSERT_ERRNO(unwatch(fd, 42, a), ESRCH);
	ASSERT_ERRNO(ioctl(fd, KDREG2_IOCTL_UNMONITOR, NULL), EFAULT);
	for (int i = 0; i < 5; i++)
		ASSERT_EQ(state_at(st, i), snap[i]);
	ASSERT_EQ(active(st), 2);
	ASSERT_EQ(pending(st), 1);
	ASSERT_EQ(total(st), 1);
	ASSERT_FALSE(kdreg2_mapping_changed(st, &a));
	ASSERT_FALSE(kdreg2_mapping_changed(st, &b));
	expect_event(fd, p + 2 * PAGE, PAGE, 3);
	ASSERT_OK(munmap(p, 2 * PAGE));
	ASSERT_EQ(pending(st), 2);
	expect_event(fd, p, PAGE, 1);
	expect_event(fd, p + PAGE, PAGE, 2);
}

/* ---- UNMONITOR_ALL, FLUSH, DUMP_STATS, unknown ------------------------ */

TEST(unmonitor_all_retires_silently_events_stay)
{
	status_t *st;
	int fd = open_cfg(8, &st);
	char *p = map_pages(8);
	params_t a[8];

	for (int i = 0; i < 8; i++)
		a[i] = watch(fd, p + i * PAGE, PAGE, i);
	ASSERT_OK(munmap(p + 7 * PAGE, PAGE));
	ASSERT_EQ(pending(st), 1);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_UNMONITOR_ALL));
	ASSERT_EQ(active(st), 0);
	ASSERT_EQ(pending(st), 1);	/* the earlier event stays */
	ASSERT_EQ(total(st), 1);	/* no new events */
	for (int i = 0; i < 8; i++) {
		ASSERT_TRUE(kdreg2_mapping_changed(st, &a[i]));
		ASSERT_ERRNO(unwatch(fd, i, a[i]), ESRCH);
	}
	/* Every slot is free again, and the memory is no longer watched. */
	ASSERT_OK(munmap(p, 7 * PAGE));
	ASSERT_EQ(pending(st), 1);
	for (int i = 0; i < 8; i++)
		watch(fd, p, PAGE, 100 + i);
	expect_event(fd, p + 7 * PAGE, PAGE, 7);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_UNMONITOR_ALL));	/* idempotent */
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_UNMONITOR_ALL));
	ASSERT_EQ(active(st), 0);
	ASSERT_EQ(pending(st), 0);
}

TEST(flush_drops_pending_keeps_regions)
{
	status_t *st;
	int fd = open_cfg(8, &st);
	char *p = map_pages(4);
	params_t keep = watch(fd, p + 3 * PAGE, PAGE, 3);
	struct kdreg2_event ev;

	for (int i = 0; i < 3; i++)
		watch(fd, p + i * PAGE, PAGE, i);
	ASSERT_OK(munmap(p, 3 * PAGE));
	ASSERT_EQ(pending(st), 3);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
	ASSERT_EQ(pending(st), 0);
	ASSERT_EQ(total(st), 3);
	ASSERT_EQ(active(st), 1);
	ASSERT_FALSE(kdreg2_mapping_changed(st, &keep));
	ASSERT_OK(fcntl(fd, F_SETFL, O_NONBLOCK));
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));	/* nothing pending: fine */
	/* Later events come through normally. */
	ASSERT_OK(munmap(p + 3 * PAGE, PAGE));
	ASSERT_EQ(pending(st), 1);
	expect_event(fd, p + 3 * PAGE, PAGE, 3);
}

TEST(dump_stats_logs_counters)
{
	status_t *st;
	int fd = open_cfg(8, &st);
	int kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	char *p = map_pages(1), want[64], rec[1024];
	bool found = false;
	ssize_t n;

	ASSERT_TRUE(kmsg >= 0);
	ASSERT_OK(lseek(kmsg, 0, SEEK_END));
	watch(fd, p, PAGE, 1);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_DUMP_STATS));
	snprintf(want, sizeof(want), "mapwatch: pid %d: max_regions 8 active 1",
		 getpid());
	while ((n = read(kmsg, rec, sizeof(rec) - 1)) > 0 || errno == EPIPE) {
		if (n <= 0)
			continue;
		rec[n] = 0;
		if (strstr(rec, want))
			found = true;
	}
	ASSERT_TRUE(found);
	/* Changes nothing. */
	ASSERT_EQ(active(st), 1);
	ASSERT_EQ(pending(st), 0);
}

TEST(unknown_ioctl_is_enotty)
{
	status_t *st;
	int fd = open_cfg(4, &st);

	ASSERT_BAD_INPUT("ioctl", "_IO('k', 0)",
			 ioctl(fd, _IO(KDREG2_IOC_MAGIC, 0)), ENOTTY);
	ASSERT_BAD_INPUT("ioctl", "_IO('k', 7)",
			 ioctl(fd, _IO(KDREG2_IOC_MAGIC, 7)), ENOTTY);
	ASSERT_BAD_INPUT("ioctl", "_IO('k', 15)",
			 ioctl(fd, _IO(KDREG2_IOC_MAGIC, 15)), ENOTTY);
	ASSERT_BAD_INPUT("ioctl", "_IOWR('k', 1, u32): CONFIG_DATA, wrong size",
			 ioctl(fd, _IOWR(KDREG2_IOC_MAGIC, 1, uint32_t), st),
			 ENOTTY);
	ASSERT_BAD_INPUT("ioctl", "_IO('k', 2): MONITOR, wrong direction",
			 ioctl(fd, _IO(KDREG2_IOC_MAGIC, 2)), ENOTTY);
	ASSERT_BAD_INPUT("ioctl", "_IO('j', 4)", ioctl(fd, _IO('j', 4)),
			 ENOTTY);
	ASSERT_BAD_INPUT("ioctl", "TCGETS on the device",
			 ioctl(fd, 0x5401, st), ENOTTY);
	ASSERT_EQ(active(st), 0);
	ASSERT_EQ(st->max_regions, 4);
}

/* ---- read ------------------------------------------------------------- */

TEST(read_returns_whole_records)
{
	status_t *st;
	int fd = open_cfg(8, &st);
	char *p = map_pages(3);
	struct kdreg2_event ev[4];

	for (int i = 0; i < 3; i++)
		watch(fd, p + i * PAGE, PAGE, 10 + i);
	ASSERT_OK(munmap(p, 3 * PAGE));
	memset(ev, 0xee, sizeof(ev));
	/* Two and a half records of room: two records. */
	ASSERT_EQ(read(fd, ev, 2 * EV_SIZE + EV_SIZE / 2), (ssize_t)(2 * EV_SIZE));
	ASSERT_EQ(pending(st), 1);
	/* Nothing past the records was written. */
	ASSERT_EQ(((unsigned char *)ev)[2 * EV_SIZE], 0xee);
	ASSERT_EQ(read(fd, &ev[2], 2 * EV_SIZE), (ssize_t)EV_SIZE);
	ASSERT_EQ(pending(st), 0);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ(ev[i].type, KDREG2_EVENT_MAPPING_CHANGE);
		ASSERT_EQ(ev[i]._alignment, 0);
		ASSERT_EQ((uintptr_t)ev[i].u.mapping_change.addr,
			  (uintptr_t)p + i * PAGE);
		ASSERT_EQ(ev[i].u.mapping_change.len, PAGE);
		ASSERT_EQ(ev[i].u.mapping_change.cookie, 10 + i);
	}
}

TEST(read_short_count_is_einval)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	struct kdreg2_event ev;

	watch(fd, p, PAGE, 1);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_BAD_INPUT("read", "count 31", read(fd, &ev, EV_SIZE - 1),
			 EINVAL);
	ASSERT_BAD_INPUT("read", "count 1", read(fd, &ev, 1), EINVAL);
	/* kdreg2: zero bytes asked, zero read, nothing consumed. */
	ASSERT_EQ(read(fd, &ev, 0), 0);
	ASSERT_EQ(pending(st), 1);
	expect_event(fd, p, PAGE, 1);
}

TEST(read_nonblocking_empty_is_eagain)
{
	status_t *st;
	int fd = open_cfg_on(MAPWATCH_DEVICE_NAME, O_NONBLOCK, 4, &st);
	struct kdreg2_event ev;

	ASSERT_BAD_INPUT("read", "O_NONBLOCK, nothing pending",
			 read(fd, &ev, sizeof(ev)), EAGAIN);
	/* Also when O_NONBLOCK is set later with fcntl. */
	close(fd);
	fd = open_cfg(4, &st);
	ASSERT_OK(fcntl(fd, F_SETFL, O_NONBLOCK));
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);
	/* And before CONFIG_DATA. */
	fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_NONBLOCK);
	ASSERT_TRUE(fd >= 0);
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);
}

TEST(read_blocking_returns_at_once_when_pending)
{
	status_t *st;
	int fd = open_cfg(4, &st);	/* blocking fd */
	char *p = map_pages(2);
	struct kdreg2_event ev[4];

	watch(fd, p, PAGE, 1);
	watch(fd, p + PAGE, PAGE, 2);
	ASSERT_OK(munmap(p, 2 * PAGE));
	ASSERT_GT(pending(st), 0);
	alarm(30);	/* a hang is a failure, not a stuck suite */
	ASSERT_EQ(read(fd, ev, sizeof(ev)), (ssize_t)(2 * EV_SIZE));
	ASSERT_EQ(ev[0].u.mapping_change.cookie, 1);
	ASSERT_EQ(ev[1].u.mapping_change.cookie, 2);
	ASSERT_EQ(pending(st), 0);
}

struct later {
	char *addr;
	size_t len;
	pid_t wait_tid;
	long nr;
	atomic_int done;
};

static void *munmap_later(void *arg)
{
	struct later *l = arg;

	wait_blocked_in(l->wait_tid, l->nr);
	atomic_store(&l->done, 1);
	ASSERT_OK(munmap(l->addr, l->len));
	return NULL;
}

TEST(read_blocks_until_munmap_in_other_thread)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	struct later l = { .addr = p, .len = PAGE, .wait_tid = gettid_(),
			   .nr = SYS_read };
	struct kdreg2_event ev;
	pthread_t t;

	watch(fd, p, PAGE, 5);
	ASSERT_EQ(pthread_create(&t, NULL, munmap_later, &l), 0);
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)EV_SIZE);
	/* It returned only after the other thread got to munmap. */
	ASSERT_EQ(atomic_load(&l.done), 1);
	ASSERT_EQ(ev.u.mapping_change.cookie, 5);
	ASSERT_EQ((uintptr_t)ev.u.mapping_change.addr, (uintptr_t)p);
	pthread_join(t, NULL);
}

static void on_alarm(int sig)
{
	(void)sig;
}

TEST(read_blocked_is_interrupted_by_signal)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */
	struct kdreg2_event ev;

	ASSERT_OK(sigaction(SIGALRM, &sa, NULL));
	alarm(1);
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EINTR);
	ASSERT_EQ(pending(st), 0);
}

/*
 * kdreg2 answers a read into a buffer it cannot write with EACCES (and
 * keeps the events); so does mapwatch, although EFAULT is what other
 * system calls say: a client written against kdreg2 may test for it.
 */
TEST(read_bad_buffer_is_eacces_events_stay)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(2);
	char *buf = map_pages(2);
	struct kdreg2_event ev[2];

	watch(fd, p, PAGE, 1);
	watch(fd, p + PAGE, PAGE, 2);
	ASSERT_OK(munmap(p, 2 * PAGE));
	ASSERT_EQ(pending(st), 2);
	ASSERT_BAD_INPUT("read", "buffer pointer 8",
			 raw_read(fd, (void *)8, EV_SIZE), EACCES);
	ASSERT_BAD_INPUT("read", "NULL buffer", raw_read(fd, NULL, EV_SIZE),
			 EACCES);
	/* Two records, the second across into an inaccessible page. */
	ASSERT_OK(mprotect(buf + PAGE, PAGE, PROT_NONE));
	ASSERT_BAD_INPUT("read", "buffer partly inaccessible",
			 raw_read(fd, buf + PAGE - EV_SIZE - 8, 2 * EV_SIZE),
			 EACCES);
	ASSERT_BAD_INPUT("read", "read-only buffer",
			 raw_read(fd, (void *)st, EV_SIZE), EACCES);
	ASSERT_EQ(pending(st), 2);
	ASSERT_EQ(read(fd, ev, sizeof(ev)), (ssize_t)(2 * EV_SIZE));
	ASSERT_EQ(ev[0].u.mapping_change.cookie, 1);
	ASSERT_EQ(ev[1].u.mapping_change.cookie, 2);
}

/* ---- poll / epoll ----------------------------------------------------- */

static short poll_now(int fd)
{
	struct pollfd pfd = { .fd = fd,
			       .events = POLLIN | POLLRDNORM | POLLOUT | POLLPRI };
	int n = poll(&pfd, 1, 0);

	ASSERT_GE(n, 0);
	return n ? pfd.revents : 0;
}

TEST(poll_pollin_exactly_when_pending)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(2);
	struct kdreg2_event ev;

	ASSERT_EQ(poll_now(fd), 0);
	watch(fd, p, PAGE, 1);
	watch(fd, p + PAGE, PAGE, 2);
	ASSERT_EQ(poll_now(fd), 0);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_EQ(poll_now(fd), POLLIN | POLLRDNORM);
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)EV_SIZE);
	ASSERT_EQ(poll_now(fd), 0);
	ASSERT_OK(munmap(p + PAGE, PAGE));
	ASSERT_EQ(poll_now(fd), POLLIN | POLLRDNORM);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
	ASSERT_EQ(poll_now(fd), 0);
}

TEST(poll_wakes_on_munmap_in_other_thread)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	struct later l = { .addr = p, .len = PAGE, .wait_tid = gettid_(),
			   .nr = SYS_poll };
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	pthread_t t;

	watch(fd, p, PAGE, 1);
	ASSERT_EQ(pthread_create(&t, NULL, munmap_later, &l), 0);
	ASSERT_EQ(poll(&pfd, 1, -1), 1);
	ASSERT_EQ(atomic_load(&l.done), 1);
	ASSERT_EQ(pfd.revents, POLLIN);
	pthread_join(t, NULL);
}

TEST(epoll_level_triggered_and_wakes_waiter)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	char *p = map_pages(2);
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = 77 }, out[2];
	struct later l = { .addr = p, .len = PAGE, .wait_tid = gettid_(),
			   .nr = SYS_epoll_wait };
	struct kdreg2_event ev;
	pthread_t t;

	ASSERT_TRUE(ep >= 0);
	ASSERT_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e));
	ASSERT_EQ(epoll_wait(ep, out, 2, 0), 0);
	watch(fd, p, PAGE, 1);
	watch(fd, p + PAGE, PAGE, 2);
	ASSERT_EQ(pthread_create(&t, NULL, munmap_later, &l), 0);
	/* glibc's epoll_wait is epoll_wait or epoll_pwait: accept either. */
	ASSERT_EQ(syscall(SYS_epoll_wait, ep, out, 2, -1), 1);
	ASSERT_EQ(atomic_load(&l.done), 1);
	ASSERT_EQ(out[0].data.u64, 77);
	ASSERT_TRUE(out[0].events & EPOLLIN);
	pthread_join(t, NULL);
	/* Level-triggered: still readable until read. */
	ASSERT_EQ(epoll_wait(ep, out, 2, 0), 1);
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)EV_SIZE);
	ASSERT_EQ(epoll_wait(ep, out, 2, 0), 0);
	ASSERT_OK(munmap(p + PAGE, PAGE));
	ASSERT_EQ(epoll_wait(ep, out, 2, 0), 1);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
	ASSERT_EQ(epoll_wait(ep, out, 2, 0), 0);
}

/* ---- the status area -------------------------------------------------- */

TEST(status_area_mprotect_write_fails)
{
	status_t *st;
	int fd = open_cfg(2000, &st);
	size_t sz = status_size(2000);

	ASSERT_BAD_INPUT("status area", "mprotect PROT_READ|PROT_WRITE",
			 mprotect((void *)st, sz, PROT_READ | PROT_WRITE),
			 EACCES);
	ASSERT_BAD_INPUT("status area", "mprotect PROT_READ|PROT_EXEC",
			 mprotect((void *)st, sz, PROT_READ | PROT_EXEC),
			 EACCES);
	ASSERT_EQ(st->max_regions, 2000);
	(void)fd;
}

TEST(status_area_mremap_fails)
{
	status_t *st;
	int fd = open_cfg(2000, &st);
	size_t sz = status_size(2000);
	char *dst = mmap(NULL, 2 * sz, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = map_pages(1);
	params_t a = watch(fd, p, PAGE, 1);

	ASSERT_EQ(sz, 2 * PAGE);
	ASSERT_TRUE(dst != MAP_FAILED);
	ASSERT_BAD_INPUT("status area", "mremap move",
			 (long)mremap((void *)st, sz, sz,
				      MREMAP_MAYMOVE | MREMAP_FIXED, dst),
			 EINVAL);
	ASSERT_BAD_INPUT("status area", "mremap shrink",
			 (long)mremap((void *)st, sz, PAGE, 0), EINVAL);
	ASSERT_BAD_INPUT("status area", "mremap grow (VM_DONTEXPAND)",
			 (long)mremap((void *)st, sz, sz + PAGE, MREMAP_MAYMOVE),
			 EFAULT);
	ASSERT_BAD_INPUT("status area", "mremap MREMAP_DONTUNMAP",
			 (long)mremap((void *)st, sz, sz, MREMAP_MAYMOVE |
				      MREMAP_FIXED | MREMAP_DONTUNMAP, dst),
			 EINVAL);
	/* Still where it was, whole, and live. */
	ASSERT_EQ(st->max_regions, 2000);
	ASSERT_TRUE(mapped((const char *)st + sz - 1));
	ASSERT_EQ(active(st), 1);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_TRUE(kdreg2_mapping_changed(st, &a));
	ASSERT_EQ(pending(st), 1);
}

/* Never executable, even for a READ_IMPLIES_EXEC process. */
TEST(status_area_not_executable_with_read_implies_exec)
{
	char line[512];
	int found = 0;
	status_t *st;
	FILE *f;

	ASSERT_TRUE(personality(0xffffffff) != -1);
	ASSERT_TRUE(personality(READ_IMPLIES_EXEC) != -1);
	open_cfg(4, &st);
	f = fopen("/proc/self/maps", "r");
	ASSERT_TRUE(f != NULL);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo;
		char perms[8];

		if (sscanf(line, "%lx-%*x %7s", &lo, perms) != 2 ||
		    lo != (uintptr_t)st)
			continue;
		found = 1;
		tap_diag("%.*s", (int)strcspn(line, "\n"), line);
		ASSERT_EQ(perms[2], '-');
	}
	fclose(f);
	ASSERT_TRUE(found);
}

TEST(status_area_partial_munmap_fails)
{
	status_t *st;
	int fd = open_cfg(2000, &st);
	size_t sz = status_size(2000);

	ASSERT_BAD_INPUT("status area", "munmap first page",
			 munmap((void *)st, PAGE), EINVAL);
	ASSERT_BAD_INPUT("status area", "munmap last page",
			 munmap((char *)st + sz - PAGE, PAGE), EINVAL);
	ASSERT_BAD_INPUT("status area", "mprotect first page (split)",
			 mprotect((void *)st, PAGE, PROT_NONE), EINVAL);
	ASSERT_EQ(st->max_regions, 2000);
	ASSERT_TRUE(mapped((const char *)st + sz - 1));
	ASSERT_EQ(device_mappings(), 1);
	/* Whole: fine. */
	ASSERT_OK(munmap((void *)st, sz));
	ASSERT_EQ(device_mappings(), 0);
	(void)fd;
}

TEST(status_area_write_faults)
{
	status_t *st;
	int fd = open_cfg(8, &st);
	char *p = map_pages(1);
	params_t a = watch(fd, p, PAGE, 1);
	volatile uint32_t *slot;
	pid_t pid;

	slot = (volatile uint32_t *)&st->monitoring_state_base[a.location];
	pid = fork();
	if (pid == 0) {
		*(volatile uint64_t *)&st->pending_events = 0;
		_exit(0);
	}
	ASSERT_EQ(wait_child(pid), 128 + SIGSEGV);
	pid = fork();
	if (pid == 0) {
		*slot = a.generation + 1;
		_exit(0);
	}
	ASSERT_EQ(wait_child(pid), 128 + SIGSEGV);
	pid = fork();
	if (pid == 0) {
		*(volatile uint64_t *)&mapwatch_status_ext(st)->overflows = 1;
		_exit(0);
	}
	ASSERT_EQ(wait_child(pid), 128 + SIGSEGV);
	ASSERT_EQ(*slot, a.generation);
	ASSERT_FALSE(kdreg2_mapping_changed(st, &a));
	(void)fd;
}

static sigjmp_buf segv_jmp;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(segv_jmp, 1);
}

TEST(status_area_write_faults_in_owner)
{
	status_t *st;
	int fd = open_cfg(8, &st);
	struct sigaction sa = { .sa_handler = on_segv };
	volatile int faulted = 0;

	ASSERT_OK(sigaction(SIGSEGV, &sa, NULL));
	if (!sigsetjmp(segv_jmp, 1))
		*(volatile size_t *)&st->max_regions = 1 << 20;
	else
		faulted = 1;
	ASSERT_EQ(faulted, 1);
	ASSERT_EQ(st->max_regions, 8);
	(void)fd;
}

TEST(status_area_madvise_dontneed_refaults_same_values)
{
	status_t *st;
	int fd = open_cfg(2000, &st);
	size_t sz = status_size(2000);
	char *p = map_pages(4);
	params_t a[4];
	unsigned char *before = malloc(sz);

	ASSERT_TRUE(before != NULL);
	for (int i = 0; i < 4; i++)
		a[i] = watch(fd, p + i * PAGE, PAGE, i);
	ASSERT_OK(munmap(p, PAGE));
	memcpy(before, st, sz);
	ASSERT_OK(madvise((void *)st, sz, MADV_DONTNEED));
	ASSERT_EQ(memcmp(before, st, sz), 0);
	ASSERT_OK(madvise((void *)st, sz, MADV_DONTNEED));
	/* Still live after the refault. */
	ASSERT_OK(munmap(p + PAGE, PAGE));
	ASSERT_TRUE(kdreg2_mapping_changed(st, &a[1]));
	ASSERT_FALSE(kdreg2_mapping_changed(st, &a[2]));
	ASSERT_EQ(pending(st), 2);
	ASSERT_EQ(active(st), 2);
}

/* The device has no mmap (kdreg2 neither): ENODEV, from the VFS. */
TEST(device_mmap_by_user_is_enodev)
{
	status_t *st;
	int fd = open_cfg(8, &st);

	ASSERT_BAD_INPUT("mmap", "PROT_READ MAP_SHARED of the device",
			 (long)mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0),
			 ENODEV);
	ASSERT_BAD_INPUT("mmap", "PROT_READ MAP_PRIVATE of the device",
			 (long)mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0),
			 ENODEV);
	ASSERT_EQ(device_mappings(), 1);
}

/* Nothing is written to the fd: EOPNOTSUPP, as kdreg2; nothing changes. */
TEST(write_is_eopnotsupp)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(1);
	struct kdreg2_event ev = { .type = KDREG2_EVENT_MAPPING_CHANGE };

	watch(fd, p, PAGE, 1);
	ASSERT_BAD_INPUT("write", "one event record", write(fd, &ev, EV_SIZE),
			 EOPNOTSUPP);
	ASSERT_BAD_INPUT("write", "zero bytes", write(fd, &ev, 0), EOPNOTSUPP);
	ASSERT_EQ(pending(st), 0);
	ASSERT_EQ(active(st), 1);
}

TEST(mapping_changed_location_max_regions_is_readable)
{
	/*
	 * kdreg2_mapping_changed() reads entry [max_regions].  992 regions
	 * make the array end exactly at a page boundary without that extra
	 * entry, so a missing entry would fault here.
	 */
	const size_t maxes[] = { 0, 1, 991, 992, 993, 2016, 2017 };

	for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		status_t *st;
		int fd = open_cfg(maxes[i], &st);
		params_t at_end = { .location = maxes[i],
				    .generation = state_at(st, maxes[i]) };
		params_t past = { .location = maxes[i] + 1 };

		ASSERT_FALSE(kdreg2_mapping_changed(st, &at_end));
		ASSERT_TRUE(kdreg2_mapping_changed(st, &past));
		close(fd);
		ASSERT_OK(munmap((void *)st, status_size(maxes[i])));
	}
}

/* ---- fork, fd passing, exec, exit ------------------------------------- */

/*
 * Every entry point from a foreign mm: 0 if all give EIO, and poll says
 * what kdreg2's does (error, readable, writable: a read or write then
 * gets EIO).
 */
static int foreign_checks(int fd, status_t *st, params_t a, uint64_t cookie)
{
	struct kdreg2_config_data c = { .max_regions = 4 };
	struct kdreg2_ioctl_monitor m = { .addr = (void *)PAGE, .length = PAGE,
					  .cookie = 1234 };
	struct kdreg2_ioctl_unmonitor u = { .cookie = cookie,
					    .monitoring_params = a };
	struct mapwatch_probe pr = { .size = sizeof(pr) };
	struct mapwatch_policy pol = { .size = sizeof(pol) };
	struct kdreg2_event ev;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int bad = 0;

#define FOREIGN(call)							\
	do {								\
		errno = 0;						\
		if ((call) != -1 || errno != EIO) {			\
			tap_diag("foreign: %s: errno %d", #call, errno); \
			bad++;						\
		}							\
	} while (0)
	FOREIGN(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	FOREIGN(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
	FOREIGN(ioctl(fd, KDREG2_IOCTL_UNMONITOR, &u));
	FOREIGN(ioctl(fd, KDREG2_IOCTL_UNMONITOR_ALL));
	FOREIGN(ioctl(fd, KDREG2_IOCTL_FLUSH));
	FOREIGN(ioctl(fd, KDREG2_IOCTL_DUMP_STATS));
	FOREIGN(ioctl(fd, MAPWATCH_IOCTL_PROBE, &pr));
	FOREIGN(ioctl(fd, MAPWATCH_IOCTL_SET_POLICY, &pol));
	FOREIGN(ioctl(fd, _IO(KDREG2_IOC_MAGIC, 99)));
	FOREIGN(read(fd, &ev, sizeof(ev)));
	FOREIGN(read(fd, &ev, 1));
	FOREIGN(write(fd, &ev, sizeof(ev)));
#undef FOREIGN
	pfd.events = POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM;
	if (poll(&pfd, 1, 0) != 1 ||
	    pfd.revents != (POLLERR | POLLIN | POLLRDNORM | POLLOUT |
			    POLLWRNORM)) {
		tap_diag("foreign: poll revents %#x", pfd.revents);
		bad++;
	}
	if (mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0) != MAP_FAILED) {
		tap_diag("foreign: mmap of the device succeeded");
		bad++;
	}
	if (st && (st->max_regions == 0 || active(st) == 0)) {
		tap_diag("foreign: status area not readable as before");
		bad++;
	}
	return bad;
}

TEST(fork_child_gets_eio_parent_untouched)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(2);
	params_t a = watch(fd, p, PAGE, 1);
	uint64_t snap_pending, snap_total;
	uint32_t snap_state;
	pid_t pid;

	watch(fd, p + PAGE, PAGE, 2);
	ASSERT_OK(munmap(p + PAGE, PAGE));	/* one event pending */
	snap_pending = pending(st);
	snap_total = total(st);
	snap_state = state_at(st, a.location);
	pid = fork();
	if (pid == 0) {
		int bad = foreign_checks(fd, st, a, 1);

		/* The child's own munmap is not the owner's business. */
		if (munmap(p, PAGE))
			bad++;
		/* Closing the child's copy of the fd changes nothing. */
		close(fd);
		_exit(bad ? 1 : 0);
	}
	ASSERT_EQ(wait_child(pid), 0);
	ASSERT_EQ(pending(st), snap_pending);
	ASSERT_EQ(total(st), snap_total);
	ASSERT_EQ(active(st), 1);
	ASSERT_EQ(state_at(st, a.location), snap_state);
	ASSERT_FALSE(kdreg2_mapping_changed(st, &a));
	expect_event(fd, p + PAGE, PAGE, 2);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_TRUE(kdreg2_mapping_changed(st, &a));
	expect_event(fd, p, PAGE, 1);
}

TEST(fork_child_reads_status_area)
{
	status_t *st;
	int fd = open_cfg(4, &st);
	char *p = map_pages(2);
	params_t a = watch(fd, p, PAGE, 1);
	params_t b = watch(fd, p + PAGE, PAGE, 2);
	int go[2], done[2];
	char c;
	pid_t pid;

	ASSERT_OK(pipe(go));
	ASSERT_OK(pipe(done));
	pid = fork();
	if (pid == 0) {
		int bad = 0;

		/* The child sees the owner's live values. */
		bad += st->max_regions != 4;
		bad += active(st) != 2;
		bad += kdreg2_mapping_changed(st, &a);
		bad += kdreg2_mapping_changed(st, &b);
		if (write(done[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		/* The parent unmapped b meanwhile. */
		bad += !kdreg2_mapping_changed(st, &b);
		bad += kdreg2_mapping_changed(st, &a);
		bad += active(st) != 1;
		bad += pending(st) != 1;
		_exit(bad ? 1 : 0);
	}
	ASSERT_EQ(read(done[0], &c, 1), 1);
	ASSERT_OK(munmap(p + PAGE, PAGE));
	ASSERT_EQ(write(go[1], "g", 1), 1);
	ASSERT_EQ(wait_child(pid), 0);
	(void)fd;
}

static int send_fd(int sock, int fd)
{
	char data = 'f';
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char data;
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = u.buf,
			      .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sock, &msg, 0) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

TEST(scm_rights_receiver_gets_eio_owner_untouched)
{
	int sv[2];
	status_t *st;
	int fd;
	char *p;
	params_t a;
	pid_t pid;

	ASSERT_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	/* The receiver exists before the fd does: it never inherited it. */
	pid = fork();
	if (pid == 0) {
		int rfd = recv_fd(sv[1]);
		int bad;

		if (rfd < 0)
			_exit(2);
		bad = foreign_checks(rfd, NULL, (params_t){ 0 }, 1);
		close(rfd);
		_exit(bad ? 1 : 0);
	}
	fd = open_cfg(4, &st);
	p = map_pages(2);
	a = watch(fd, p, PAGE, 1);
	watch(fd, p + PAGE, PAGE, 2);
	ASSERT_OK(munmap(p + PAGE, PAGE));
	ASSERT_OK(send_fd(sv[0], fd));
	ASSERT_EQ(wait_child(pid), 0);
	ASSERT_EQ(active(st), 1);
	ASSERT_EQ(pending(st), 1);
	ASSERT_EQ(total(st), 1);
	ASSERT_FALSE(kdreg2_mapping_changed(st, &a));
	expect_event(fd, p + PAGE, PAGE, 2);
	ASSERT_OK(munmap(p, PAGE));
	expect_event(fd, p, PAGE, 1);
}

/* The image after exec: run by exec_inherited_fd_gets_eio. */
static int exec_check(int fd)
{
	char path[64], line[256];
	int bad = foreign_checks(fd, NULL, (params_t){ 0 }, 1);
	int owner = -1;
	FILE *f;

	/* Same process (same pid), new mm. */
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return 3;
	while (fgets(line, sizeof(line), f))
		sscanf(line, "mapwatch-owner-pid: %d", &owner);
	fclose(f);
	if (owner != getpid()) {
		tap_diag("exec: owner pid %d, mine %d", owner, getpid());
		bad++;
	}
	return bad ? 1 : 0;
}

/* fdinfo numbers the owner as the reader's /proc does (its pid namespace). */
TEST(fdinfo_owner_pid_in_readers_pid_namespace)
{
	int status;
	pid_t pid;

	ASSERT_OK(unshare(CLONE_NEWPID | CLONE_NEWNS));
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		char path[64], line[256];
		int fd, owner = -1;
		FILE *f;

		if (getpid() != 1 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("proc", "/proc", "proc", 0, NULL))
			_exit(2);
		fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
		f = fopen(path, "r");
		if (fd < 0 || !f)
			_exit(3);
		while (fgets(line, sizeof(line), f))
			sscanf(line, "mapwatch-owner-pid: %d", &owner);
		fclose(f);
		_exit(owner == 1 ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
}

TEST(exec_inherited_fd_gets_eio)
{
	pid_t pid = fork();

	if (pid == 0) {
		status_t *st;
		int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);	/* no CLOEXEC */
		struct kdreg2_config_data c = { .max_regions = 4 };
		char *p = map_pages(1), arg[16];

		if (fd < 0 || ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c))
			_exit(2);
		st = c.status_data;
		watch(fd, p, PAGE, 1);
		if (active(st) != 1)
			_exit(2);
		snprintf(arg, sizeof(arg), "%d", fd);
		execl("/proc/self/exe", "kdreg2_abi", "--exec-check", arg,
		      (char *)NULL);
		_exit(3);
	}
	ASSERT_EQ(wait_child(pid), 0);
}

static uint64_t sys_counter(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), SYSFS "%s", name);
	return read_u64(path);
}

/* Wait (bounded) until the global counters drop back to a baseline. */
static void expect_counters_back(uint64_t ctx0, uint64_t reg0, uint64_t pend0)
{
	for (int i = 0; i < 1000; i++) {
		if (sys_counter("contexts") == ctx0 &&
		    sys_counter("regions") == reg0 &&
		    sys_counter("pending") == pend0)
			break;
		usleep(10000);
	}
	ASSERT_EQ(sys_counter("contexts"), ctx0);
	ASSERT_EQ(sys_counter("regions"), reg0);
	ASSERT_EQ(sys_counter("pending"), pend0);
}

struct reader {
	int fd;
	atomic_int tid;
};

static void *blocked_reader(void *arg)
{
	struct reader *r = arg;
	struct kdreg2_event ev;

	atomic_store(&r->tid, gettid_());
	(void)read(r->fd, &ev, sizeof(ev));
	return NULL;
}

TEST(exit_frees_regions_events_and_blocked_reader)
{
	uint64_t ctx0 = sys_counter("contexts");
	uint64_t reg0 = sys_counter("regions");
	uint64_t pend0 = sys_counter("pending");
	int ready[2], go[2];
	char c;
	pid_t pid;

	ASSERT_OK(pipe(ready));
	ASSERT_OK(pipe(go));
	pid = fork();
	if (pid == 0) {
		status_t *st, *st2;
		int fd = open_cfg(64, &st);
		int fd2 = open_cfg(8, &st2);
		char *p = map_pages(16);
		struct reader r = { .fd = fd2 };
		pthread_t t;

		for (int i = 0; i < 16; i++)
			watch(fd, p + i * PAGE, PAGE, i);
		watch(fd2, p + 8 * PAGE, PAGE, 2);
		ASSERT_OK(munmap(p, 4 * PAGE));	/* 4 events on fd */
		ASSERT_EQ(pthread_create(&t, NULL, blocked_reader, &r), 0);
		while (!atomic_load(&r.tid))
			usleep(1000);
		/* The reader thread is asleep in read() on fd2. */
		wait_blocked_in(atomic_load(&r.tid), SYS_read);
		ASSERT_EQ(write(ready[1], "r", 1), 1);
		ASSERT_EQ(read(go[0], &c, 1), 1);
		exit(0);	/* with the reader still blocked */
	}
	ASSERT_EQ(read(ready[0], &c, 1), 1);
	ASSERT_EQ(sys_counter("contexts"), ctx0 + 2);
	ASSERT_EQ(sys_counter("regions"), reg0 + 12 + 1);
	ASSERT_EQ(sys_counter("pending"), pend0 + 4);
	ASSERT_EQ(write(go[1], "g", 1), 1);
	ASSERT_EQ(wait_child(pid), 0);
	expect_counters_back(ctx0, reg0, pend0);
}

/*
 * The five regions left once the child has unmapped three pages stay only as
 * long as the kernel keeps their frames: compaction or migration under a
 * loaded host retires one, rightly.  The child sends its address and the
 * frames it watched; a count that is short while a frame moved (the parent
 * reads /proc/PID/pagemap after the count) is the kernel's doing, and the
 * round runs again, up to 5 times.  A short count with every frame in place
 * fails.
 */
struct kill_round {
	char *p;
	uint64_t frame[8];
};

static bool kill_round_moved(pid_t pid, const struct kill_round *k)
{
	char path[64];
	bool moved = false;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY);
	ASSERT_TRUE(fd >= 0);
	for (int i = 3; i < 8; i++)
		moved |= pagemap_frame(fd, k->p + i * PAGE) != k->frame[i];
	close(fd);
	return moved;
}

TEST(kill_frees_regions_events_and_blocked_reader)
{
	uint64_t ctx0 = sys_counter("contexts");
	uint64_t reg0 = sys_counter("regions");
	uint64_t pend0 = sys_counter("pending");
	int round;

	for (round = 1; round <= 5; round++) {
		struct kill_round k;
		int ready[2];
		uint64_t regions;
		bool moved;
		pid_t pid;

		ASSERT_OK(pipe(ready));
		pid = fork();
		if (pid == 0) {
			status_t *st;
			int fd = open_cfg(64, &st);
			int pm = open("/proc/self/pagemap", O_RDONLY);
			struct reader r = { .fd = fd };
			pthread_t t;

			k.p = map_pages(8);
			ASSERT_TRUE(pm >= 0);
			for (int i = 0; i < 8; i++) {
				watch(fd, k.p + i * PAGE, PAGE, i);
				k.frame[i] = pagemap_frame(pm, k.p + i * PAGE);
				ASSERT_TRUE(k.frame[i] != 0);
			}
			ASSERT_EQ(pthread_create(&t, NULL, blocked_reader, &r), 0);
			while (!atomic_load(&r.tid))
				usleep(1000);
			wait_blocked_in(atomic_load(&r.tid), SYS_read);
			ASSERT_OK(munmap(k.p, PAGE));	/* the reader takes this one */
			ASSERT_OK(munmap(k.p + PAGE, 2 * PAGE));
			ASSERT_EQ(write(ready[1], &k, sizeof(k)), (ssize_t)sizeof(k));
			for (;;)
				pause();
		}
		ASSERT_EQ(read(ready[0], &k, sizeof(k)), (ssize_t)sizeof(k));
		close(ready[0]);
		close(ready[1]);
		ASSERT_EQ(sys_counter("contexts"), ctx0 + 1);
		regions = sys_counter("regions");
		moved = regions != reg0 + 5 && kill_round_moved(pid, &k);
		if (!moved)
			ASSERT_EQ(regions, reg0 + 5);
		ASSERT_OK(kill(pid, SIGKILL));
		ASSERT_EQ(wait_child(pid), 128 + SIGKILL);
		expect_counters_back(ctx0, reg0, pend0);
		if (!moved)
			return;
		tap_diag("round %d: a watched frame moved (regions %llu, want %llu): again",
			 round, (unsigned long long)(regions - reg0), 5ULL);
	}
	ASSERT_TRUE(!"watched frames moved in 5 rounds running");
}

TEST(owner_exit_while_forked_child_holds_fd_and_status_area)
{
	uint64_t ctx0 = sys_counter("contexts");
	uint64_t reg0 = sys_counter("regions");
	uint64_t pend0 = sys_counter("pending");
	int ready[2], go_owner[2], go_child[2];
	char c;
	pid_t owner;

	ASSERT_OK(pipe(ready));
	ASSERT_OK(pipe(go_owner));
	ASSERT_OK(pipe(go_child));
	owner = fork();
	if (owner == 0) {
		status_t *st;
		int fd = open_cfg(8, &st);
		char *p = map_pages(4);
		params_t a = watch(fd, p, PAGE, 1);
		pid_t me = getpid();

		watch(fd, p + PAGE, PAGE, 2);
		if (fork() == 0) {
			int bad;

			/* Wait until the owner has exited (we are reparented). */
			if (read(go_child[0], &c, 1) != 1)
				_exit(2);
			while (getppid() == me)
				usleep(1000);
			/*
			 * Its exit retired every region: a changed
			 * translation.  No event is queued for a dead mm:
			 * nobody could ever read it (review 12-07 #5).
			 */
			bad = !kdreg2_mapping_changed(st, &a);
			bad += active(st) != 0;
			bad += pending(st) != 0;
			bad += foreign_checks(fd, NULL, a, 1);
			close(fd);
			if (write(ready[1], bad ? "b" : "g", 1) != 1)
				_exit(2);
			/* It still maps the status area, not the context. */
			if (read(go_child[0], &c, 1) != 1)
				_exit(2);
			_exit(st->max_regions == 8 ? 0 : 1);
		}
		if (write(ready[1], "r", 1) != 1 ||
		    read(go_owner[0], &c, 1) != 1)
			_exit(2);
		_exit(0);	/* the owner goes, the child stays */
	}
	ASSERT_EQ(read(ready[0], &c, 1), 1);
	ASSERT_EQ(sys_counter("contexts"), ctx0 + 1);
	ASSERT_EQ(write(go_owner[1], "o", 1), 1);	/* the owner exits */
	ASSERT_EQ(wait_child(owner), 0);
	ASSERT_EQ(write(go_child[1], "c", 1), 1);	/* the child checks */
	ASSERT_EQ(read(ready[0], &c, 1), 1);
	ASSERT_EQ(c, 'g');
	/* Closed in the child, still mapped there: the context is gone. */
	ASSERT_EQ(sys_counter("contexts"), ctx0);
	ASSERT_EQ(sys_counter("regions"), reg0);
	ASSERT_EQ(write(go_child[1], "x", 1), 1);	/* the child exits */
	expect_counters_back(ctx0, reg0, pend0);
}

TEST(close_and_unmap_free_the_context)
{
	uint64_t ctx0 = sys_counter("contexts");
	uint64_t reg0 = sys_counter("regions");
	uint64_t pend0 = sys_counter("pending");
	status_t *st;
	int fd = open_cfg(8, &st);
	char *p = map_pages(4);

	for (int i = 0; i < 4; i++)
		watch(fd, p + i * PAGE, PAGE, i);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_EQ(sys_counter("contexts"), ctx0 + 1);
	ASSERT_EQ(sys_counter("regions"), reg0 + 3);
	ASSERT_EQ(sys_counter("pending"), pend0 + 1);
	ASSERT_OK(close(fd));
	/* The status mapping still refers to the file: it keeps it open. */
	ASSERT_EQ(st->max_regions, 8);
	ASSERT_OK(munmap((void *)st, status_size(8)));
	expect_counters_back(ctx0, reg0, pend0);
}

/* ---- several contexts ------------------------------------------------- */

TEST(two_fds_in_one_process_are_independent)
{
	status_t *s1, *s2;
	int f1 = open_cfg(4, &s1), f2 = open_cfg(4, &s2);
	char *p = map_pages(3);
	params_t a1, a2, b2;

	ASSERT_TRUE(s1 != s2);
	/* Cookie spaces are separate. */
	a1 = watch(f1, p, PAGE, 7);
	a2 = watch(f2, p + PAGE, PAGE, 7);
	b2 = watch(f2, p + 2 * PAGE, PAGE, 8);
	ASSERT_EQ(active(s1), 1);
	ASSERT_EQ(active(s2), 2);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_TRUE(kdreg2_mapping_changed(s1, &a1));
	ASSERT_FALSE(kdreg2_mapping_changed(s2, &a2));
	ASSERT_EQ(pending(s1), 1);
	ASSERT_EQ(pending(s2), 0);
	ASSERT_OK(munmap(p + PAGE, PAGE));
	ASSERT_TRUE(kdreg2_mapping_changed(s2, &a2));
	ASSERT_EQ(pending(s1), 1);
	ASSERT_EQ(pending(s2), 1);
	/* FLUSH and UNMONITOR_ALL on one leave the other alone. */
	ASSERT_OK(ioctl(f1, KDREG2_IOCTL_FLUSH));
	ASSERT_EQ(pending(s2), 1);
	a1 = watch(f1, p + 2 * PAGE, PAGE, 9);
	ASSERT_OK(ioctl(f2, KDREG2_IOCTL_UNMONITOR_ALL));
	ASSERT_FALSE(kdreg2_mapping_changed(s1, &a1));
	ASSERT_TRUE(kdreg2_mapping_changed(s2, &b2));
	ASSERT_EQ(active(s1), 1);
	/* Params of one fd mean nothing to the other. */
	ASSERT_ERRNO(unwatch(f2, 9, a1), ESRCH);
	expect_event(f2, p + PAGE, PAGE, 7);
	ASSERT_OK(munmap(p + 2 * PAGE, PAGE));
	expect_event(f1, p + 2 * PAGE, PAGE, 9);
	ASSERT_EQ(pending(s2), 0);
}

TEST(both_device_names_work)
{
	const char *names[] = { MAPWATCH_DEVICE_NAME, KDREG2_DEVICE_NAME };

	for (int i = 0; i < 2; i++) {
		struct stat sb;
		status_t *st;
		int fd;
		char *p = map_pages(1);
		params_t a;

		ASSERT_OK(stat(names[i], &sb));
		ASSERT_TRUE(S_ISCHR(sb.st_mode));
		ASSERT_EQ(sb.st_mode & 0777, 0666);
		fd = open_cfg_on(names[i], 0, 4, &st);
		a = watch(fd, p, PAGE, 40 + i);
		ASSERT_OK(munmap(p, PAGE));
		ASSERT_TRUE(kdreg2_mapping_changed(st, &a));
		expect_event(fd, p, PAGE, 40 + i);
	}
}

/* ---- scale ------------------------------------------------------------ */

#define MILLION 1000000UL
#define SINGLE_LOOP 500000UL

TEST(one_million_regions_on_one_fd)
{
	status_t *st;
	int fd = open_cfg(MILLION, &st);
	size_t len = MILLION * PAGE;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	params_t *par = calloc(MILLION, sizeof(*par));
	unsigned char *seen = calloc(MILLION, 1);
	struct mapwatch_monitor_entry *e;
	struct kdreg2_event *ev;
	struct mapwatch_batch b = { .size = sizeof(b),
				    .entry_size = sizeof(*e) };
	double t0, t1, t2, t3, t4;
	size_t i, got = 0;

	alarm(1500);
	ASSERT_TRUE(p != MAP_FAILED);
	ASSERT_TRUE(par && seen);
	if (read_u64(PARAM "max_pending_events") < MILLION)
		SKIP("max_pending_events below 1M");
	/* Touch one page in 256: some regions have pages, most do not. */
	ASSERT_OK(madvise(p, len, MADV_NOHUGEPAGE));
	for (i = 0; i < MILLION; i += 256)
		p[i * PAGE] = 1;

	t0 = now();
	for (i = 0; i < SINGLE_LOOP; i++) {
		struct kdreg2_ioctl_monitor m = { .addr = p + i * PAGE,
						  .length = PAGE, .cookie = i };

		if (ioctl(fd, KDREG2_IOCTL_MONITOR, &m))
			ASSERT_OK(-1);
		par[i] = m.monitoring_params;
	}
	t1 = now();
	e = calloc(MAPWATCH_BATCH_MAX, sizeof(*e));
	ASSERT_TRUE(e != NULL);
	for (; i < MILLION; ) {
		size_t n = MILLION - i;

		if (n > MAPWATCH_BATCH_MAX)
			n = MAPWATCH_BATCH_MAX;
		for (size_t k = 0; k < n; k++)
			e[k] = (struct mapwatch_monitor_entry){
				.addr = (uintptr_t)p + (i + k) * PAGE,
				.length = PAGE, .cookie = i + k };
		b.count = n;
		b.entries = (uintptr_t)e;
		ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), (long)n);
		for (size_t k = 0; k < n; k++) {
			par[i + k].location = e[k].location;
			par[i + k].generation = e[k].generation;
		}
		i += n;
	}
	t2 = now();
	ASSERT_EQ(active(st), MILLION);
	for (i = 0; i < MILLION; i++)
		if (kdreg2_mapping_changed(st, &par[i]))
			ASSERT_FALSE(kdreg2_mapping_changed(st, &par[i]));

	ASSERT_OK(munmap(p, len));
	t3 = now();
	ASSERT_EQ(active(st), 0);
	ASSERT_EQ(pending(st), MILLION);
	ASSERT_EQ(total(st), MILLION);
	ASSERT_EQ(kdreg2_read_counter(&mapwatch_status_ext(st)->overflows), 0);
	for (i = 0; i < MILLION; i++)
		if (!kdreg2_mapping_changed(st, &par[i]))
			ASSERT_TRUE(kdreg2_mapping_changed(st, &par[i]));

	/* Every region's event, exactly once, with its range. */
	ev = calloc(64, sizeof(*ev));
	ASSERT_TRUE(ev != NULL);
	ASSERT_OK(fcntl(fd, F_SETFL, O_NONBLOCK));
	for (;;) {
		ssize_t n = read(fd, ev, 64 * sizeof(*ev));

		if (n < 0 && errno == EAGAIN)
			break;
		ASSERT_GT(n, 0);
		for (ssize_t k = 0; k < n / (ssize_t)sizeof(*ev); k++) {
			uint64_t c = ev[k].u.mapping_change.cookie;

			ASSERT_LT(c, MILLION);
			ASSERT_EQ(seen[c], 0);
			ASSERT_EQ((uintptr_t)ev[k].u.mapping_change.addr,
				  (uintptr_t)p + c * PAGE);
			ASSERT_EQ(ev[k].u.mapping_change.len, PAGE);
			seen[c] = 1;
			got++;
		}
	}
	t4 = now();
	ASSERT_EQ(got, MILLION);
	ASSERT_EQ(pending(st), 0);
	tap_diag("1M regions: %lu single MONITOR ioctls %.2f s (%.1f us each), "
		 "%lu by MONITOR_BATCH %.2f s, munmap of 4 GiB retiring 1M "
		 "regions %.2f s, reading 1M events %.2f s (TCG guest)",
		 SINGLE_LOOP, t1 - t0, (t1 - t0) / SINGLE_LOOP * 1e6,
		 MILLION - SINGLE_LOOP, t2 - t1, t3 - t2, t4 - t3);
}

/* MONITOR_BATCH one-page regions p[i] with cookie i, @n from @from. */
static void watch_pages(int fd, char *p, size_t from, size_t n, params_t *par)
{
	static struct mapwatch_monitor_entry e[MAPWATCH_BATCH_MAX];
	struct mapwatch_batch b = { .size = sizeof(b),
				    .entry_size = sizeof(e[0]),
				    .entries = (uintptr_t)e };
	size_t i = from, end = from + n;

	while (i < end) {
		size_t k, m = end - i;

		if (m > MAPWATCH_BATCH_MAX)
			m = MAPWATCH_BATCH_MAX;
		for (k = 0; k < m; k++)
			e[k] = (struct mapwatch_monitor_entry){
				.addr = (uintptr_t)p + (i + k) * PAGE,
				.length = PAGE, .cookie = i + k };
		b.count = m;
		ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), (long)m);
		for (k = 0; k < m; k++) {
			par[i + k].location = e[k].location;
			par[i + k].generation = e[k].generation;
		}
		i += m;
	}
}

/*
 * UNMONITOR_ALL and close take many regions out of both indexes a bounded
 * batch at a time (no longer in cookie order: the cookie index is a hash):
 * every word moves on, the cookies can be monitored again, and close gives
 * back every region.  A quarter million: about 490 holds of 512 each way;
 * under the debug kernel's KASAN the million of the case above is slow
 * enough already.
 */
#define MANY (MILLION / 4)
TEST(many_regions_unmonitor_all_then_close)
{
	status_t *st;
	int fd = open_cfg(MANY, &st);
	char *p = mmap(NULL, MANY * PAGE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	params_t *par = calloc(MANY, sizeof(*par));
	uint64_t before;
	size_t i;

	alarm(1500);
	ASSERT_TRUE(p != MAP_FAILED && par);
	if (read_u64(PARAM "max_user_regions") < MANY)
		SKIP("max_user_regions below a quarter million");
	watch_pages(fd, p, 0, MANY, par);
	ASSERT_EQ(active(st), MANY);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_UNMONITOR_ALL));
	ASSERT_EQ(active(st), 0);
	ASSERT_EQ(pending(st), 0);
	for (i = 0; i < MANY; i++)
		if (!kdreg2_mapping_changed(st, &par[i]))
			ASSERT_TRUE(kdreg2_mapping_changed(st, &par[i]));
	/* The same cookies again, none left behind in the hash. */
	watch_pages(fd, p, 0, MANY, par);
	ASSERT_EQ(active(st), MANY);
	for (i = 0; i < MANY; i += 4099)
		ASSERT_OK(unwatch(fd, i, par[i]));
	for (i = 0; i < MANY; i += 4099)
		ASSERT_ERRNO(unwatch(fd, i, par[i]), ESRCH);
	before = read_u64(SYSFS "regions");
	ASSERT_GE(before, MANY - (MANY + 4098) / 4099);
	ASSERT_OK(close(fd));
	ASSERT_LE(read_u64(SYSFS "regions"),
		  before - (MANY - (MANY + 4098) / 4099));
	for (i = 1; i < MANY; i += 4099)
		ASSERT_TRUE(kdreg2_mapping_changed(st, &par[i]));
}

/*
 * The cookie index hashes cookies into a quarter as many chains as slots,
 * so with max_regions 64 every chain holds several regions.  Each answer
 * stays exact: the same region again, EBUSY for another range, ENOSPC when
 * full, ESRCH for a cookie not there, EBADSLT for another region's
 * location, whatever the cookies' bits (low bits alike, high bits alike,
 * both ends of the range) and the order they leave in.
 */
TEST(cookie_hash_chains_keep_every_errno)
{
	enum { N = 64 };
	status_t *st;
	int fd = open_cfg(N, &st);
	char *p = map_pages(2);
	uint64_t c[N];
	params_t a[N];
	int i;

	for (i = 0; i < N; i++)
		c[i] = i % 2 ? (uint64_t)i << 40 : (uint64_t)i << 2;
	c[1] = KDREG2_BAD_COOKIE_VALUE - 1;
	for (i = 0; i < N; i++)
		a[i] = watch(fd, p, PAGE, c[i]);
	ASSERT_EQ(active(st), N);
	for (i = 0; i < N; i++) {
		struct kdreg2_ioctl_monitor m = { .addr = p + PAGE,
						  .length = PAGE,
						  .cookie = c[i] };
		params_t again = watch(fd, p, PAGE, c[i]), wrong = a[i];

		ASSERT_EQ(again.location, a[i].location);
		ASSERT_EQ(again.generation, a[i].generation);
		ASSERT_ERRNO(ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EBUSY);
		m.addr = p;
		m.cookie = c[i] ^ 1ULL << 63;
		ASSERT_ERRNO(ioctl(fd, KDREG2_IOCTL_MONITOR, &m), ENOSPC);
		ASSERT_ERRNO(unwatch(fd, c[i] ^ 1ULL << 63, a[i]), ESRCH);
		wrong.location = a[(i + 1) % N].location;
		ASSERT_ERRNO(unwatch(fd, c[i], wrong), EBADSLT);
	}
	ASSERT_EQ(active(st), N);
	/* Every other one leaves; the rest of each chain stays intact. */
	for (i = 0; i < N; i += 2)
		ASSERT_OK(unwatch(fd, c[i], a[i]));
	for (i = 0; i < N; i++) {
		if (i % 2) {
			params_t again = watch(fd, p, PAGE, c[i]);

			ASSERT_EQ(again.location, a[i].location);
			ASSERT_FALSE(kdreg2_mapping_changed(st, &a[i]));
		} else {
			ASSERT_ERRNO(unwatch(fd, c[i], a[i]), ESRCH);
			ASSERT_TRUE(kdreg2_mapping_changed(st, &a[i]));
		}
	}
	ASSERT_EQ(active(st), N / 2);
	/* Back in the other order, then all out from the far end. */
	for (i = N - 2; i >= 0; i -= 2)
		a[i] = watch(fd, p, PAGE, c[i]);
	ASSERT_EQ(active(st), N);
	for (i = N - 1; i >= 0; i--)
		ASSERT_OK(unwatch(fd, c[i], a[i]));
	ASSERT_EQ(active(st), 0);
	for (i = 0; i < N; i++)
		ASSERT_ERRNO(unwatch(fd, c[i], a[i]), ESRCH);
	/* max_regions 1 to 5: one chain, and the smallest that split. */
	for (size_t max = 1; max <= 5; max++) {
		int f = open_cfg(max, &st);

		for (i = 0; i < (int)max; i++)
			a[i] = watch(f, p, PAGE, c[i]);
		for (i = 0; i < (int)max; i++) {
			params_t wrong = a[i];

			ASSERT_ERRNO(unwatch(f, c[i] ^ 1ULL << 63, a[i]),
				     ESRCH);
			wrong.generation++;
			ASSERT_ERRNO(unwatch(f, c[i], wrong), EBADSLT);
		}
		for (i = 0; i < (int)max; i++)
			ASSERT_OK(unwatch(f, c[i], a[i]));
		ASSERT_EQ(active(st), 0);
		ASSERT_OK(close(f));
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--exec-check"))
		return exec_check(atoi(argv[2]));
	return tap_main(argc, argv);
}
