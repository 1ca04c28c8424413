// SPDX-License-Identifier: GPL-2.0-only
/*
 * mapwatch's extension ioctls: probe, batched monitor/unmonitor, per-fd
 * policy; and a client that uses none of them still sees kdreg2 behaviour.
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/ioctl.h>

#include "mapwatch_uapi.h"
#include "skipped_events.h"
#include "tap.h"

#define PAGE 4096UL

static int open_cfg(size_t max, const struct kdreg2_status_data **st)
{
	struct kdreg2_config_data c = { .max_regions = max };
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_NONBLOCK);

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	*st = c.status_data;
	return fd;
}

static char *map_pages(size_t n)
{
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 1, n * PAGE);
	return p;
}

static long set_policy(int fd, uint32_t flags)
{
	struct mapwatch_policy pol = { .size = sizeof(pol), .flags = flags };

	return ioctl(fd, MAPWATCH_IOCTL_SET_POLICY, &pol);
}

TEST(probe_reports_version_and_features)
{
	const struct kdreg2_status_data *st;
	int fd = open_cfg(4, &st);
	struct mapwatch_probe p = { .size = sizeof(p) };

	ASSERT_OK(ioctl(fd, MAPWATCH_IOCTL_PROBE, &p));
	ASSERT_EQ(p.abi_version, MAPWATCH_ABI_VERSION);
	ASSERT_TRUE(p.features & MAPWATCH_FEATURE_BATCH);
	ASSERT_TRUE(p.features & MAPWATCH_FEATURE_POLICY);
	ASSERT_TRUE(p.features & MAPWATCH_FEATURE_STATUS_EXT);
	ASSERT_GE(p.max_regions_limit, 1000000);
	ASSERT_GT(p.max_pending_events, 0);
	ASSERT_EQ(mapwatch_status_ext(st)->magic, MAPWATCH_STATUS_MAGIC);
}

TEST(probe_works_before_config)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct mapwatch_probe p = { .size = sizeof(p) };

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, MAPWATCH_IOCTL_PROBE, &p));
	ASSERT_EQ(p.abi_version, MAPWATCH_ABI_VERSION);
}

TEST(probe_size_rules)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct {
		struct mapwatch_probe p;
		uint64_t future[2];
	} big = { .p.size = sizeof(big) };
	struct mapwatch_probe small = { .size = 8 };

	ASSERT_TRUE(fd >= 0);
	/* Newer user space with a bigger, zero-extended struct: accepted. */
	ASSERT_OK(ioctl(fd, MAPWATCH_IOCTL_PROBE, &big));
	ASSERT_EQ(big.p.abi_version, MAPWATCH_ABI_VERSION);
	/* Non-zero bytes the module does not know: refused. */
	big.future[1] = 1;
	ASSERT_BAD_INPUT("PROBE", "larger struct with non-zero unknown bytes",
			 ioctl(fd, MAPWATCH_IOCTL_PROBE, &big), E2BIG);
	/* Smaller than the module's first version: refused. */
	ASSERT_BAD_INPUT("PROBE", "size smaller than version 1",
			 ioctl(fd, MAPWATCH_IOCTL_PROBE, &small), EINVAL);
	ASSERT_BAD_INPUT("PROBE", "unmapped argument pointer",
			 ioctl(fd, MAPWATCH_IOCTL_PROBE, (void *)8), EFAULT);
}

