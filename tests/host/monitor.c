// SPDX-License-Identifier: GPL-2.0-only
/*
 * libmapwatch's monitor API on the host: the manual backend everywhere, the
 * userfaultfd backend where the host allows it (cases SKIP, saying why,
 * where it does not), the kernel backend's absence explained.  The kernel
 * backend itself is tested in the guest (tests/guest/lib_kernel.c).
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "host/libtest.h"

static struct mapwatch *manual(size_t max)
{
	return open_backend(MAPWATCH_BACKEND_MANUAL, max);
}

static struct mapwatch *uffd(size_t max)
{
	return open_backend(MAPWATCH_BACKEND_USERFAULTFD, max);
}

static char *map_pages(size_t n)
{
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 1, n * PAGE);
	return p;
}

/* --- opening ---------------------------------------------------------------- */

TEST(open_manual)
{
	struct mapwatch *mw;
	const char *why = "unset";

	ASSERT_EQ(mapwatch_open(&mw, MAPWATCH_BACKEND_MANUAL, 16, &why), 0);
	ASSERT_TRUE(why == NULL);
	ASSERT_EQ(mapwatch_backend(mw), MAPWATCH_BACKEND_MANUAL);
	ASSERT_TRUE(!strcmp(mapwatch_backend_name(mapwatch_backend(mw)), "manual"));
	ASSERT_EQ(mapwatch_features(mw), MAPWATCH_F_SYNC);
	ASSERT_TRUE(!strcmp(mapwatch_strerror(mw), "no error"));
	ASSERT_GE(mapwatch_fd(mw), 0);
	ASSERT_FALSE(mapwatch_pending(mw));
	mapwatch_close(mw);
	mapwatch_close(NULL);
}

TEST(open_userfaultfd)
{
	struct mapwatch *mw = uffd(16);

	ASSERT_EQ(mapwatch_backend(mw), MAPWATCH_BACKEND_USERFAULTFD);
	ASSERT_TRUE(!strcmp(mapwatch_backend_name(MAPWATCH_BACKEND_USERFAULTFD),
			    "userfaultfd"));
	/* Honest: neither synchronous nor complete, no batching. */
	ASSERT_EQ(mapwatch_features(mw), 0);
	ASSERT_GE(mapwatch_fd(mw), 0);
	mapwatch_close(mw);
}

TEST(open_kernel_without_module_says_why)
{
	struct mapwatch *mw = (struct mapwatch *)1;
	const char *why = NULL;
	struct stat st;
	int r;

	if (!stat("/dev/mapwatch", &st) || !stat("/dev/kdreg2", &st))
		SKIP("the module is loaded here (tested in the guest)");
	r = mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, &why);
	ASSERT_EQ(r, -ENOENT);
	ASSERT_TRUE(mw == NULL);
	ASSERT_TRUE(why != NULL);
	tap_diag("why: %s", why);
	ASSERT_TRUE(strstr(why, "/dev/mapwatch") != NULL);
	ASSERT_TRUE(strstr(why, "modprobe mapwatch") != NULL);
}

/* AUTO never settles for less than MAPWATCH_F_SYNC: without the module it
 * fails and says so; AUTO_ANY falls back to userfaultfd and says why; when
 * that fails too, both reasons. */
