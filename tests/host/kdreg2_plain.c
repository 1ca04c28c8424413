// SPDX-License-Identifier: GPL-2.0-only
/*
 * The kernel backend over HPE's plain kdreg2, played by the test: open()
 * of /dev/kdreg2 gives an eventfd, and ioctl() on it answers the kdreg2
 * ioctls the way kdreg2 does (a 48-byte status page and a separate state
 * array, both the module's) and refuses mapwatch's PROBE.  A sentinel page
 * sits right after the status page: the library must never unmap it (nor
 * the module's own mappings), must not claim MAPWATCH_F_SYNC or
 * MAPWATCH_F_ALL_CHANGES, and AUTO must not settle for it silently.
 * read() of the device serves queued records (unknown types: F21); with
 * fake_mapwatch set it plays mapwatch.ko handing out a larger spare area
 * (F24: close must unmap all of it, and nothing that replaced it), and
 * with fake_reasons one that offers MAPWATCH_FEATURE_REASONS: the library
 * sets the policy and reads each record's reason; from any other device a
 * record's padding word is never read as one (issue 26).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "host/libtest.h"
#include "kdreg2.h"
#include "mapwatch_uapi.h"

static int fake_fd = -1;
static char *status_page, *sentinel, *state_array;
static size_t next_location;

static int fake_open(const char *path, int flags)
{
	if (!strcmp(path, "/dev/mapwatch")) {
		errno = ENOENT;
		return -1;
	}
	if (!strcmp(path, "/dev/kdreg2")) {
		fake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		return fake_fd;
	}
	return syscall(SYS_openat, AT_FDCWD, path, flags, 0666);
}

int open(const char *path, int flags, ...)
{
	return fake_open(path, flags);
}

int open64(const char *path, int flags, ...)
{
	return fake_open(path, flags);
}

/*
 * Playing mapwatch.ko instead (review 2026-12-07 F24): PROBE answers, and
 * CONFIG_DATA hands out a spare area of spare_pages pages, more than the
 * request needs, as the module does when it takes over a larger spare (one
 * mapping named like the module's, "[mapwatch-status]", followed by a
 * sentinel page of the application's).
 */
static bool fake_mapwatch;
static size_t spare_pages;
static char *spare;
static bool fake_invalidate;	/* INVALIDATE answered (queues nothing) */
static bool fake_reasons;	/* FEATURE_REASONS offered */
static int policy_calls;	/* SET_POLICY requests seen */
static uint32_t policy_flags;	/* the last one's flags */

