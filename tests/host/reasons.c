// SPDX-License-Identifier: GPL-2.0-only
/*
 * Why a watch changed (issue 26), on the host: the reasons the userfaultfd
 * backend derives from its own events (UNMAP, REMOVE, REMAP) and the manual
 * backend's, through mapwatch_read_events_ex(); the sized reading of its
 * array; the names; and the cache's statistics by reason and what its
 * invalidate callback reads (mapwatch_cache_entry_reason()).  The kernel
 * backend's reasons are tested in the guest (tests/guest/reasons.c).
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "host/libtest.h"

#define ASSERT_STREQ(a, b)						\
	do {								\
		const char *sa_ = (a), *sb_ = (b);			\
		if (!sa_ || strcmp(sa_, sb_))				\
			tap_diag("%s = \"%s\", want \"%s\"", #a,	\
				 sa_ ? sa_ : "(null)", sb_);		\
		TAP_CHECK(sa_ && !strcmp(sa_, sb_), #a " == " #b, 1);	\
	} while (0)

static char *map_pages(size_t n)
{
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 1, n * PAGE);
	return p;
}

/* The one event a change of watch cookie gives, waiting for the
 * userfaultfd reader to deliver it. */
static struct mapwatch_event_ex one_event(struct mapwatch *mw, uint64_t cookie)
{
	struct mapwatch_event_ex ev[4];
	int n = 0;

	for (int i = 0; i < 2000 && !n; i++) {
		n = mapwatch_read_events_ex(mw, ev, 4, sizeof(ev[0]));
		ASSERT_GE(n, 0);
		if (!n)
			usleep(1000);
	}
	ASSERT_EQ(n, 1);
	ASSERT_EQ(ev[0].cookie, cookie);
	ASSERT_EQ(ev[0].reserved, 0);
	return ev[0];
}

/* munmap: UNMAP -> unmapped by munmap(); the pages did not stay. */
TEST(userfaultfd_munmap_is_unmapped_by_munmap)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_USERFAULTFD, 8);
	struct mapwatch_handle h;
	struct mapwatch_event_ex ev;
	char *p = map_pages(4);

	ASSERT_OK(mapwatch_watch(mw, p, 2 * PAGE, 11, &h));
	ASSERT_OK(munmap(p, 4 * PAGE));
	ev = one_event(mw, 11);
	EXPECT_EQ(ev.reason, MAPWATCH_CHANGE_UNMAPPED);
	EXPECT_EQ(ev.cause, MAPWATCH_BY_MUNMAP);
	EXPECT_EQ(ev.flags, 0);
	EXPECT_EQ(ev.addr, (uintptr_t)p);
	EXPECT_EQ(ev.len, 2 * PAGE);
	mapwatch_close(mw);
}

/* madvise(DONTNEED): REMOVE -> unmapped by madvise(). */
TEST(userfaultfd_madvise_is_unmapped_by_madvise)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_USERFAULTFD, 8);
	struct mapwatch_handle h;
	struct mapwatch_event_ex ev;
	char *p = map_pages(4);

	ASSERT_OK(mapwatch_watch(mw, p, 4 * PAGE, 12, &h));
	ASSERT_OK(madvise(p + PAGE, PAGE, MADV_DONTNEED));
	ev = one_event(mw, 12);
	EXPECT_EQ(ev.reason, MAPWATCH_CHANGE_UNMAPPED);
	EXPECT_EQ(ev.cause, MAPWATCH_BY_MADVISE);
	EXPECT_EQ(ev.flags, 0);
	mapwatch_close(mw);
	munmap(p, 4 * PAGE);
}

