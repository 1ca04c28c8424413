// SPDX-License-Identifier: GPL-2.0-only
/*
 * Entry points used in an unusual order or mode: every one must give its
 * documented errno (never an oops) and leave the context usable.
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "mapwatch_uapi.h"
#include "tap.h"

TEST(unmonitor_before_config_is_einval)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct kdreg2_ioctl_unmonitor u = { .cookie = 1 };
	struct mapwatch_unmonitor_entry e = { .cookie = 1 };
	struct mapwatch_batch b = {
		.size = sizeof(b), .count = 1, .entry_size = sizeof(e),
		.entries = (uintptr_t)&e,
	};

	ASSERT_TRUE(fd >= 0);
	ASSERT_BAD_INPUT("UNMONITOR", "before CONFIG_DATA",
			 ioctl(fd, KDREG2_IOCTL_UNMONITOR, &u), EINVAL);
	ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_UNMONITOR_BATCH, &b), 0);
	ASSERT_EQ(e.status, -EINVAL);
	LOG_BAD_INPUT("UNMONITOR_BATCH entry", "before CONFIG_DATA", "EINVAL");
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_UNMONITOR_ALL));
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_DUMP_STATS));
}

TEST(monitor_before_config_is_enospc)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct kdreg2_ioctl_monitor m = { .addr = (void *)4096, .length = 1,
					  .cookie = 1 };

	ASSERT_TRUE(fd >= 0);
	ASSERT_BAD_INPUT("MONITOR", "before CONFIG_DATA",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), ENOSPC);
}

TEST(read_only_open_configures_and_reports)
{
	int fd = open(KDREG2_DEVICE_NAME, O_RDONLY);
	struct kdreg2_config_data c = { .max_regions = 2 };
	struct kdreg2_ioctl_monitor m = { .length = 4096, .cookie = 3 };
	struct kdreg2_event ev;
	char *p;

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	m.addr = p;
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
	ASSERT_OK(munmap(p, 4096));
	ASSERT_TRUE(kdreg2_mapping_changed(c.status_data, &m.monitoring_params));
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)sizeof(ev));
	ASSERT_EQ(ev.u.mapping_change.cookie, 3);
}

TEST(monitor_kernel_address_is_einval)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct kdreg2_config_data c = { .max_regions = 2 };
	struct kdreg2_ioctl_monitor m = {
		.addr = (void *)0xffff888000000000UL, .length = 4096,
		.cookie = 1 };

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_BAD_INPUT("MONITOR", "kernel address",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EINVAL);
	m.addr = (void *)0x10000UL;
	m.length = (size_t)-0x8000;	/* wraps around the address space */
	ASSERT_BAD_INPUT("MONITOR", "range wrapping the address space",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EINVAL);
	ASSERT_EQ(kdreg2_read_counter(&c.status_data->num_active_regions), 0);
}

TEST(status_area_survives_close_of_fd)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct kdreg2_config_data c = { .max_regions = 2 };

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_OK(close(fd));
	/* The mapping keeps the context alive until it is unmapped. */
	ASSERT_EQ(c.status_data->max_regions, 2);
	ASSERT_EQ(mapwatch_status_ext(c.status_data)->magic,
		  MAPWATCH_STATUS_MAGIC);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