static int fake_mapwatch_ioctl(unsigned long req, void *arg)
{
	if (req == MAPWATCH_IOCTL_PROBE) {
		struct mapwatch_probe *p = arg;

		p->abi_version = MAPWATCH_ABI_VERSION;
		p->features = MAPWATCH_FEATURE_STATUS_EXT |
			      (fake_invalidate ? MAPWATCH_FEATURE_INVALIDATE : 0) |
			      (fake_reasons ? MAPWATCH_FEATURE_POLICY |
					      MAPWATCH_FEATURE_REASONS : 0);
		return 0;
	}
	if (req == MAPWATCH_IOCTL_SET_POLICY) {
		const struct mapwatch_policy *pol = arg;

		policy_calls++;
		policy_flags = pol->flags;
		if (!fake_reasons && (pol->flags & MAPWATCH_POLICY_REASONS)) {
			errno = EINVAL;	/* an older module: unknown bit */
			return -1;
		}
		return 0;
	}
	if (req == MAPWATCH_IOCTL_INVALIDATE && fake_invalidate)
		return 0;	/* the test queued the records itself */
	if (req == KDREG2_IOCTL_CONFIG_DATA) {
		struct kdreg2_config_data *cfg = arg;
		struct kdreg2_status_data *st;
		int fd = memfd_create("[mapwatch-status]", MFD_CLOEXEC);

		if (fd < 0 || ftruncate(fd, spare_pages * PAGE))
			abort();
		spare = mmap(NULL, (spare_pages + 1) * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (spare == MAP_FAILED ||
		    mmap(spare, spare_pages * PAGE, PROT_READ, MAP_SHARED | MAP_FIXED,
			 fd, 0) == MAP_FAILED)
			abort();
		close(fd);
		sentinel = spare + spare_pages * PAGE;
		strcpy(sentinel, "application data");
		st = (struct kdreg2_status_data *)spare;
		cfg->status_data = st;
		return 0;
	}
	errno = ENOTTY;
	return -1;
}

static int fake_ioctl(unsigned long req, void *arg)
{
	if (fake_mapwatch)
		return fake_mapwatch_ioctl(req, arg);
	if (req == KDREG2_IOCTL_CONFIG_DATA) {
		struct kdreg2_config_data *cfg = arg;
		struct kdreg2_status_data *st;

		/* kdreg2: one page of status, the array mapped apart. */
		status_page = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		state_array = mmap(NULL, (cfg->max_regions + 1) * 4,
				   PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (status_page == MAP_FAILED || state_array == MAP_FAILED)
			abort();
		/* The page after the status page stands for whatever the
		 * application happens to have mapped there. */
		sentinel = status_page + PAGE;
		strcpy(sentinel, "application data");
		st = (struct kdreg2_status_data *)status_page;
		st->version = 1;
		st->max_regions = cfg->max_regions;
		st->monitoring_state_base = (void *)state_array;
		cfg->status_data = st;
		return 0;
	}
	if (req == KDREG2_IOCTL_MONITOR) {
		struct kdreg2_ioctl_monitor *m = arg;
		uint32_t *w = (uint32_t *)state_array + next_location;

		*w = 0x80000001;	/* in use, generation 1 */
		m->monitoring_params.location = next_location++;
		m->monitoring_params.generation = *w;
		return 0;
	}
	if (req == KDREG2_IOCTL_UNMONITOR)
		return 0;
	errno = ENOTTY;		/* PROBE and every other extension */
	return -1;
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd >= 0 && fd == fake_fd)
		return fake_ioctl(req, arg);
	return syscall(SYS_ioctl, fd, req, arg);
}

/* What read() of the fake device returns next: whole records, as kdreg2's
 * read() does; EAGAIN once they are gone. */
static struct kdreg2_event queued[8];
static size_t nqueued, queued_at;
static size_t per_read;		/* records one read() serves at most (0: all) */

static void queue_event(uint32_t type, uint64_t cookie)
{
	struct kdreg2_event *e = &queued[nqueued++];

	memset(e, 0, sizeof(*e));
	e->type = type;
	e->u.mapping_change.addr = (void *)(0x10000000UL + cookie * PAGE);
	e->u.mapping_change.len = PAGE;
	e->u.mapping_change.cookie = cookie;
}

ssize_t read(int fd, void *buf, size_t n)
{
	size_t k;

	if (fd < 0 || fd != fake_fd)
		return syscall(SYS_read, fd, buf, n);
	k = n / sizeof(queued[0]);
	if (k > nqueued - queued_at)
		k = nqueued - queued_at;
	if (per_read && k > per_read)
		k = per_read;
	if (!k) {
		errno = EAGAIN;
		return -1;
	}
	memcpy(buf, &queued[queued_at], k * sizeof(queued[0]));
	queued_at += k;
	return k * sizeof(queued[0]);
}

static bool mapped(const void *p)
{
	return msync((void *)((uintptr_t)p & ~(PAGE - 1)), PAGE, MS_ASYNC) == 0;
}

/* 992 watches and more: mapwatch.ko's layout would span two pages. */
TEST(close_unmaps_nothing_of_plain_kdreg2)
{
	struct mapwatch *mw;
	const char *why = NULL;

	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 1000, &why)));
	ASSERT_EQ(mapwatch_backend(mw), MAPWATCH_BACKEND_KERNEL);
	mapwatch_close(mw);
	EXPECT_TRUE(mapped(sentinel));
	EXPECT_TRUE(mapped(status_page));	/* the module's to unmap */
	EXPECT_TRUE(mapped(state_array));
	if (mapped(sentinel))
		EXPECT_EQ(strcmp(sentinel, "application data"), 0);
}