/* mremap(MAYMOVE | FIXED) elsewhere: REMAP -> moved by mremap(). */
TEST(userfaultfd_mremap_is_moved_by_mremap)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_USERFAULTFD, 8);
	struct mapwatch_handle h;
	struct mapwatch_event_ex ev;
	char *p = map_pages(4), *dst = map_pages(4), *q;

	ASSERT_OK(mapwatch_watch(mw, p, 4 * PAGE, 13, &h));
	q = mremap(p, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_TRUE(q == dst);
	ev = one_event(mw, 13);
	EXPECT_EQ(ev.reason, MAPWATCH_CHANGE_MOVED);
	EXPECT_EQ(ev.cause, MAPWATCH_BY_MREMAP);
	mapwatch_close(mw);
	munmap(q, 4 * PAGE);
}

/* mapwatch_invalidate(): the application's own word, on every backend
 * that has no kernel to ask. */
static void invalidate_is_user(enum mapwatch_backend b)
{
	struct mapwatch *mw = open_backend(b, 8);
	struct mapwatch_handle h;
	struct mapwatch_event_ex ev;
	char *p = map_pages(2);

	ASSERT_OK(mapwatch_watch(mw, p, PAGE, 14, &h));
	ASSERT_OK(mapwatch_invalidate(mw, p, PAGE));
	ASSERT_TRUE(mapwatch_changed(&h));
	ev = one_event(mw, 14);
	EXPECT_EQ(ev.reason, MAPWATCH_CHANGE_USER);
	EXPECT_EQ(ev.cause, MAPWATCH_BY_IOCTL);
	mapwatch_close(mw);
	munmap(p, 2 * PAGE);
}

TEST(manual_invalidate_is_user_by_ioctl)
{
	invalidate_is_user(MAPWATCH_BACKEND_MANUAL);
}

TEST(userfaultfd_invalidate_is_user_by_ioctl)
{
	invalidate_is_user(MAPWATCH_BACKEND_USERFAULTFD);
}

/* The frozen mapwatch_read_events() reads the same events, unchanged. */
TEST(read_events_unchanged_beside_ex)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 8);
	struct mapwatch_handle h[2];
	struct mapwatch_event ev[4];
	struct mapwatch_event_ex ex[4];

	ASSERT_EQ(sizeof(struct mapwatch_event), 24);
	ASSERT_OK(mapwatch_watch(mw, (void *)0x10000, PAGE, 1, &h[0]));
	ASSERT_OK(mapwatch_watch(mw, (void *)0x20000, PAGE, 2, &h[1]));
	ASSERT_OK(mapwatch_invalidate(mw, (void *)0x10000, 0x20000));
	ASSERT_EQ(mapwatch_read_events(mw, ev, 1), 1);
	ASSERT_EQ(ev[0].cookie, 1);
	ASSERT_EQ(ev[0].addr, 0x10000);
	ASSERT_EQ(ev[0].len, PAGE);
	/* The rest through _ex: each event has one reader. */
	ASSERT_EQ(mapwatch_read_events_ex(mw, ex, 4, sizeof(ex[0])), 1);
	ASSERT_EQ(ex[0].cookie, 2);
	ASSERT_EQ(mapwatch_read_events(mw, ev, 4), 0);
	mapwatch_close(mw);
}

/* The array is read with the caller's element size: a newer header's
 * larger struct gets zeros beyond what the library knows; one below
 * 1.4's is refused. */
TEST(read_events_ex_sized_array)
{
	struct big {
		struct mapwatch_event_ex e;
		uint64_t future[3];
	} big[3];
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 8);
	struct mapwatch_handle h[3];

	for (int i = 0; i < 3; i++)
		ASSERT_OK(mapwatch_watch(mw, (void *)(0x10000UL * (i + 1)), PAGE,
					 i + 1, &h[i]));
	ASSERT_OK(mapwatch_invalidate(mw, (void *)0x10000, 0x30000));
	ASSERT_EQ(mapwatch_read_events_ex(mw, (void *)big, 3,
					  offsetof(struct mapwatch_event_ex, reason)),
		  -EINVAL);
	ASSERT_EQ(mapwatch_read_events_ex(mw, NULL, 3, sizeof(big[0])), -EINVAL);
	memset(big, 0xa5, sizeof(big));
	ASSERT_EQ(mapwatch_read_events_ex(mw, (void *)big, 3, sizeof(big[0])), 3);
	for (int i = 0; i < 3; i++) {
		EXPECT_EQ(big[i].e.cookie, i + 1);
		EXPECT_EQ(big[i].e.addr, 0x10000UL * (i + 1));
		EXPECT_EQ(big[i].e.reason, MAPWATCH_CHANGE_USER);
		EXPECT_EQ(big[i].e.reserved, 0);
		for (int j = 0; j < 3; j++)
			EXPECT_EQ(big[i].future[j], 0);
	}
	mapwatch_close(mw);
}