/* A struct grows by fields, not by pages: more than a page is E2BIG. */
TEST(argument_larger_than_a_page_is_e2big)
{
	const struct kdreg2_status_data *st;
	int fd = open_cfg(4, &st);
	char *big = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct mapwatch_probe *p = (void *)big;
	struct mapwatch_batch *b = (void *)big;
	struct mapwatch_policy *pol = (void *)big;

	ASSERT_TRUE(big != MAP_FAILED);
	/* Zero-filled past the known fields: only the size is wrong. */
	p->size = PAGE + 8;
	ASSERT_BAD_INPUT("PROBE", "size PAGE_SIZE + 8 (zero-filled)",
			 ioctl(fd, MAPWATCH_IOCTL_PROBE, p), E2BIG);
	memset(big, 0, 2 * PAGE);
	b->size = PAGE + 8;
	b->entry_size = sizeof(struct mapwatch_monitor_entry);
	ASSERT_BAD_INPUT("MONITOR_BATCH", "size PAGE_SIZE + 8 (zero-filled)",
			 ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, b), E2BIG);
	memset(big, 0, 2 * PAGE);
	pol->size = 0xffffffffu;
	ASSERT_BAD_INPUT("SET_POLICY", "size 4 GiB - 1",
			 ioctl(fd, MAPWATCH_IOCTL_SET_POLICY, pol), E2BIG);
	/* A page exactly is still fine. */
	memset(big, 0, 2 * PAGE);
	p->size = PAGE;
	ASSERT_OK(ioctl(fd, MAPWATCH_IOCTL_PROBE, p));
	ASSERT_EQ(p->abi_version, MAPWATCH_ABI_VERSION);
}

TEST(unknown_extension_number_is_enotty)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);

	ASSERT_TRUE(fd >= 0);
	ASSERT_BAD_INPUT("ioctl", "unknown number with magic 'k'",
			 ioctl(fd, _IO(KDREG2_IOC_MAGIC, 42)), ENOTTY);
	ASSERT_BAD_INPUT("ioctl", "foreign magic", ioctl(fd, _IO('x', 16)),
			 ENOTTY);
}

TEST(batch_monitor_per_entry_status)
{
	const struct kdreg2_status_data *st;
	int fd = open_cfg(3, &st);
	char *p = map_pages(4);
	struct mapwatch_monitor_entry e[5] = {
		{ .addr = (uintptr_t)p, .length = PAGE, .cookie = 1 },
		{ .addr = (uintptr_t)p, .length = 0, .cookie = 2 },
		{ .addr = (uintptr_t)p + PAGE, .length = PAGE, .cookie = 1 },
		{ .addr = (uintptr_t)p + PAGE, .length = PAGE, .cookie = 3 },
		{ .addr = (uintptr_t)p + 2 * PAGE, .length = PAGE,
		  .cookie = KDREG2_BAD_COOKIE_VALUE },
	};
	struct mapwatch_batch b = {
		.size = sizeof(b), .count = 5, .entry_size = sizeof(e[0]),
		.entries = (uintptr_t)e,
	};

	ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), 2);
	ASSERT_EQ(e[0].status, 0);
	ASSERT_EQ(e[1].status, -EINVAL);
	LOG_BAD_INPUT("MONITOR_BATCH entry", "length 0", "EINVAL");
	ASSERT_EQ(e[2].status, -EBUSY);	/* cookie 1 already, other range */
	LOG_BAD_INPUT("MONITOR_BATCH entry", "cookie already monitored with another range", "EBUSY");
	ASSERT_EQ(e[3].status, 0);
	ASSERT_EQ(e[4].status, -EINVAL);
	LOG_BAD_INPUT("MONITOR_BATCH entry", "cookie KDREG2_BAD_COOKIE_VALUE", "EINVAL");
	ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 2);

	struct kdreg2_monitoring_params p0 = {
		.location = e[0].location, .generation = e[0].generation };
	struct kdreg2_monitoring_params p3 = {
		.location = e[3].location, .generation = e[3].generation };

	ASSERT_FALSE(kdreg2_mapping_changed(st, &p0));
	ASSERT_FALSE(kdreg2_mapping_changed(st, &p3));
	ASSERT_OK(munmap(p + PAGE, PAGE));
	ASSERT_FALSE(kdreg2_mapping_changed(st, &p0));
	ASSERT_TRUE(kdreg2_mapping_changed(st, &p3));
}

TEST(batch_monitor_fills_to_max_regions_then_enospc)
{
	const struct kdreg2_status_data *st;
	int fd = open_cfg(100, &st);
	char *p = map_pages(1);
	struct mapwatch_monitor_entry e[130];
	struct mapwatch_batch b = {
		.size = sizeof(b), .count = 130, .entry_size = sizeof(e[0]),
		.entries = (uintptr_t)e,
	};

	for (int i = 0; i < 130; i++)
		e[i] = (struct mapwatch_monitor_entry){
			.addr = (uintptr_t)p, .length = PAGE, .cookie = i };
	ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), 100);
	for (int i = 0; i < 130; i++)
		ASSERT_EQ(e[i].status, i < 100 ? 0 : -ENOSPC);
	ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 100);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_EQ(kdreg2_read_counter(&st->pending_events), 100);
	ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 0);
}