TEST(open_auto_never_downgrades_silently)
{
	struct mapwatch *mw;
	const char *why = NULL;
	struct stat st;
	pid_t pid;
	int status, r;

	if (!stat("/dev/mapwatch", &st) || !stat("/dev/kdreg2", &st))
		SKIP("a module is loaded here");
	if (UNDER_VALGRIND())
		SKIP("valgrind implements neither userfaultfd nor seccomp");
	r = mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO, 16, &why);
	tap_diag("auto: %d, why: %s", r, why ? why : "(null)");
	ASSERT_NE(r, 0);
	ASSERT_TRUE(why && strstr(why, "modprobe mapwatch") &&
		    strstr(why, "MAPWATCH_BACKEND_AUTO_ANY"));
	why = NULL;
	if (mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO_ANY, 16, &why) == 0) {
		tap_diag("auto-any: %s", why ? why : "(null)");
		ASSERT_EQ(mapwatch_backend(mw), MAPWATCH_BACKEND_USERFAULTFD);
		ASSERT_FALSE(mapwatch_features(mw) & MAPWATCH_F_SYNC);
		ASSERT_TRUE(why && strstr(why, "fell back to userfaultfd"));
		mapwatch_close(mw);
	} else {
		tap_diag("auto-any unavailable here: %s", why);
	}
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		deny_syscall(SYS_userfaultfd, 0, EPERM);
		r = mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO_ANY, 16, &why);
		printf("# why: %s\n", why ? why : "(null)");
		_exit(r == -EPERM && why && strstr(why, "modprobe") &&
		      strstr(why, "vm.unprivileged_userfaultfd") ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* userfaultfd refused by policy or missing from the kernel: say which. */
TEST(open_userfaultfd_errors_say_why)
{
	static const struct { int err; const char *text; } cases[] = {
		{ EPERM, "vm.unprivileged_userfaultfd" },
		{ ENOSYS, "without userfaultfd" },
	};

	if (UNDER_VALGRIND())
		SKIP("valgrind implements neither userfaultfd nor seccomp");
	for (unsigned int i = 0; i < 2; i++) {
		pid_t pid = fork();
		int status;

		ASSERT_TRUE(pid >= 0);
		if (pid == 0) {
			struct mapwatch *mw;
			const char *why = NULL;
			int r;

			deny_syscall(SYS_userfaultfd, 0, cases[i].err);
			r = mapwatch_open(&mw, MAPWATCH_BACKEND_USERFAULTFD, 16, &why);
			printf("# %s: %d %s\n", strerror(cases[i].err), r,
			       why ? why : "(null)");
			_exit(r == -cases[i].err && why &&
			      strstr(why, cases[i].text) ? 0 : 1);
		}
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
}

TEST(open_bad_arguments)
{
	struct mapwatch *mw;
	const char *why = NULL;

	ASSERT_BAD_INPUT("mapwatch_open", "unknown backend",
			 neg(mapwatch_open(&mw, (enum mapwatch_backend)99, 16, &why)),
			 EINVAL);
	ASSERT_TRUE(why && strstr(why, "unknown backend"));
	ASSERT_BAD_INPUT("mapwatch_open", "NULL monitor pointer",
			 neg(mapwatch_open(NULL, MAPWATCH_BACKEND_MANUAL, 16, &why)),
			 EINVAL);
	ASSERT_BAD_INPUT("mapwatch_open", "max_watches SIZE_MAX (manual)",
			 neg(mapwatch_open(&mw, MAPWATCH_BACKEND_MANUAL,
					   (size_t)-1, &why)), EINVAL);
	ASSERT_TRUE(why && strstr(why, "too large"));
	/* why may be NULL. */
	ASSERT_EQ(mapwatch_open(&mw, (enum mapwatch_backend)99, 16, NULL), -EINVAL);
}

/* --- watch, changed, unwatch ---------------------------------------------- */

static void watch_cycle(struct mapwatch *mw, char *p, bool manual_changes)
{
	struct mapwatch_handle h, h2;
	struct mapwatch_stats s;

	ASSERT_OK(mapwatch_watch(mw, p, 2 * PAGE, 7, &h));
	ASSERT_OK(mapwatch_watch(mw, p + 4 * PAGE, PAGE, 8, &h2));
	ASSERT_FALSE(mapwatch_changed(&h));
	ASSERT_FALSE(mapwatch_changed(&h2));
	mapwatch_get_stats(mw, &s);
	ASSERT_EQ(s.watched, 2);
	if (manual_changes)
		ASSERT_OK(mapwatch_invalidate(mw, p + PAGE, 1));
	else
		ASSERT_OK(madvise(p + PAGE, PAGE, MADV_DONTNEED));
	ASSERT_TRUE(wait_changed(&h, 2));
	ASSERT_FALSE(mapwatch_changed(&h2));
	mapwatch_get_stats(mw, &s);
	ASSERT_EQ(s.watched, 1);
	ASSERT_EQ(s.events, 1);
	/* A changed watch unwatches fine, twice too; so does a live one. */
	ASSERT_EQ(mapwatch_unwatch(mw, &h), 0);
	ASSERT_EQ(mapwatch_unwatch(mw, &h), 0);
	ASSERT_EQ(mapwatch_unwatch(mw, &h2), 0);
	ASSERT_TRUE(mapwatch_changed(&h2));	/* unwatched: moved on */
	ASSERT_EQ(mapwatch_unwatch(mw, &h2), 0);
	mapwatch_get_stats(mw, &s);
	ASSERT_EQ(s.watched, 0);
}

TEST(watch_changed_unwatch_manual)
{
	struct mapwatch *mw = manual(16);

	watch_cycle(mw, (char *)0x10000000, true);
	mapwatch_close(mw);
}

TEST(watch_changed_unwatch_userfaultfd)
{
	struct mapwatch *mw = uffd(16);
	char *p = map_pages(8);

	watch_cycle(mw, p, false);
	mapwatch_close(mw);
}

/*
 * mapwatch_changed_sync() (review 2026-12-07 F18): after the munmap of
 * this thread returned it reads changed every time, though the reader
 * thread may not have applied the event yet (which a bare
 * mapwatch_changed() can show); on the manual backend it is
 * mapwatch_changed(); a NULL or unfilled handle reads changed.
 */
TEST(changed_sync_sees_a_returned_munmap)
{
	struct mapwatch *mw = uffd(16);
	struct mapwatch_handle h;
	int early = 0;

	for (int i = 0; i < 500; i++) {
		char *p = map_pages(1);

		ASSERT_EQ(mapwatch_watch(mw, p, PAGE, 1, &h), 0);
		ASSERT_FALSE(mapwatch_changed_sync(&h));
		ASSERT_EQ(munmap(p, PAGE), 0);
		early += !mapwatch_changed(&h);
		ASSERT_TRUE(mapwatch_changed_sync(&h));
		ASSERT_EQ(mapwatch_unwatch(mw, &h), 0);
	}
	tap_diag("500 munmaps: mapwatch_changed() still false just after %d of them",
		 early);
	mapwatch_close(mw);
}

TEST(changed_sync_manual_and_null)
{
	struct mapwatch *mw = manual(16);
	struct mapwatch_handle h, unfilled = { 0 };

	ASSERT_EQ(mapwatch_watch(mw, (char *)0x10000000, PAGE, 1, &h), 0);
	ASSERT_FALSE(mapwatch_changed_sync(&h));
	ASSERT_EQ(mapwatch_invalidate(mw, (char *)0x10000000, 1), 0);
	ASSERT_TRUE(mapwatch_changed_sync(&h));
	ASSERT_TRUE(mapwatch_changed_sync(NULL));
	ASSERT_TRUE(mapwatch_changed_sync(&unfilled));
	mapwatch_close(mw);
}

/* A stale handle whose slot was reused does not unwatch the new watch. */
TEST(stale_handle_leaves_the_slot_user_alone)
{
	struct mapwatch *mw = manual(1);
	struct mapwatch_handle old, cur;

	ASSERT_OK(mapwatch_watch(mw, (void *)0x1000, PAGE, 1, &old));
	ASSERT_OK(mapwatch_unwatch(mw, &old));
	ASSERT_OK(mapwatch_watch(mw, (void *)0x1000, PAGE, 1, &cur));
	ASSERT_EQ(cur.slot, old.slot);
	ASSERT_EQ(mapwatch_unwatch(mw, &old), 0);	/* already gone */
	ASSERT_FALSE(mapwatch_changed(&cur));
	ASSERT_OK(mapwatch_invalidate(mw, (void *)0x1000, 1));
	ASSERT_TRUE(mapwatch_changed(&cur));
	mapwatch_close(mw);
}

TEST(watch_until_full)
{
	struct mapwatch *mw = manual(3);
	struct mapwatch_handle h[4];

	for (int i = 0; i < 3; i++)
		ASSERT_OK(mapwatch_watch(mw, (void *)(0x1000UL * (i + 1)), 1, i, &h[i]));
	ASSERT_BAD_INPUT("mapwatch_watch", "all max_watches in use (manual)",
			 neg(mapwatch_watch(mw, (void *)0x9000, 1, 9, &h[3])), ENOSPC);
	ASSERT_TRUE(strstr(mapwatch_strerror(mw), "in use") != NULL);
	ASSERT_OK(mapwatch_unwatch(mw, &h[1]));
	ASSERT_OK(mapwatch_watch(mw, (void *)0x9000, 1, 9, &h[3]));
	mapwatch_close(mw);
}

TEST(watch_bad_arguments)
{
	struct mapwatch *mw = manual(4);
	struct mapwatch_handle h, zero = { 0 }, foreign;
	struct mapwatch *other = manual(4);

	ASSERT_BAD_INPUT("mapwatch_watch", "len 0",
			 neg(mapwatch_watch(mw, (void *)0x1000, 0, 1, &h)), EINVAL);
	ASSERT_TRUE(strstr(mapwatch_strerror(mw), "empty") != NULL);
	ASSERT_BAD_INPUT("mapwatch_watch", "cookie MAPWATCH_COOKIE_RANGE",
			 neg(mapwatch_watch(mw, (void *)0x1000, 1,
					    MAPWATCH_COOKIE_RANGE, &h)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_watch", "range wraps",
			 neg(mapwatch_watch(mw, (void *)-PAGE, 2 * PAGE, 1, &h)),
			 EINVAL);
	ASSERT_BAD_INPUT("mapwatch_watch", "NULL handle",
			 neg(mapwatch_watch(mw, (void *)0x1000, 1, 1, NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_unwatch", "zeroed handle",
			 neg(mapwatch_unwatch(mw, &zero)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_unwatch", "NULL handle",
			 neg(mapwatch_unwatch(mw, NULL)), EINVAL);
	ASSERT_OK(mapwatch_watch(other, (void *)0x1000, 1, 1, &foreign));
	ASSERT_BAD_INPUT("mapwatch_unwatch", "another monitor's handle",
			 neg(mapwatch_unwatch(mw, &foreign)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_read_events", "NULL array",
			 neg(mapwatch_read_events(mw, NULL, 4)), EINVAL);
	ASSERT_EQ(mapwatch_read_events(mw, NULL, 0), 0);
	ASSERT_BAD_INPUT("mapwatch_drain", "NULL callback",
			 neg(mapwatch_drain(mw, NULL, NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_invalidate", "range wraps",
			 neg(mapwatch_invalidate(mw, (void *)-PAGE, 2 * PAGE)), EINVAL);
	ASSERT_EQ(mapwatch_invalidate(mw, (void *)0x1000, 0), 0);	/* nothing */
	ASSERT_BAD_INPUT("mapwatch_watch_batch", "NULL array",
			 neg(mapwatch_watch_batch(mw, NULL, 2)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_unwatch_batch", "NULL array",
			 neg(mapwatch_unwatch_batch(mw, NULL, 2, NULL)), EINVAL);
	ASSERT_EQ(mapwatch_watch_batch(mw, NULL, 0), 0);
	mapwatch_close(other);
	mapwatch_close(mw);
}

TEST(userfaultfd_refuses_unmapped_memory)
{
	struct mapwatch *mw = uffd(4);
	struct mapwatch_handle h;
	char *p = map_pages(2);

	ASSERT_OK(munmap(p, 2 * PAGE));
	ASSERT_BAD_INPUT("mapwatch_watch", "unmapped range (userfaultfd)",
			 neg(mapwatch_watch(mw, p, PAGE, 1, &h)), EINVAL);
	tap_diag("strerror: %s", mapwatch_strerror(mw));
	ASSERT_TRUE(strstr(mapwatch_strerror(mw), "kernel backend") != NULL);
	mapwatch_close(mw);
}

/* --- events ------------------------------------------------------------------- */

static void events_and_poll(struct mapwatch *mw, char *p, bool manual_changes)
{
	struct mapwatch_handle h[3];
	struct mapwatch_event ev[4];
	struct seen s = { 0 };

	for (int i = 0; i < 3; i++)
		ASSERT_OK(mapwatch_watch(mw, p + 2 * i * PAGE, PAGE, 100 + i, &h[i]));
	ASSERT_FALSE(readable(mw, 0));
	ASSERT_FALSE(mapwatch_pending(mw));
	ASSERT_EQ(mapwatch_read_events(mw, ev, 4), 0);
	if (manual_changes) {
		ASSERT_OK(mapwatch_invalidate(mw, p, PAGE));
		ASSERT_OK(mapwatch_invalidate(mw, p + 4 * PAGE, PAGE));
	} else {
		ASSERT_OK(munmap(p, PAGE));
		ASSERT_OK(munmap(p + 4 * PAGE, PAGE));
	}
	ASSERT_TRUE(readable(mw, 2000));
	ASSERT_TRUE(wait_changed(&h[0], 2) && wait_changed(&h[2], 2));
	ASSERT_TRUE(mapwatch_pending(mw));
	ASSERT_EQ(mapwatch_read_events(mw, ev, 1), 1);	/* one at a time */
	ASSERT_EQ(ev[0].cookie, 100);
	ASSERT_EQ(ev[0].addr, (uintptr_t)p);
	ASSERT_EQ(ev[0].len, PAGE);
	ASSERT_TRUE(readable(mw, 0));			/* one more left */
	ASSERT_EQ(mapwatch_drain(mw, collect, &s), 1);
	ASSERT_EQ(s.n, 1);
	ASSERT_EQ(s.ev[0].cookie, 102);
	ASSERT_EQ(s.ev[0].addr, (uintptr_t)(p + 4 * PAGE));
	ASSERT_FALSE(readable(mw, 0));
	ASSERT_FALSE(mapwatch_pending(mw));
	ASSERT_FALSE(mapwatch_changed(&h[1]));
	ASSERT_EQ(mapwatch_drain(mw, collect, &s), 0);
}

TEST(events_drain_and_poll_manual)
{
	struct mapwatch *mw = manual(8);

	events_and_poll(mw, (char *)0x20000000, true);
	mapwatch_close(mw);
}

TEST(events_drain_and_poll_userfaultfd)
{
	struct mapwatch *mw = uffd(8);
	char *p = map_pages(8);

	events_and_poll(mw, p, false);
	mapwatch_close(mw);
}

/* The drain callback may call back into the monitor. */
static void rewatch(void *arg, const struct mapwatch_event *ev)
{
	struct mapwatch *mw = arg;
	struct mapwatch_handle h;

	ASSERT_OK(mapwatch_watch(mw, (void *)ev->addr, ev->len, ev->cookie + 1000, &h));
	ASSERT_OK(mapwatch_unwatch(mw, &h));
	ASSERT_OK(mapwatch_invalidate(mw, (void *)0x1, 1));
}

TEST(drain_callback_may_call_the_monitor)
{
	struct mapwatch *mw = manual(8);
	struct mapwatch_handle h;

	ASSERT_OK(mapwatch_watch(mw, (void *)0x1000, PAGE, 1, &h));
	ASSERT_OK(mapwatch_invalidate(mw, (void *)0x1000, PAGE));
	ASSERT_EQ(mapwatch_drain(mw, rewatch, mw), 1);
	mapwatch_close(mw);
}

TEST(counters)
{
	struct mapwatch *mw = manual(8);
	struct mapwatch_handle h[4];
	struct mapwatch_stats s;

	mapwatch_get_stats(mw, &s);
	ASSERT_EQ(s.watched + s.events + s.overflows + s.skipped, 0);
	for (int i = 0; i < 4; i++)
		ASSERT_OK(mapwatch_watch(mw, (void *)(0x1000UL * (i + 1)), PAGE, i, &h[i]));
	ASSERT_OK(mapwatch_invalidate(mw, (void *)0x1000, 2 * PAGE));	/* 2 */
	ASSERT_OK(mapwatch_invalidate(mw, (void *)0x1000, 2 * PAGE));	/* 0 more */
	ASSERT_OK(mapwatch_unwatch(mw, &h[3]));
	mapwatch_get_stats(mw, &s);
	ASSERT_EQ(s.watched, 1);
	ASSERT_EQ(s.events, 2);
	ASSERT_EQ(s.overflows, 0);
	ASSERT_EQ(s.skipped, 0);
	mapwatch_close(mw);
}

/* More changes than the ring holds: the rest come as one range event. */
TEST(ring_overflow_gives_a_range_event)
{
	enum { N = 5000 };
	struct mapwatch *mw = manual(N);
	static struct mapwatch_handle h[N];
	static struct mapwatch_event ev[N];
	struct mapwatch_stats s;
	char *base = (char *)0x40000000;
	int n = 0, r, range = 0, individual = 0;

	for (int i = 0; i < N; i++)
		ASSERT_OK(mapwatch_watch(mw, base + i * 2 * PAGE, PAGE, i, &h[i]));
	ASSERT_OK(mapwatch_invalidate(mw, base, 2 * N * PAGE));
	for (int i = 0; i < N; i++)
		ASSERT_TRUE(mapwatch_changed(&h[i]));	/* the truth stands */
	mapwatch_get_stats(mw, &s);
	ASSERT_EQ(s.events, N);
	ASSERT_GT(s.overflows, 0);
	tap_diag("%llu of %d events folded into a range event",
		 (unsigned long long)s.overflows, N);
	while ((r = mapwatch_read_events(mw, ev + n, N - n)) > 0)
		n += r;
	ASSERT_EQ(r, 0);
	for (int i = 0; i < n; i++) {
		if (ev[i].cookie == MAPWATCH_COOKIE_RANGE) {
			range++;
			/* Covers every watch that has no event of its own. */
			ASSERT_LE(ev[i].addr, (uintptr_t)(base + (N - s.overflows) * 2 * PAGE));
			ASSERT_GE(ev[i].addr + ev[i].len, (uintptr_t)(base + (N - 1) * 2 * PAGE + PAGE));
		} else {
			ASSERT_EQ(ev[i].cookie, individual);
			individual++;
		}
	}
	ASSERT_EQ(range, 1);
	ASSERT_EQ(individual + s.overflows, N);
	ASSERT_FALSE(mapwatch_pending(mw));
	ASSERT_FALSE(readable(mw, 0));
	mapwatch_close(mw);
}

/* --- batches ---------------------------------------------------------------- */

TEST(batch_watch_unwatch_loops_on_user_backends)
{
	struct mapwatch *mw = manual(3);
	struct mapwatch_watch_req req[5] = {
		{ .addr = (void *)0x1000, .len = PAGE, .cookie = 1 },
		{ .addr = (void *)0x2000, .len = 0, .cookie = 2 },	/* bad */
		{ .addr = (void *)0x3000, .len = PAGE, .cookie = MAPWATCH_COOKIE_RANGE },
		{ .addr = (void *)0x4000, .len = PAGE, .cookie = 4 },
		{ .addr = (void *)0x5000, .len = PAGE, .cookie = 5 },
	};
	struct mapwatch_handle h[4];
	int st[4];

	ASSERT_FALSE(mapwatch_features(mw) & MAPWATCH_F_BATCH);
	ASSERT_EQ(mapwatch_watch_batch(mw, req, 5), 3);
	ASSERT_EQ(req[0].status, 0);
	ASSERT_EQ(req[1].status, -EINVAL);
	ASSERT_EQ(req[2].status, -EINVAL);
	ASSERT_EQ(req[3].status, 0);
	ASSERT_EQ(req[4].status, 0);
	LOG_BAD_INPUT("mapwatch_watch_batch", "entry with len 0", "status -EINVAL");
	ASSERT_OK(mapwatch_invalidate(mw, (void *)0x4000, 1));
	ASSERT_TRUE(mapwatch_changed(&req[3].h));
	ASSERT_FALSE(mapwatch_changed(&req[0].h));
	h[0] = req[0].h;
	h[1] = req[3].h;
	h[2] = req[4].h;
	memset(&h[3], 0, sizeof(h[3]));
	ASSERT_EQ(mapwatch_unwatch_batch(mw, h, 4, st), 3);
	ASSERT_EQ(st[0], 0);
	ASSERT_EQ(st[1], 0);
	ASSERT_EQ(st[2], 0);
	ASSERT_EQ(st[3], -EINVAL);
	ASSERT_EQ(mapwatch_unwatch_batch(mw, h, 3, NULL), 3);	/* again: fine */
	mapwatch_close(mw);
}

/* --- threads ------------------------------------------------------------------ */

struct mt {
	struct mapwatch *mw;
	int id;
};

static void *watch_churn(void *arg)
{
	struct mt *t = arg;
	unsigned int seed = t->id;

	for (int i = 0; i < 20000; i++) {
		struct mapwatch_handle h;
		char *a = (char *)0x1000000 + (rand_r(&seed) % 64) * PAGE;

		if (mapwatch_watch(t->mw, a, PAGE, ((uint64_t)t->id << 32) | i, &h))
			continue;
		if (rand_r(&seed) % 2)
			mapwatch_invalidate(t->mw, a, 1);
		if (rand_r(&seed) % 4 == 0) {
			struct mapwatch_event ev[8];

			mapwatch_read_events(t->mw, ev, 8);
		}
		if (mapwatch_unwatch(t->mw, &h))
			abort();
	}
	return NULL;
}

TEST(threads_watch_unwatch_invalidate)
{
	struct mapwatch *mw = manual(64);
	struct mt t[8];
	pthread_t th[8];
	struct mapwatch_stats s;

	for (int i = 0; i < 8; i++) {
		t[i] = (struct mt){ mw, i + 1 };
		ASSERT_EQ(pthread_create(&th[i], NULL, watch_churn, &t[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	mapwatch_get_stats(mw, &s);
	ASSERT_EQ(s.watched, 0);
	ASSERT_GT(s.events, 0);
	mapwatch_close(mw);
}

/* --- fork ------------------------------------------------------------------- */

static int child_calls(struct mapwatch *mw, enum mapwatch_backend kind,
		       struct mapwatch_handle *h)
{
	struct mapwatch_handle h2;
	struct mapwatch_event ev[2];
	struct mapwatch_watch_req req = { .addr = (void *)0x1000, .len = 1, .cookie = 5 };
	struct seen s = { 0 };
	struct mapwatch *fresh;
	int bad = 0;

#define WANT_EIO(call) do {						\
		int r_ = (call);					\
		if (r_ != -EIO) {					\
			printf("# child: %s = %d, want -EIO\n", #call, r_); \
			bad++;						\
		}							\
	} while (0)
	WANT_EIO(mapwatch_watch(mw, (void *)0x1000, PAGE, 9, &h2));
	WANT_EIO(mapwatch_unwatch(mw, h));
	WANT_EIO(mapwatch_read_events(mw, ev, 2));
	WANT_EIO(mapwatch_drain(mw, collect, &s));
	WANT_EIO(mapwatch_invalidate(mw, (void *)0x1000, PAGE));
	WANT_EIO(mapwatch_fd(mw));
	WANT_EIO(mapwatch_watch_batch(mw, &req, 1));
	WANT_EIO(mapwatch_unwatch_batch(mw, h, 1, NULL));
	if (!strstr(mapwatch_strerror(mw), "fork")) {
		printf("# child: strerror says '%s'\n", mapwatch_strerror(mw));
		bad++;
	}
	/* Our copy goes without touching the parent's monitor. */
	mapwatch_close(mw);
	if (mapwatch_open(&fresh, kind, 4, NULL))
		return 100;
	mapwatch_close(fresh);
	return bad;
}

static void fork_case(enum mapwatch_backend b)
{
	struct mapwatch *mw = open_backend(b, 8);
	struct mapwatch_handle h;
	char *p = map_pages(4);
	pid_t pid;
	int st;

	ASSERT_OK(mapwatch_watch(mw, p, PAGE, 1, &h));
	fflush(stdout);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		/* mapwatch_backend() reads the copy; call it before close. */
		enum mapwatch_backend kind = mapwatch_backend(mw);
		struct mapwatch *fresh;
		int r;

		r = child_calls(mw, kind, &h);
		if (r == 0) {
			/* A fresh monitor really works in the child. */
			struct mapwatch_handle hc;
			char *q = map_pages(1);

			if (mapwatch_open(&fresh, kind, 4, NULL) ||
			    mapwatch_watch(fresh, q, PAGE, 3, &hc))
				r = 200;
			else if ((kind == MAPWATCH_BACKEND_MANUAL ?
				  mapwatch_invalidate(fresh, q, 1) : munmap(q, PAGE)) ||
				 !wait_changed(&hc, 2))
				r = 201;
			else
				mapwatch_close(fresh);
		}
		fflush(stdout);
		_exit(r);
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	/* The parent's monitor is intact (for userfaultfd: its reader thread
	 * still runs, the child's close did not stop it). */
	ASSERT_FALSE(mapwatch_changed(&h));
	if (b == MAPWATCH_BACKEND_MANUAL)
		ASSERT_OK(mapwatch_invalidate(mw, p, 1));
	else
		ASSERT_OK(munmap(p, PAGE));
	ASSERT_TRUE(wait_changed(&h, 2));
	ASSERT_TRUE(readable(mw, 2000));
	mapwatch_close(mw);
}

TEST(fork_child_gets_eio_manual)
{
	fork_case(MAPWATCH_BACKEND_MANUAL);
}

TEST(fork_child_gets_eio_userfaultfd)
{
#if defined(__SANITIZE_ADDRESS__)
	/*
	 * The child of a process whose reader thread may be inside malloc at
	 * fork.  Only under ASan has it hung (1 run in several, killed by the
	 * TAP alarm; the library's own locks are reset by its atfork
	 * handler): gcc 12's ASan runtime takes no allocator lock across
	 * fork, the likely cause.  The case runs in the plain lane.
	 */
	SKIP("hangs 1 run in several under gcc 12's ASan (fork with a thread in malloc); runs in the plain lane");
#endif
	fork_case(MAPWATCH_BACKEND_USERFAULTFD);
}

/*
 * A raw clone() (no glibc fork(): its atfork handlers never run, as with a
 * runtime that calls the system call itself) makes a child that must not
 * use the parent's watches either: EIO, and the parent's stay intact.
 */
TEST(raw_clone_child_gets_eio_manual)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 8);
	struct mapwatch_handle h, h2;
	char *p = map_pages(2);
	long pid;
	int st;

	ASSERT_OK(mapwatch_watch(mw, p, PAGE, 1, &h));
	fflush(stdout);
	pid = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		int r = mapwatch_watch(mw, p + PAGE, PAGE, 2, &h2);
		int u = mapwatch_unwatch(mw, &h);

		_exit(r == -EIO && u == -EIO ? 0 : 100);
	}
	ASSERT_EQ(waitpid((pid_t)pid, &st, 0), (pid_t)pid);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	ASSERT_FALSE(mapwatch_changed(&h));
	ASSERT_OK(mapwatch_invalidate(mw, p, 1));
	ASSERT_TRUE(mapwatch_changed(&h));
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