/* Past the ring, changes fold into one range event: it keeps the reason
 * and the cause they share, UNKNOWN where they differ. */
TEST(range_event_keeps_a_shared_reason)
{
	enum { N = 5000 };
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, N);
	static struct mapwatch_handle h[N];
	static struct mapwatch_event_ex ev[N];
	int n, ranges = 0;

	for (int i = 0; i < N; i++)
		ASSERT_OK(mapwatch_watch(mw, (void *)(PAGE * (i + 16)), PAGE,
					 i + 1, &h[i]));
	ASSERT_OK(mapwatch_invalidate(mw, (void *)(PAGE * 16), PAGE * N));
	n = mapwatch_read_events_ex(mw, ev, N, sizeof(ev[0]));
	ASSERT_GT(n, 0);
	for (int i = 0; i < n; i++) {
		ranges += ev[i].cookie == MAPWATCH_COOKIE_RANGE;
		EXPECT_EQ(ev[i].reason, MAPWATCH_CHANGE_USER);
		EXPECT_EQ(ev[i].cause, MAPWATCH_BY_IOCTL);
	}
	ASSERT_EQ(ranges, 1);
	mapwatch_close(mw);
}

TEST(range_event_of_mixed_reasons_is_unknown)
{
	enum { N = 5000 };
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_USERFAULTFD, N);
	static struct mapwatch_handle h[N];
	static struct mapwatch_event_ex ev[N];
	char *p = map_pages(N + 1);
	int n, ranges = 0;

	for (int i = 0; i < N; i++)
		ASSERT_OK(mapwatch_watch(mw, p + PAGE * i, PAGE, i + 1, &h[i]));
	/* The ring fills with the application's word, then madvise. */
	ASSERT_OK(mapwatch_invalidate(mw, p, PAGE * (N - 10)));
	ASSERT_OK(madvise(p + PAGE * (N - 10), PAGE * 10, MADV_DONTNEED));
	ASSERT_TRUE(mapwatch_changed_sync(&h[N - 1]));
	n = mapwatch_read_events_ex(mw, ev, N, sizeof(ev[0]));
	ASSERT_GT(n, 0);
	for (int i = 0; i < n; i++) {
		if (ev[i].cookie != MAPWATCH_COOKIE_RANGE)
			continue;
		ranges++;
		EXPECT_EQ(ev[i].reason, MAPWATCH_CHANGE_UNKNOWN);
		EXPECT_EQ(ev[i].cause, MAPWATCH_BY_UNKNOWN);
	}
	ASSERT_EQ(ranges, 1);
	mapwatch_close(mw);
	munmap(p, PAGE * (N + 1));
}