/*
 * The statuses of a chunk cannot be written back (the array is read-only):
 * EFAULT, and its regions are not left monitored behind the caller's back.
 */
TEST(batch_monitor_unwritable_results_are_undone)
{
	const struct kdreg2_status_data *st;
	int fd = open_cfg(64, &st);
	char *p = map_pages(1);
	struct mapwatch_monitor_entry *e = mmap(NULL, PAGE,
			PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	struct mapwatch_batch b = { .size = sizeof(b), .count = 10,
				    .entry_size = sizeof(e[0]) };

	ASSERT_TRUE(e != MAP_FAILED);
	for (int i = 0; i < 10; i++)
		e[i] = (struct mapwatch_monitor_entry){
			.addr = (uintptr_t)p, .length = PAGE, .cookie = i + 1 };
	ASSERT_OK(mprotect(e, PAGE, PROT_READ));
	b.entries = (uintptr_t)e;
	ASSERT_BAD_INPUT("MONITOR_BATCH", "entries readable, not writable",
			 ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), EFAULT);
	ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 0);
	/* Nothing half-done: every slot and cookie is free again. */
	ASSERT_OK(mprotect(e, PAGE, PROT_READ | PROT_WRITE));
	b.count = 64;
	for (int i = 0; i < 64; i++)
		e[i] = (struct mapwatch_monitor_entry){
			.addr = (uintptr_t)p, .length = PAGE, .cookie = i + 1 };
	ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), 64);
}

TEST(batch_unmonitor_per_entry_status)
{
	const struct kdreg2_status_data *st;
	int fd = open_cfg(8, &st);
	char *p = map_pages(2);
	struct kdreg2_ioctl_monitor m = { .addr = p, .length = PAGE,
					  .cookie = 10 };
	struct kdreg2_ioctl_monitor m2 = { .addr = p + PAGE, .length = PAGE,
					   .cookie = 11 };

	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m2));

	struct mapwatch_unmonitor_entry u[4] = {
		{ .cookie = 10, .location = m.monitoring_params.location,
		  .generation = m.monitoring_params.generation },
		{ .cookie = 10, .location = m.monitoring_params.location,
		  .generation = m.monitoring_params.generation },
		{ .cookie = 11, .location = m2.monitoring_params.location,
		  .generation = m2.monitoring_params.generation + 1 },
		{ .cookie = 11, .location = 99,
		  .generation = m2.monitoring_params.generation },
	};
	struct mapwatch_batch b = {
		.size = sizeof(b), .count = 4, .entry_size = sizeof(u[0]),
		.entries = (uintptr_t)u,
	};

	ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_UNMONITOR_BATCH, &b), 1);
	ASSERT_EQ(u[0].status, 0);
	ASSERT_EQ(u[1].status, -ESRCH);		/* already gone */
	LOG_BAD_INPUT("UNMONITOR_BATCH entry", "cookie already unmonitored", "ESRCH");
	ASSERT_EQ(u[2].status, -EBADSLT);
	LOG_BAD_INPUT("UNMONITOR_BATCH entry", "stale generation", "EBADSLT");
	ASSERT_EQ(u[3].status, -EINVAL);
	LOG_BAD_INPUT("UNMONITOR_BATCH entry", "location >= max_regions", "EINVAL");
	ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 1);
	/* Unmonitoring silently: no event. */
	ASSERT_EQ(kdreg2_read_counter(&st->pending_events), 0);
}

