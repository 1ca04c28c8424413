// SPDX-License-Identifier: GPL-2.0-only
/*
 * Why a watch changed, through libmapwatch on the kernel backend (issue
 * 26): the library asks mapwatch.ko for reasons (MAPWATCH_POLICY_REASONS)
 * and mapwatch_read_events_ex() returns them; the frozen
 * mapwatch_read_events() still reads the same events; the cache counts its
 * invalidations by reason and tells the invalidate callback.  And the
 * PAGES_KEPT measurement: with the library's policy (no
 * ALL_INVALIDATIONS) no protection-only change reaches the cache at all,
 * so no event it reads can say the pages were kept; the case prints what
 * it counted.
 *
 * usage: lib_reasons [CASE...]      (TAP)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "host/libtest.h"
#include "mapwatch_uapi.h"
#include "skipped_events.h"

static struct mapwatch *kernel(size_t max)
{
	struct mapwatch *mw;
	const char *why = NULL;
	int r = mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, max, &why);

	if (r)
		tap_diag("mapwatch_open(KERNEL): %d %s", r, why ? why : "");
	ASSERT_EQ(r, 0);
	return mw;
}

/* The module of this tree offers reasons: a test that found none would
 * pass on nothing. */
static void need_reasons(void)
{
	struct mapwatch_probe p = { .size = sizeof(p) };
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC);

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, MAPWATCH_IOCTL_PROBE, &p));
	close(fd);
	ASSERT_TRUE(p.features & MAPWATCH_FEATURE_REASONS);
}

static char *map_pages(size_t n)
{
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	ASSERT_OK(madvise(p, n * PAGE, MADV_NOHUGEPAGE));
	memset(p, 1, n * PAGE);
	return p;
}

/* The one event pending: synchronous, so no wait. */
static struct mapwatch_event_ex one_event(struct mapwatch *mw, uint64_t cookie)
{
	struct mapwatch_event_ex ev[4];

	ASSERT_EQ(mapwatch_read_events_ex(mw, ev, 4, sizeof(ev[0])), 1);
	ASSERT_EQ(ev[0].cookie, cookie);
	tap_diag("event: reason %s, cause %s, flags %#x",
		 mapwatch_reason_name(ev[0].reason) ?: "?",
		 mapwatch_cause_name(ev[0].cause) ?: "?", ev[0].flags);
	return ev[0];
}

TEST(munmap_is_unmapped_by_munmap)
{
	struct mapwatch *mw;
	struct mapwatch_handle h;
	struct mapwatch_event_ex ev;
	char *p = map_pages(4);

	need_reasons();
	mw = kernel(8);
	ASSERT_OK(mapwatch_watch(mw, p, 2 * PAGE, 1, &h));
	ASSERT_OK(munmap(p, 4 * PAGE));
	ASSERT_TRUE(mapwatch_changed(&h));
	ev = one_event(mw, 1);
	EXPECT_EQ(ev.reason, MAPWATCH_CHANGE_UNMAPPED);
	EXPECT_EQ(ev.cause, MAPWATCH_BY_MUNMAP);
	EXPECT_EQ(ev.flags & MAPWATCH_EVENT_F_PAGES_KEPT, 0);
	mapwatch_close(mw);
}

TEST(madvise_dontneed_is_unmapped_by_madvise)
{
	struct mapwatch *mw;
	struct mapwatch_handle h;
	struct mapwatch_event_ex ev;
	char *p = map_pages(4);

	need_reasons();
	mw = kernel(8);
	ASSERT_OK(mapwatch_watch(mw, p, 4 * PAGE, 2, &h));
	ASSERT_OK(madvise(p + PAGE, PAGE, MADV_DONTNEED));
	ev = one_event(mw, 2);
	EXPECT_EQ(ev.reason, MAPWATCH_CHANGE_UNMAPPED);
	EXPECT_EQ(ev.cause, MAPWATCH_BY_MADVISE);
	mapwatch_close(mw);
}