TEST(names_are_the_kernels)
{
	ASSERT_STREQ(mapwatch_reason_name(MAPWATCH_CHANGE_UNKNOWN), "unknown");
	ASSERT_STREQ(mapwatch_reason_name(MAPWATCH_CHANGE_UNMAPPED), "unmapped");
	ASSERT_STREQ(mapwatch_reason_name(MAPWATCH_CHANGE_MOVED), "moved");
	ASSERT_STREQ(mapwatch_reason_name(MAPWATCH_CHANGE_REPLACED), "replaced");
	ASSERT_STREQ(mapwatch_reason_name(MAPWATCH_CHANGE_PROTECTION), "protection");
	ASSERT_STREQ(mapwatch_reason_name(MAPWATCH_CHANGE_EXIT), "exit");
	ASSERT_STREQ(mapwatch_reason_name(MAPWATCH_CHANGE_USER), "user");
	ASSERT_TRUE(mapwatch_reason_name(7) == NULL);
	ASSERT_TRUE(mapwatch_reason_name(UINT32_MAX) == NULL);
	ASSERT_STREQ(mapwatch_cause_name(MAPWATCH_BY_UNKNOWN), "unknown");
	ASSERT_STREQ(mapwatch_cause_name(MAPWATCH_BY_MUNMAP), "munmap");
	ASSERT_STREQ(mapwatch_cause_name(MAPWATCH_BY_NUMA_SCAN), "numa_scan");
	ASSERT_STREQ(mapwatch_cause_name(MAPWATCH_BY_KHUGEPAGED), "khugepaged");
	ASSERT_STREQ(mapwatch_cause_name(MAPWATCH_BY_KTHREAD), "kthread");
	ASSERT_TRUE(mapwatch_cause_name(21) == NULL);
}

/* --- the cache ------------------------------------------------------------ */

struct why {
	struct fake f;
	int calls;
	uint32_t reason, cause;
	struct mapwatch_cache_entry *e;
};

static void why_invalidate(void *ctx, struct mapwatch_cache_entry *e)
{
	struct why *w = ctx;

	w->calls++;
	w->e = e;
	w->reason = mapwatch_cache_entry_reason(e);
	w->cause = mapwatch_cache_entry_cause(e);
}

static struct mapwatch_cache *why_cache(struct mapwatch *mw, struct why *w)
{
	struct mapwatch_cache_ops ops = {
		.reg = fake_reg, .dereg = fake_dereg, .ctx = w,
		.invalidate = why_invalidate,
	};
	struct mapwatch_cache *c;

	memset(w, 0, sizeof(*w));
	c = mapwatch_cache_create(mw, &ops, NULL);
	ASSERT_TRUE(c != NULL);
	return c;
}