TEST(batch_header_validation)
{
	const struct kdreg2_status_data *st;
	int fd = open_cfg(8, &st);
	struct mapwatch_monitor_entry e = { 0 };
	struct mapwatch_batch b = {
		.size = sizeof(b), .count = 1, .entry_size = sizeof(e),
		.entries = (uintptr_t)&e,
	};

	b.flags = 1;
	ASSERT_BAD_INPUT("MONITOR_BATCH", "non-zero flags",
			 ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), EINVAL);
	b.flags = 0;
	b.entry_size = sizeof(e) - 8;
	ASSERT_BAD_INPUT("MONITOR_BATCH", "wrong entry_size",
			 ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), EINVAL);
	b.entry_size = sizeof(e);
	b.count = MAPWATCH_BATCH_MAX + 1;
	ASSERT_BAD_INPUT("MONITOR_BATCH", "count above MAPWATCH_BATCH_MAX",
			 ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), EINVAL);
	b.count = 1;
	b.entries = 16;
	ASSERT_BAD_INPUT("MONITOR_BATCH", "unmapped entries array",
			 ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), EFAULT);
	b.size = 4;
	ASSERT_BAD_INPUT("MONITOR_BATCH", "header size too small",
			 ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), EINVAL);
	ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 0);
	/* count 0 is a valid no-op. */
	b.size = sizeof(b);
	b.count = 0;
	ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), 0);
}

TEST(batch_before_config_fails_per_entry)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct mapwatch_monitor_entry e = { .addr = 4096, .length = 1,
					    .cookie = 1 };
	struct mapwatch_batch b = {
		.size = sizeof(b), .count = 1, .entry_size = sizeof(e),
		.entries = (uintptr_t)&e,
	};

	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b), 0);
	ASSERT_EQ(e.status, -ENOSPC);
	LOG_BAD_INPUT("MONITOR_BATCH entry", "before CONFIG_DATA", "ENOSPC");
}

TEST(policy_rejects_unknown_flags)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);

	ASSERT_TRUE(fd >= 0);
	ASSERT_BAD_INPUT("SET_POLICY", "unknown flag", set_policy(fd, 1U << 7),
			 EINVAL);
	ASSERT_OK(set_policy(fd, 0));
}

/*
 * A protection-only change of @p that the default policy skips on this
 * kernel: mprotect, or where PROTECTION_VMA is not skipped (5.10) a fork,
 * which write-protects @p (PROTECTION_PAGE).
 */
static void skipped_protection_change(char *p)
{
	pid_t pid;

	if (mw_skips("protection_vma")) {
		ASSERT_OK(mprotect(p, PAGE, PROT_READ));
		return;
	}
	ASSERT_TRUE(mw_skips("protection_page"));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);
}

TEST(policy_all_invalidations_fires_on_mprotect)
{
	const struct kdreg2_status_data *st, *st2;
	int fd = open_cfg(4, &st);
	int plain = open_cfg(4, &st2);
	char *p = map_pages(1);
	struct kdreg2_ioctl_monitor m = { .addr = p, .length = PAGE,
					  .cookie = 5 };
	struct kdreg2_ioctl_monitor m2 = m;

	ASSERT_OK(set_policy(fd, MAPWATCH_POLICY_ALL_INVALIDATIONS));
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
	ASSERT_OK(ioctl(plain, KDREG2_IOCTL_MONITOR, &m2));
	if (!mw_skips("protection_vma")) {
		/* Not skipped here (5.10): both fds report the mprotect; the
		 * policy shows on a change that is skipped, a fork's. */
		ASSERT_OK(mprotect(p, PAGE, PROT_READ));
		ASSERT_TRUE(kdreg2_mapping_changed(st, &m.monitoring_params));
		ASSERT_TRUE(kdreg2_mapping_changed(st2, &m2.monitoring_params));
		ASSERT_EQ(kdreg2_read_counter(&st2->pending_events), 1);
		ASSERT_EQ(kdreg2_read_counter(&mapwatch_status_ext(st2)->skipped_invalidations), 0);
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
		ASSERT_OK(ioctl(plain, KDREG2_IOCTL_FLUSH));
		m.cookie = m2.cookie = 6;
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
		ASSERT_OK(ioctl(plain, KDREG2_IOCTL_MONITOR, &m2));
	}
	skipped_protection_change(p);
	ASSERT_TRUE(kdreg2_mapping_changed(st, &m.monitoring_params));
	/* The other fd, without the policy, skips it. */
	ASSERT_FALSE(kdreg2_mapping_changed(st2, &m2.monitoring_params));
	ASSERT_EQ(kdreg2_read_counter(&st2->pending_events), 0);
	ASSERT_GE(kdreg2_read_counter(&mapwatch_status_ext(st2)->skipped_invalidations), 1);
}