TEST(plain_kdreg2_claims_neither_sync_nor_all_changes)
{
	struct mapwatch *mw;
	struct mapwatch_handle h;
	char buf[64];

	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, NULL)));
	EXPECT_EQ(mapwatch_features(mw) &
		  (MAPWATCH_F_SYNC | MAPWATCH_F_ALL_CHANGES | MAPWATCH_F_BATCH), 0);
	/* It still works as a monitor. */
	ASSERT_OK(neg(mapwatch_watch(mw, buf, sizeof(buf), 7, &h)));
	EXPECT_FALSE(mapwatch_changed(&h));
	ASSERT_OK(neg(mapwatch_unwatch(mw, &h)));
	/* No INVALIDATE in kdreg2: refused, and the library says why. */
	ASSERT_BAD_INPUT("mapwatch_invalidate", "HPE's kdreg2 (no INVALIDATE)",
			 neg(mapwatch_invalidate(mw, buf, sizeof(buf))), EOPNOTSUPP);
	EXPECT_TRUE(strstr(mapwatch_strerror(mw), "kdreg2") != NULL);
	mapwatch_close(mw);
}

TEST(auto_refuses_plain_kdreg2_auto_any_says_why)
{
	struct mapwatch *mw = NULL;
	const char *why = NULL;
	int r;

	r = mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO, 16, &why);
	tap_diag("auto: %d, why: %s", r, why ? why : "(null)");
	EXPECT_NE(r, 0);
	EXPECT_TRUE(why && strstr(why, "kdreg2"));
	if (!r)
		mapwatch_close(mw);
	if (status_page)	/* refused: nothing of the module unmapped */
		EXPECT_TRUE(mapped(sentinel));
	why = NULL;
	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO_ANY, 16, &why)));
	tap_diag("auto-any: %s", why ? why : "(null)");
	EXPECT_EQ(mapwatch_backend(mw), MAPWATCH_BACKEND_KERNEL);
	EXPECT_TRUE(why && strstr(why, "kdreg2"));
	mapwatch_close(mw);
}

/*
 * Review 2026-12-07 F21: a record whose type is not MAPPING_CHANGE (a newer
 * module's) is not a mapping change: it must not come out as an event
 * (its bytes would be read as one); the others of the batch still do.
 */
TEST(read_skips_records_of_unknown_type)
{
	struct mapwatch *mw;
	struct mapwatch_event ev[8];
	int n;

	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, NULL)));
	queue_event(KDREG2_EVENT_MAPPING_CHANGE, 7);
	queue_event(99, 0xdead);
	queue_event(KDREG2_EVENT_MAPPING_CHANGE, 8);
	n = mapwatch_read_events(mw, ev, 8);
	tap_diag("read_events: %d; %s", n, mapwatch_strerror(mw));
	for (int i = 0; i < n; i++)
		tap_diag("  event %d: cookie %#llx", i,
			 (unsigned long long)ev[i].cookie);
	ASSERT_EQ(n, 2);
	EXPECT_EQ(ev[0].cookie, 7);
	EXPECT_EQ(ev[1].cookie, 8);
	EXPECT_TRUE(strstr(mapwatch_strerror(mw), "type 99") != NULL);
	ASSERT_EQ(mapwatch_read_events(mw, ev, 8), 0);
	mapwatch_close(mw);
}

/* A batch of nothing but unknown records: -ENOMSG (libfabric's answer),
 * saying so, once; then nothing pending. */
TEST(read_of_only_unknown_records_is_enomsg)
{
	struct mapwatch *mw;
	struct mapwatch_event ev[8];
	int n;

	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, NULL)));
	queue_event(2, 1);
	queue_event(0, 2);
	n = mapwatch_read_events(mw, ev, 8);
	tap_diag("read_events: %d; %s", n, mapwatch_strerror(mw));
	ASSERT_EQ(n, -ENOMSG);
	EXPECT_TRUE(strstr(mapwatch_strerror(mw), "unknown type") != NULL);
	ASSERT_EQ(mapwatch_read_events(mw, ev, 8), 0);
	mapwatch_close(mw);
}