/* The callback learns the reason; the stats count it. */
TEST(cache_callback_and_stats_say_munmap)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_USERFAULTFD, 16);
	struct mapwatch_cache_stats s;
	struct mapwatch_cache_entry *e;
	struct why w;
	struct mapwatch_cache *c = why_cache(mw, &w);
	char *p = map_pages(4);

	e = mapwatch_cache_get(c, p, 2 * PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(mapwatch_cache_entry_reason(e), MAPWATCH_CHANGE_UNKNOWN);
	mapwatch_cache_put(c, e);
	ASSERT_OK(munmap(p, 4 * PAGE));
	/* The next get finds it changed, through its event. */
	e = mapwatch_cache_get(c, map_pages(1), PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(w.calls, 1);
	EXPECT_EQ(w.reason, MAPWATCH_CHANGE_UNMAPPED);
	EXPECT_EQ(w.cause, MAPWATCH_BY_MUNMAP);
	ASSERT_OK(mapwatch_cache_get_stats(c, &s));
	EXPECT_EQ(s.invalidations, 1);
	EXPECT_EQ(s.by_reason[MAPWATCH_CHANGE_UNMAPPED], 1);
	EXPECT_EQ(s.by_cause[MAPWATCH_BY_MUNMAP], 1);
	EXPECT_EQ(s.by_reason[MAPWATCH_CHANGE_UNKNOWN], 0);
	EXPECT_EQ(s.pages_kept, 0);
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* A held entry changes, its put sees it: the reason still comes. */
TEST(cache_put_of_changed_entry_keeps_the_reason)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_USERFAULTFD, 16);
	struct mapwatch_cache_stats s;
	struct mapwatch_cache_entry *e;
	struct why w;
	struct mapwatch_cache *c = why_cache(mw, &w);
	char *p = map_pages(4);

	e = mapwatch_cache_get(c, p, 4 * PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_OK(madvise(p, PAGE, MADV_DONTNEED));
	ASSERT_TRUE(mapwatch_cache_entry_changed(e));
	mapwatch_cache_put(c, e);
	ASSERT_EQ(w.calls, 1);
	EXPECT_EQ(w.reason, MAPWATCH_CHANGE_UNMAPPED);
	EXPECT_EQ(w.cause, MAPWATCH_BY_MADVISE);
	ASSERT_OK(mapwatch_cache_get_stats(c, &s));
	EXPECT_EQ(s.by_reason[MAPWATCH_CHANGE_UNMAPPED], 1);
	EXPECT_EQ(s.by_cause[MAPWATCH_BY_MADVISE], 1);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
	munmap(p, 4 * PAGE);
}

/* The application's own invalidations: USER, by ioctl, host or device. */
TEST(cache_own_invalidations_are_user)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct mapwatch_cache_stats s;
	struct mapwatch_cache_entry *e;
	struct mapwatch_cache_req dev = {
		.addr = (void *)0x40000, .len = PAGE, .mem_type = 7, .device = 1,
	};
	struct why w;
	struct mapwatch_cache *c = why_cache(mw, &w);

	e = mapwatch_cache_get(c, (void *)0x10000, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(c, e);
	ASSERT_OK(mapwatch_cache_invalidate(c, MAPWATCH_MEM_HOST, 0,
					    (void *)0x10000, PAGE));
	ASSERT_GE(mapwatch_cache_progress(c), 0);	/* read by now */
	ASSERT_EQ(w.calls, 1);
	EXPECT_EQ(w.reason, MAPWATCH_CHANGE_USER);
	EXPECT_EQ(w.cause, MAPWATCH_BY_IOCTL);
	e = mapwatch_cache_get_req(c, &dev);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(c, e);
	ASSERT_OK(mapwatch_cache_invalidate(c, 7, 1, (void *)0x40000, PAGE));
	ASSERT_EQ(w.calls, 2);
	EXPECT_EQ(w.reason, MAPWATCH_CHANGE_USER);
	e = mapwatch_cache_get(c, (void *)0x80000, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_OK(mapwatch_cache_invalidate_entry(c, e, NULL, NULL));
	ASSERT_EQ(w.calls, 3);
	EXPECT_EQ(w.reason, MAPWATCH_CHANGE_USER);
	EXPECT_EQ(w.cause, MAPWATCH_BY_IOCTL);
	mapwatch_cache_put(c, e);
	ASSERT_OK(mapwatch_cache_get_stats(c, &s));
	EXPECT_EQ(s.invalidations, 3);
	EXPECT_EQ(s.by_reason[MAPWATCH_CHANGE_USER], 3);
	EXPECT_EQ(s.by_cause[MAPWATCH_BY_IOCTL], 3);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* A 1.3 caller's stats struct is filled up to its size, nothing beyond. */
TEST(cache_stats_of_an_older_size)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct why w;
	struct mapwatch_cache *c = why_cache(mw, &w);
	struct mapwatch_cache_entry *e;
	union {
		struct mapwatch_cache_stats s;
		unsigned char b[sizeof(struct mapwatch_cache_stats)];
	} u;
	size_t old = offsetof(struct mapwatch_cache_stats, by_reason);

	e = mapwatch_cache_get(c, (void *)0x10000, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(c, e);
	ASSERT_OK(mapwatch_invalidate(mw, (void *)0x10000, PAGE));
	ASSERT_EQ(mapwatch_cache_progress(c), 1);
	memset(&u, 0xa5, sizeof(u));
	ASSERT_OK(mapwatch_cache_get_stats_sized(c, &u.s, old));
	EXPECT_EQ(u.s.invalidations, 1);
	for (size_t i = old; i < sizeof(u); i++)
		ASSERT_EQ(u.b[i], 0xa5);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