TEST(mremap_move_is_moved_by_mremap)
{
	struct mapwatch *mw;
	struct mapwatch_handle h;
	struct mapwatch_event_ex ev;
	char *p = map_pages(4), *dst = map_pages(4), *q;

	need_reasons();
	mw = kernel(8);
	ASSERT_OK(mapwatch_watch(mw, p, 4 * PAGE, 3, &h));
	q = mremap(p, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_TRUE(q == dst);
	ev = one_event(mw, 3);
	EXPECT_EQ(ev.reason, MAPWATCH_CHANGE_MOVED);
	EXPECT_EQ(ev.cause, MAPWATCH_BY_MREMAP);
	mapwatch_close(mw);
}

TEST(invalidate_is_user_by_ioctl)
{
	struct mapwatch *mw;
	struct mapwatch_handle h;
	struct mapwatch_event_ex ev;
	char *p = map_pages(2);

	need_reasons();
	mw = kernel(8);
	ASSERT_OK(mapwatch_watch(mw, p, PAGE, 4, &h));
	ASSERT_OK(mapwatch_invalidate(mw, p, PAGE));
	ev = one_event(mw, 4);
	EXPECT_EQ(ev.reason, MAPWATCH_CHANGE_USER);
	EXPECT_EQ(ev.cause, MAPWATCH_BY_IOCTL);
	mapwatch_close(mw);
}

/* fork() write-protects (skipped: nothing moved); the parent's write
 * after it copies the page: replaced, on a fault. */
TEST(cow_after_fork_is_replaced_by_fault)
{
	struct mapwatch *mw;
	struct mapwatch_handle h;
	struct mapwatch_event_ex ev;
	char *p = map_pages(1);
	volatile char *v = p;
	int go[2], st;
	pid_t pid;

	need_reasons();
	mw = kernel(8);
	ASSERT_OK(mapwatch_watch(mw, p, PAGE, 5, &h));
	ASSERT_OK(pipe(go));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {	/* holds the page shared until the parent wrote */
		char c;

		_exit(read(go[0], &c, 1) == 1 ? 0 : 1);
	}
	if (!mw_skips("protection_page")) {	/* fork retired it already */
		ev = one_event(mw, 5);
		EXPECT_EQ(ev.reason, MAPWATCH_CHANGE_PROTECTION);
		EXPECT_EQ(ev.cause, MAPWATCH_BY_FORK);
		ASSERT_EQ(write(go[1], "x", 1), 1);
		ASSERT_EQ(waitpid(pid, &st, 0), pid);
		mapwatch_close(mw);
		return;
	}
	ASSERT_FALSE(mapwatch_changed(&h));	/* fork's write-protect */
	v[0] = 2;				/* the copy */
	ASSERT_TRUE(mapwatch_changed(&h));
	ASSERT_EQ(write(go[1], "x", 1), 1);
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ev = one_event(mw, 5);
	EXPECT_EQ(ev.reason, MAPWATCH_CHANGE_REPLACED);
	EXPECT_EQ(ev.cause, MAPWATCH_BY_FAULT);
	mapwatch_close(mw);
}

/* The frozen struct reads the same events, the reason dropped; _ex and it
 * share them (one reader). */
TEST(read_events_frozen_beside_ex)
{
	struct mapwatch *mw;
	struct mapwatch_handle h[2];
	struct mapwatch_event ev[4];
	struct mapwatch_event_ex ex[4];
	char *p = map_pages(4);

	need_reasons();
	mw = kernel(8);
	ASSERT_OK(mapwatch_watch(mw, p, PAGE, 6, &h[0]));
	ASSERT_OK(mapwatch_watch(mw, p + 2 * PAGE, PAGE, 7, &h[1]));
	ASSERT_OK(munmap(p, 4 * PAGE));
	ASSERT_EQ(mapwatch_read_events(mw, ev, 1), 1);
	ASSERT_EQ(ev[0].cookie, 6);
	ASSERT_EQ(ev[0].addr, (uintptr_t)p);
	ASSERT_EQ(mapwatch_read_events_ex(mw, ex, 4, sizeof(ex[0])), 1);
	ASSERT_EQ(ex[0].cookie, 7);
	ASSERT_EQ(ex[0].reason, MAPWATCH_CHANGE_UNMAPPED);
	mapwatch_close(mw);
}

/* --- the cache ------------------------------------------------------------ */

struct heard {
	struct fake f;
	int calls;
	uint32_t reason, cause;
};

static void on_invalidate(void *ctx, struct mapwatch_cache_entry *e)
{
	struct heard *s = ctx;

	s->calls++;
	s->reason = mapwatch_cache_entry_reason(e);
	s->cause = mapwatch_cache_entry_cause(e);
}

static struct mapwatch_cache *heard_cache(struct mapwatch *mw, struct heard *s)
{
	struct mapwatch_cache_ops ops = {
		.reg = fake_reg, .dereg = fake_dereg, .ctx = s,
		.invalidate = on_invalidate,
	};
	struct mapwatch_cache *c;

	memset(s, 0, sizeof(*s));
	c = mapwatch_cache_create(mw, &ops, NULL);
	ASSERT_TRUE(c != NULL);
	return c;
}

/* Held across the change: the put finds it changed, reads the event
 * first, and the callback and the stats say munmap. */
TEST(cache_counts_by_reason_and_tells_the_callback)
{
	struct mapwatch *mw;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e, *f;
	struct mapwatch_cache_stats st;
	struct heard s;
	char *p = map_pages(4), *q = map_pages(4);

	need_reasons();
	mw = kernel(16);
	c = heard_cache(mw, &s);
	e = mapwatch_cache_get(c, p, 4 * PAGE, 0);
	f = mapwatch_cache_get(c, q, 4 * PAGE, 0);
	ASSERT_TRUE(e && f);
	mapwatch_cache_put(c, f);
	ASSERT_OK(munmap(p, 4 * PAGE));
	ASSERT_OK(madvise(q, PAGE, MADV_DONTNEED));
	mapwatch_cache_put(c, e);
	ASSERT_GE(mapwatch_cache_progress(c), 0);
	ASSERT_EQ(s.calls, 2);
	ASSERT_OK(mapwatch_cache_get_stats(c, &st));
	EXPECT_EQ(st.invalidations, 2);
	EXPECT_EQ(st.by_reason[MAPWATCH_CHANGE_UNMAPPED], 2);
	EXPECT_EQ(st.by_cause[MAPWATCH_BY_MUNMAP], 1);
	EXPECT_EQ(st.by_cause[MAPWATCH_BY_MADVISE], 1);
	EXPECT_EQ(st.by_reason[MAPWATCH_CHANGE_UNKNOWN], 0);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/*
 * PAGES_KEPT, measured: protection-only changes (mprotect, fork's
 * write-protect, a soft-dirty reset) leave the cache's entry valid and
 * send it nothing with the library's policy, so pages_kept stays 0 and
 * there is nothing for a cache to keep; the real change after them is
 * caught.
 */
TEST(protection_changes_never_reach_the_cache)
{
	struct mapwatch *mw;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e;
	struct mapwatch_cache_stats st;
	struct heard s;
	char *p = map_pages(4);
	int fd, status;
	pid_t pid;

	need_reasons();
	mw = kernel(16);
	c = heard_cache(mw, &s);
	e = mapwatch_cache_get(c, p, 4 * PAGE, 0);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(c, e);
	ASSERT_OK(mprotect(p, 4 * PAGE, PROT_READ));
	ASSERT_OK(mprotect(p, 4 * PAGE, PROT_READ | PROT_WRITE));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		_exit(0);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	fd = open("/proc/self/clear_refs", O_WRONLY);
	if (fd >= 0) {
		ASSERT_EQ(write(fd, "4", 1), 1);
		close(fd);
	}
	/* Whether the kernel let the module skip each is the module's test
	 * (tests/guest/reasons.c); what reached the cache is ours. */
	ASSERT_GE(mapwatch_cache_progress(c), 0);
	ASSERT_OK(mapwatch_cache_get_stats(c, &st));
	tap_diag("after mprotect, fork, clear_refs: %llu invalidations (protection %llu), pages_kept %llu",
		 (unsigned long long)st.invalidations,
		 (unsigned long long)st.by_reason[MAPWATCH_CHANGE_PROTECTION],
		 (unsigned long long)st.pages_kept);
	/* Never PAGES_KEPT with the library's policy; where the module
	 * skips PROTECTION_VMA nothing came at all, elsewhere (5.10) the
	 * mprotect alone, not kept (a NUMA scan may read as one there). */
	EXPECT_EQ(st.pages_kept, 0);
	if (mw_skips("protection_vma")) {
		EXPECT_EQ(st.invalidations, 0);
	} else {
		EXPECT_EQ(st.invalidations, 1);
		EXPECT_EQ(st.by_reason[MAPWATCH_CHANGE_PROTECTION], 1);
	}
	/* Whatever came, the entry is served only if unchanged, and a real
	 * change is caught. */
	e = mapwatch_cache_get(c, p, 4 * PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_FALSE(mapwatch_cache_entry_changed(e));
	ASSERT_OK(munmap(p, 4 * PAGE));
	ASSERT_TRUE(mapwatch_cache_entry_changed(e));
	mapwatch_cache_put(c, e);
	ASSERT_OK(mapwatch_cache_get_stats(c, &st));
	EXPECT_GE(st.by_cause[MAPWATCH_BY_MUNMAP], 1);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
