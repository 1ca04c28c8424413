// SPDX-License-Identifier: GPL-2.0-only
/*
 * Allocation failures (FAILSLAB / fail_page_alloc through
 * /proc/thread-self/fail-nth, the mechanism syzkaller uses): make the 1st,
 * 2nd, ... allocation of open, CONFIG_DATA, resize, MONITOR and
 * MONITOR_BATCH fail in turn.  Each failure must be ENOMEM (or the
 * documented per-entry status) and leave no partial state: the counters are
 * unchanged and the next operation works.  Leaks are caught by kmemleak in
 * the debug lane.  Skipped on kernels built without fault injection.
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/mount.h>

#include "mapwatch_uapi.h"
#include "tap.h"

#define PAGE 4096UL

static int failnth_fd = -1;

static void setup_injection(void)
{
	static const char *const knobs[][2] = {
		{ "/sys/kernel/debug/failslab/ignore-gfp-wait", "N" },
		{ "/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N" },
		{ "/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N" },
		{ "/sys/kernel/debug/fail_page_alloc/min-order", "0" },
		{ "/sys/kernel/debug/failslab/verbose", "0" },
		{ "/sys/kernel/debug/fail_page_alloc/verbose", "0" },
	};

	mkdir("/sys/kernel/debug", 0755);
	mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	failnth_fd = open("/proc/thread-self/fail-nth", O_RDWR);
	if (failnth_fd < 0 || access("/sys/kernel/debug/failslab", F_OK))
		NEED("failslab", "kernel without fault injection (FAILSLAB, fail-nth)");
	for (unsigned int i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		int fd = open(knobs[i][0], O_WRONLY);

		if (fd >= 0) {
			ASSERT_GT(write(fd, knobs[i][1], strlen(knobs[i][1])), 0);
			close(fd);
		}
	}
}

static void arm(int nth)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d", nth);

	ASSERT_EQ(pwrite(failnth_fd, buf, len, 0), len);
}

/* Disarm; true if the armed failure was consumed by the operation. */
static bool disarm(void)
{
	char buf[16] = "";

	ASSERT_GT(pread(failnth_fd, buf, sizeof(buf) - 1, 0), 0);
	arm(0);
	return atoi(buf) == 0;
}

/* The bytes CONFIG_DATA maps for @max regions (mapwatch_uapi.h layout). */
static size_t area_size(size_t max)
{
	return (MAPWATCH_STATE_ARRAY_OFFSET + (max + 1) * 4 + PAGE - 1) &
	       ~(PAGE - 1);
}

/*
 * Close @fd and unmap its areas.  A closed context's area stays mapped and
 * the next CONFIG_DATA in this process reuses it (a spare) without
 * allocating; unmapping makes every round walk the whole allocation path.
 */
static void close_unmap(int fd, const void *a, size_t amax, const void *b,
			size_t bmax)
{
	ASSERT_OK(close(fd));
	if (a)
		ASSERT_OK(munmap((void *)a, area_size(amax)));
	if (b && b != a)
		ASSERT_OK(munmap((void *)b, area_size(bmax)));
}

static int open_cfg(size_t max, const struct kdreg2_status_data **st)
{
	struct kdreg2_config_data c = { .max_regions = max };
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_NONBLOCK);

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	*st = c.status_data;
	return fd;
}

TEST(open_allocation_failures)
{
	int n, injected = 0;

	setup_injection();
	for (n = 1; n < 64; n++) {
		int fd, err;
		bool hit;

		arm(n);
		fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
		err = errno;
		hit = disarm();
		if (fd >= 0) {
			const struct kdreg2_status_data *st;

			close(fd);
			if (!hit)
				break;	/* every allocation of open passed */
			/* A failure the module recovered from internally. */
			fd = open_cfg(4, &st);
			close_unmap(fd, st, 4, NULL, 0);
			continue;
		}
		injected++;
		EXPECT_EQ(err, ENOMEM);
		EXPECT_TRUE(hit);
	}
	ASSERT_LT(n, 64);
	tap_diag("open: %d allocation points failed, all ENOMEM", injected);
	ASSERT_GT(injected, 0);
}

