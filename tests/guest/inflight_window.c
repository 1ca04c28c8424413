// SPDX-License-Identifier: GPL-2.0-only
/*
 * The window around an invalidation in flight: a region monitored after a
 * zap started but before it finished must still be reported changed by the
 * time the zapping call returns, because its page was zapped after MONITOR.
 *
 * One thread populates a large range and zaps it whole with MADV_DONTNEED,
 * over and over; the page under test is the range's last, so the zap
 * reaches it long after the notifier's start callback ran.  The other
 * thread waits for a zap to begin, monitors that page and writes a marker
 * into it, waits for the zap to return, and checks: if the marker is gone
 * (the zap hit the page after MONITOR), the region must read changed.
 * Marker writes and reads go through /proc/self/mem, i.e. through the page
 * tables as a registration's pinning does, never through a TLB entry the
 * zap has not flushed yet.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>

#include "mapwatch_uapi.h"
#include "tap.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE 4096UL
#define NPAGES 4096UL

static char *area, *page;
static atomic_ulong started, returned;
static atomic_bool stop;

static void *zapper(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		if (madvise(area, NPAGES * PAGE, MADV_POPULATE_WRITE))
			for (unsigned long i = 0; i < NPAGES; i++)
				area[i * PAGE] = 1;
		atomic_fetch_add(&started, 1);
		madvise(area, NPAGES * PAGE, MADV_DONTNEED);
		atomic_fetch_add(&returned, 1);
	}
	return NULL;
}

TEST(region_monitored_during_a_zap_is_reported)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_NONBLOCK);
	int mem = open("/proc/self/mem", O_RDWR);
	struct kdreg2_config_data c = { .max_regions = 4 };
	unsigned long rounds = 0, zapped_after = 0, windows = 0, seen_zap = 0;
	time_t end = time(NULL) + 10;
	pthread_t th;

	ASSERT_TRUE(fd >= 0 && mem >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_OK(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0));
	area = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(area != MAP_FAILED);
	page = area + (NPAGES - 1) * PAGE;
	ASSERT_EQ(pthread_create(&th, NULL, zapper, NULL), 0);
	while (time(NULL) < end) {
		struct kdreg2_ioctl_monitor m = {
			.addr = page, .length = PAGE, .cookie = rounds + 1,
		};
		struct kdreg2_ioctl_unmonitor u = { .cookie = rounds + 1 };
		char mark = (char)(rounds % 255 + 2), seen;
		unsigned long z;

		/* A zap has just begun. */
		while ((z = atomic_load(&started)) == seen_zap)
			;
		seen_zap = z;
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
		ASSERT_EQ(pwrite(mem, &mark, 1, (uintptr_t)page), 1);
		while (atomic_load(&returned) < z)
			;
		ASSERT_EQ(pread(mem, &seen, 1, (uintptr_t)page), 1);
		if (seen != mark) {
			zapped_after++;
			if (!kdreg2_mapping_changed(c.status_data,
						    &m.monitoring_params))
				windows++;
		}
		u.monitoring_params = m.monitoring_params;
		if (ioctl(fd, KDREG2_IOCTL_UNMONITOR, &u))
			ASSERT_TRUE(errno == ESRCH);
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
		rounds++;
	}
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	tap_diag("%lu rounds, %lu with the page zapped after MONITOR, %lu of them unreported",
		 rounds, zapped_after, windows);
	ASSERT_GT(zapped_after, 0);
	ASSERT_EQ(windows, 0);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