static void overflow_case(uint32_t policy, uint32_t want_type)
{
	const char *param = "/sys/module/mapwatch/parameters/max_pending_events";
	const struct kdreg2_status_data *st;
	struct kdreg2_event ev[8];
	char saved[32] = "";
	int pfd, fd, n, i;
	char *p;

	pfd = open(param, O_RDWR);
	ASSERT_TRUE(pfd >= 0);
	ASSERT_GT(read(pfd, saved, sizeof(saved) - 1), 0);
	ASSERT_OK(pwrite(pfd, "2\n", 2, 0));

	fd = open_cfg(8, &st);
	if (policy)
		ASSERT_OK(set_policy(fd, policy));
	p = map_pages(5);
	for (i = 0; i < 5; i++) {
		struct kdreg2_ioctl_monitor m = {
			.addr = p + i * PAGE, .length = PAGE, .cookie = i };

		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
	}
	ASSERT_OK(munmap(p, 5 * PAGE));
	ASSERT_OK(pwrite(pfd, saved, strlen(saved), 0));
	ASSERT_EQ(kdreg2_read_counter(&mapwatch_status_ext(st)->overflows), 3);
	ASSERT_EQ(kdreg2_read_counter(&st->pending_events), 3);
	ASSERT_EQ(kdreg2_read_counter(&st->total_events), 5);
	n = read(fd, ev, sizeof(ev));
	ASSERT_EQ(n, 3 * (int)sizeof(ev[0]));
	ASSERT_EQ(ev[0].type, KDREG2_EVENT_MAPPING_CHANGE);
	ASSERT_EQ(ev[0].u.mapping_change.cookie, 0);
	ASSERT_EQ(ev[1].u.mapping_change.cookie, 1);
	ASSERT_EQ(ev[2].type, want_type);
	ASSERT_EQ(ev[2].u.mapping_change.cookie, KDREG2_BAD_COOKIE_VALUE);
	ASSERT_EQ((uintptr_t)ev[2].u.mapping_change.addr, (uintptr_t)p + 2 * PAGE);
	ASSERT_EQ(ev[2].u.mapping_change.len, 3 * PAGE);
	ASSERT_EQ(kdreg2_read_counter(&st->pending_events), 0);
}

TEST(overflow_default_is_covering_mapping_change)
{
	overflow_case(0, KDREG2_EVENT_MAPPING_CHANGE);
}

TEST(overflow_policy_gives_overflow_event)
{
	overflow_case(MAPWATCH_POLICY_OVERFLOW_EVENT, MAPWATCH_EVENT_OVERFLOW);
}

TEST(old_style_client_beside_extended_one)
{
	const struct kdreg2_status_data *st, *st2;
	int ext = open_cfg(4, &st);
	int old = open(KDREG2_DEVICE_NAME, O_RDWR);
	struct kdreg2_config_data c = { .max_regions = 4 };
	char *p = map_pages(1);
	struct kdreg2_ioctl_monitor m = { .addr = p, .length = PAGE,
					  .cookie = 1 };
	struct kdreg2_event ev;

	ASSERT_TRUE(old >= 0);
	ASSERT_OK(ioctl(old, KDREG2_IOCTL_CONFIG_DATA, &c));
	st2 = c.status_data;
	ASSERT_OK(set_policy(ext, MAPWATCH_POLICY_ALL_INVALIDATIONS |
			     MAPWATCH_POLICY_OVERFLOW_EVENT));
	ASSERT_OK(ioctl(old, KDREG2_IOCTL_MONITOR, &m));
	/* The other fd's policy does not reach this one. */
	skipped_protection_change(p);
	ASSERT_FALSE(kdreg2_mapping_changed(st2, &m.monitoring_params));
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_TRUE(kdreg2_mapping_changed(st2, &m.monitoring_params));
	ASSERT_EQ(read(old, &ev, sizeof(ev)), (ssize_t)sizeof(ev));
	ASSERT_EQ(ev.type, KDREG2_EVENT_MAPPING_CHANGE);
	ASSERT_EQ(ev.u.mapping_change.cookie, 1);
	(void)st;
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