static void config_failures(size_t first, size_t second)
{
	int n, injected = 0;

	setup_injection();
	for (n = 1; n < 64; n++) {
		const struct kdreg2_status_data *st;
		struct kdreg2_config_data c = { .max_regions = second };
		int fd = open_cfg(first, &st), ret, err;
		bool hit;

		arm(n);
		ret = ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c);
		err = errno;
		hit = disarm();
		if (ret == 0) {
			close_unmap(fd, st, first, c.status_data, second);
			if (!hit)
				break;
			continue;
		}
		injected++;
		EXPECT_EQ(err, ENOMEM);
		/* Nothing changed: the old area is intact and usable. */
		ASSERT_EQ(st->max_regions, first);
		if (first) {
			char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			struct kdreg2_ioctl_monitor m = { .addr = p,
							  .length = PAGE,
							  .cookie = 1 };

			ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
			ASSERT_OK(munmap(p, PAGE));
			ASSERT_TRUE(kdreg2_mapping_changed(st, &m.monitoring_params));
		}
		/* And the same call without a failure works. */
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
		ASSERT_EQ(c.status_data->max_regions, second);
		close_unmap(fd, st, first, c.status_data, second);
	}
	ASSERT_LT(n, 64);
	tap_diag("CONFIG_DATA %zu -> %zu: %d allocation points failed", first,
		 second, injected);
	ASSERT_GT(injected, 0);
}

TEST(config_allocation_failures)
{
	config_failures(0, 1000);
}

TEST(resize_allocation_failures)
{
	config_failures(16, 100000);
}

TEST(monitor_allocation_failures)
{
	int n, injected = 0;

	setup_injection();
	for (n = 1; n < 32; n++) {
		const struct kdreg2_status_data *st;
		int fd = open_cfg(4, &st), ret, err;
		char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct kdreg2_ioctl_monitor m = { .addr = p, .length = PAGE,
						  .cookie = 7 };
		bool hit;

		arm(n);
		ret = ioctl(fd, KDREG2_IOCTL_MONITOR, &m);
		err = errno;
		hit = disarm();
		if (ret == 0) {
			close(fd);
			munmap(p, PAGE);
			if (!hit)
				break;
			continue;
		}
		injected++;
		EXPECT_EQ(err, ENOMEM);
		ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 0);
		/* The cookie is free: the retry succeeds. */
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
		ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 1);
		ASSERT_OK(munmap(p, PAGE));
		ASSERT_EQ(kdreg2_read_counter(&st->pending_events), 1);
		close(fd);
	}
	ASSERT_LT(n, 32);
	tap_diag("MONITOR: %d allocation points failed", injected);
	ASSERT_GT(injected, 0);
}

TEST(monitor_batch_allocation_failures)
{
	int n, injected = 0;

	setup_injection();
	for (n = 1; n < 32; n++) {
		const struct kdreg2_status_data *st;
		int fd = open_cfg(64, &st);
		char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct mapwatch_monitor_entry e[8];
		struct mapwatch_batch b = { .size = sizeof(b), .count = 8,
					    .entry_size = sizeof(e[0]),
					    .entries = (uintptr_t)e };
		long ret, ok = 0;
		bool hit;

		for (int i = 0; i < 8; i++)
			e[i] = (struct mapwatch_monitor_entry){
				.addr = (uintptr_t)p, .length = PAGE, .cookie = i };
		arm(n);
		ret = ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b);
		hit = disarm();
		if (ret < 0) {
			EXPECT_EQ(errno, ENOMEM);
			ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 0);
		} else {
			for (int i = 0; i < 8; i++) {
				EXPECT_TRUE(e[i].status == 0 || e[i].status == -ENOMEM);
				ok += !e[i].status;
			}
			ASSERT_EQ(ret, ok);
			ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), ok);
		}
		injected += hit;
		ASSERT_OK(munmap(p, PAGE));
		ASSERT_EQ(kdreg2_read_counter(&st->pending_events), ret < 0 ? 0 : ok);
		close(fd);
		if (!hit)
			break;
	}
	ASSERT_LT(n, 32);
	tap_diag("MONITOR_BATCH: %d allocation points failed", injected);
	ASSERT_GT(injected, 0);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