/*
 * F21 follow-up: -ENOMSG only when a call delivered nothing.  A change,
 * then a read of nothing but an unknown record (records served one per
 * read(), as when they arrive apart): the change was delivered, so the
 * count, not -ENOMSG.
 */
static void queue_change_then_unknown(void)
{
	per_read = 1;
	queue_event(KDREG2_EVENT_MAPPING_CHANGE, 7);
	queue_event(99, 0xdead);
}

static void count_event(void *arg, const struct mapwatch_event *ev)
{
	(void)ev;
	(*(int *)arg)++;
}

TEST(drain_counts_what_it_delivered_before_unknown_records)
{
	struct mapwatch *mw;
	int seen = 0, n;

	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, NULL)));
	queue_change_then_unknown();
	n = mapwatch_drain(mw, count_event, &seen);
	tap_diag("drain: %d, %d delivered; %s", n, seen, mapwatch_strerror(mw));
	EXPECT_EQ(seen, 1);
	EXPECT_EQ(n, 1);
	ASSERT_EQ(mapwatch_drain(mw, count_event, &seen), 0);
	mapwatch_close(mw);
}

TEST(cache_progress_counts_what_it_delivered_before_unknown_records)
{
	struct mapwatch *mw;
	struct mapwatch_cache *c;
	struct fake f;
	int n;

	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, NULL)));
	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	queue_change_then_unknown();
	n = mapwatch_cache_progress(c);
	tap_diag("progress: %d; %s", n, mapwatch_strerror(mw));
	EXPECT_EQ(n, 1);
	/* Nothing but an unknown record: -ENOMSG, as read_events says. */
	queue_event(99, 0xbeef);
	EXPECT_EQ(mapwatch_cache_progress(c), -ENOMSG);
	EXPECT_EQ(mapwatch_cache_progress(c), 0);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* A host invalidation that succeeded is not reported failed because the
 * events it read ended with (or held only) unknown records. */
TEST(cache_invalidate_succeeds_despite_unknown_records)
{
	struct mapwatch *mw;
	struct mapwatch_cache *c;
	struct fake f;
	char buf[64];
	int r;

	fake_mapwatch = true;
	fake_invalidate = true;
	spare_pages = 1;
	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, NULL)));
	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	queue_change_then_unknown();
	r = mapwatch_cache_invalidate(c, MAPWATCH_MEM_HOST, 0, buf, sizeof(buf));
	tap_diag("invalidate: %d; %s", r, mapwatch_strerror(mw));
	EXPECT_EQ(r, 0);
	queue_event(99, 0xbeef);
	r = mapwatch_cache_invalidate(c, MAPWATCH_MEM_HOST, 0, buf, sizeof(buf));
	tap_diag("invalidate, unknown record alone: %d", r);
	EXPECT_EQ(r, 0);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* The whole area goes at close, however much larger than the request the
 * module made it; the application's page after it stays. */
TEST(close_unmaps_a_larger_spare_whole)
{
	struct mapwatch *mw;

	fake_mapwatch = true;
	spare_pages = 3;	/* 16 watches need one page */
	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, NULL)));
	ASSERT_TRUE(mapped(spare));
	mapwatch_close(mw);
	for (size_t i = 0; i < spare_pages; i++) {
		if (mapped(spare + i * PAGE))
			tap_diag("page %zu of the %zu-page area still mapped", i,
				 spare_pages);
		EXPECT_FALSE(mapped(spare + i * PAGE));
	}
	ASSERT_TRUE(mapped(sentinel));
	EXPECT_EQ(strcmp(sentinel, "application data"), 0);
}

/* Nothing is unmapped when the area's address holds something else by
 * close time (the application unmapped it and mapped its own there). */
TEST(close_leaves_what_replaced_the_area)
{
	struct mapwatch *mw;
	char *mine;

	fake_mapwatch = true;
	spare_pages = 2;
	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, NULL)));
	mine = mmap(spare, 2 * PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_TRUE(mine == spare);
	strcpy(mine, "mine");
	mapwatch_close(mw);
	ASSERT_TRUE(mapped(mine));
	EXPECT_EQ(strcmp(mine, "mine"), 0);
}

/* --- why a watch changed (1.4) ------------------------------------------- */

/* The record's _alignment word as mapwatch.ko writes it with REASONS. */
static void queue_why(uint64_t cookie, uint32_t word)
{
	queue_event(KDREG2_EVENT_MAPPING_CHANGE, cookie);
	queued[nqueued - 1]._alignment = word;
}

/* A module with reasons: the library asks for them, and reads them. */
TEST(reasons_asked_for_and_read_when_offered)
{
	struct mapwatch *mw;
	struct mapwatch_event_ex ev[4];

	fake_mapwatch = true;
	fake_reasons = true;
	spare_pages = 1;
	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, NULL)));
	ASSERT_EQ(policy_calls, 1);
	ASSERT_EQ(policy_flags, MAPWATCH_POLICY_REASONS);
	queue_why(1, MAPWATCH_REASON_UNMAPPED | MAPWATCH_CAUSE_BRK << 8);
	queue_why(2, MAPWATCH_REASON_PROTECTION | MAPWATCH_CAUSE_MPROTECT << 8 |
		     MAPWATCH_EVENT_F_PAGES_KEPT);
	queue_why(3, 9 | 40 << 8);	/* a newer module's values */
	ASSERT_EQ(mapwatch_read_events_ex(mw, ev, 4, sizeof(ev[0])), 3);
	EXPECT_EQ(ev[0].reason, MAPWATCH_CHANGE_UNMAPPED);
	EXPECT_EQ(ev[0].cause, MAPWATCH_BY_BRK);
	EXPECT_EQ(ev[0].flags, 0);
	EXPECT_EQ(ev[1].reason, MAPWATCH_CHANGE_PROTECTION);
	EXPECT_EQ(ev[1].cause, MAPWATCH_BY_MPROTECT);
	EXPECT_EQ(ev[1].flags, MAPWATCH_EVENT_F_PAGES_KEPT);
	EXPECT_EQ(ev[2].reason, 9);
	EXPECT_EQ(ev[2].cause, 40);
	EXPECT_TRUE(mapwatch_reason_name(ev[2].reason) == NULL);
	mapwatch_close(mw);
}

/* A module without them is not asked (it would refuse the bit), and a
 * non-zero padding word is not read as a reason. */
TEST(reasons_unknown_from_a_module_without_them)
{
	struct mapwatch *mw;
	struct mapwatch_event_ex ev[2];

	fake_mapwatch = true;
	spare_pages = 1;
	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, NULL)));
	ASSERT_EQ(policy_calls, 0);
	queue_why(1, MAPWATCH_REASON_MOVED | MAPWATCH_CAUSE_MREMAP << 8);
	ASSERT_EQ(mapwatch_read_events_ex(mw, ev, 2, sizeof(ev[0])), 1);
	EXPECT_EQ(ev[0].cookie, 1);
	EXPECT_EQ(ev[0].reason, MAPWATCH_CHANGE_UNKNOWN);
	EXPECT_EQ(ev[0].cause, MAPWATCH_BY_UNKNOWN);
	EXPECT_EQ(ev[0].flags, 0);
	mapwatch_close(mw);
}

TEST(reasons_unknown_from_plain_kdreg2)
{
	struct mapwatch *mw;
	struct mapwatch_event_ex ev[2];

	ASSERT_OK(neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, NULL)));
	ASSERT_EQ(policy_calls, 0);
	queue_why(5, 0x10203);
	ASSERT_EQ(mapwatch_read_events_ex(mw, ev, 2, sizeof(ev[0])), 1);
	EXPECT_EQ(ev[0].cookie, 5);
	EXPECT_EQ(ev[0].reason, MAPWATCH_CHANGE_UNKNOWN);
	EXPECT_EQ(ev[0].flags, 0);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
