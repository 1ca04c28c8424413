// SPDX-License-Identifier: GPL-2.0-only
/*
 * libmapwatch over the kernel backend (mapwatch.ko) in the test guest: the
 * monitor API (features, events, poll, counters, overflow, fork, errors),
 * the batched watch/unwatch over MONITOR_BATCH/UNMONITOR_BATCH with the
 * fallback when the module (or the environment) says no, and the cache
 * against real munmap/mremap: the stale-registration scenario and threads
 * racing real remaps.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "host/libtest.h"
#include "mapwatch_uapi.h"
#include "skipped_events.h"

static struct mapwatch *kernel(size_t max)
{
	return open_backend(MAPWATCH_BACKEND_KERNEL, max);
}

static char *map_pages(void *at, size_t n, int extra)
{
	char *p = mmap(at, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 0x5a, n * PAGE);
	return p;
}

static struct mapwatch_stats mstats(struct mapwatch *mw)
{
	struct mapwatch_stats s;

	mapwatch_get_stats(mw, &s);
	return s;
}

/* --- the monitor ------------------------------------------------------------ */

TEST(open_kernel_and_auto)
{
	struct mapwatch *mw = kernel(16), *a;
	const char *why = NULL;

	ASSERT_EQ(mapwatch_backend(mw), MAPWATCH_BACKEND_KERNEL);
	ASSERT_EQ(mapwatch_features(mw),
		  MAPWATCH_F_SYNC | MAPWATCH_F_ALL_CHANGES | MAPWATCH_F_BATCH);
	ASSERT_GE(mapwatch_fd(mw), 0);
	ASSERT_FALSE(mapwatch_pending(mw));
	ASSERT_EQ(mapwatch_open(&a, MAPWATCH_BACKEND_AUTO, 16, &why), 0);
	ASSERT_EQ(mapwatch_backend(a), MAPWATCH_BACKEND_KERNEL);
	mapwatch_close(a);
	mapwatch_close(mw);
}

TEST(open_errors_say_why)
{
	struct mapwatch *mw;
	struct mapwatch_probe probe = { .size = sizeof(probe) };
	const char *why = NULL;
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);

	ASSERT_GE(fd, 0);
	ASSERT_OK(ioctl(fd, MAPWATCH_IOCTL_PROBE, &probe));
	close(fd);
	ASSERT_BAD_INPUT("mapwatch_open", "max_watches above max_regions_limit (kernel)",
			 neg(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL,
					   probe.max_regions_limit + 1, &why)), ENOSPC);
	tap_diag("why: %s", why);
	ASSERT_TRUE(why && strstr(why, "max_regions_limit"));
}

TEST(watch_changed_unwatch)
{
	struct mapwatch *mw = kernel(16);
	struct mapwatch_handle h, h2;
	char *p = map_pages(NULL, 8, 0);

	ASSERT_OK(mapwatch_watch(mw, p, 2 * PAGE, 7, &h));
	ASSERT_OK(mapwatch_watch(mw, p + 4 * PAGE, PAGE, 8, &h2));
	ASSERT_EQ(mstats(mw).watched, 2);
	ASSERT_OK(munmap(p + PAGE, PAGE));
	ASSERT_TRUE(mapwatch_changed(&h));		/* before munmap returned */
	ASSERT_FALSE(mapwatch_changed(&h2));
	ASSERT_EQ(mstats(mw).watched, 1);
	ASSERT_EQ(mapwatch_unwatch(mw, &h), 0);		/* changed: fine */
	ASSERT_EQ(mapwatch_unwatch(mw, &h2), 0);
	ASSERT_EQ(mapwatch_unwatch(mw, &h2), 0);	/* twice: fine */
	ASSERT_EQ(mstats(mw).watched, 0);
	mapwatch_close(mw);
}

TEST(watch_errors)
{
	struct mapwatch *mw = kernel(2);
	struct mapwatch_handle h[3];
	struct mapwatch_handle bogus;

	ASSERT_OK(mapwatch_watch(mw, (void *)0x10000, PAGE, 1, &h[0]));
	ASSERT_BAD_INPUT("mapwatch_watch", "cookie already watched, another range (kernel)",
			 neg(mapwatch_watch(mw, (void *)0x20000, PAGE, 1, &h[1])), EBUSY);
	ASSERT_TRUE(strstr(mapwatch_strerror(mw), "already watched"));
	ASSERT_OK(mapwatch_watch(mw, (void *)0x20000, PAGE, 2, &h[1]));
	ASSERT_BAD_INPUT("mapwatch_watch", "all max_watches in use (kernel)",
			 neg(mapwatch_watch(mw, (void *)0x30000, PAGE, 3, &h[2])), ENOSPC);
	ASSERT_BAD_INPUT("mapwatch_watch", "len 0 (kernel)",
			 neg(mapwatch_watch(mw, (void *)0x30000, 0, 3, &h[2])), EINVAL);
	bogus = h[0];
	bogus.slot = 1000;		/* beyond max_regions */
	bogus.cookie = 99;
	ASSERT_BAD_INPUT("mapwatch_unwatch", "location beyond max_watches (kernel)",
			 neg(mapwatch_unwatch(mw, &bogus)), EINVAL);
	mapwatch_close(mw);
}

/* 1.2: a change the kernel cannot see (a device's memory behind the
 * range, a dma-buf that moved), reported through the module's INVALIDATE:
 * as synchronous as a munmap, with its event. */
TEST(invalidate_on_the_kernel_backend)
{
	struct mapwatch *mw = kernel(16);
	struct mapwatch_handle h, h2;
	struct mapwatch_event ev[4];
	struct mapwatch_invalidate a = { .size = sizeof(a), .length = PAGE };
	char *p = map_pages(NULL, 8, 0);
	int fd = mapwatch_fd(mw);
	pid_t pid;
	int st;

	ASSERT_OK(mapwatch_watch(mw, p, 2 * PAGE, 7, &h));
	ASSERT_OK(mapwatch_watch(mw, p + 4 * PAGE, PAGE, 8, &h2));
	ASSERT_EQ(mapwatch_invalidate(mw, p + PAGE, PAGE), 0);
	ASSERT_TRUE(mapwatch_changed(&h));		/* at return */
	ASSERT_FALSE(mapwatch_changed(&h2));
	ASSERT_EQ(mstats(mw).watched, 1);
	ASSERT_EQ(mapwatch_read_events(mw, ev, 4), 1);
	ASSERT_EQ(ev[0].cookie, 7);
	ASSERT_TRUE(ev[0].addr == (uintptr_t)p && ev[0].len == 2 * PAGE);
	ASSERT_EQ(p[PAGE], 0x5a);			/* the memory is untouched */
	ASSERT_EQ(mapwatch_invalidate(mw, p + 6 * PAGE, PAGE), 0);	/* none there */
	ASSERT_FALSE(mapwatch_pending(mw));
	ASSERT_EQ(mapwatch_unwatch(mw, &h), 0);
	/* The ioctl's own checks. */
	a.addr = (uintptr_t)p;
	a.flags = 1;
	ASSERT_BAD_INPUT("MAPWATCH_IOCTL_INVALIDATE", "flags",
			 ioctl(fd, MAPWATCH_IOCTL_INVALIDATE, &a), EINVAL);
	a.flags = 0;
	a.length = 0;
	ASSERT_BAD_INPUT("MAPWATCH_IOCTL_INVALIDATE", "length 0",
			 ioctl(fd, MAPWATCH_IOCTL_INVALIDATE, &a), EINVAL);
	a.addr = (uint64_t)-PAGE;
	a.length = 2 * PAGE;
	ASSERT_BAD_INPUT("MAPWATCH_IOCTL_INVALIDATE", "range wraps",
			 ioctl(fd, MAPWATCH_IOCTL_INVALIDATE, &a), EINVAL);
	a.size = 8;
	ASSERT_BAD_INPUT("MAPWATCH_IOCTL_INVALIDATE", "size below the struct",
			 ioctl(fd, MAPWATCH_IOCTL_INVALIDATE, &a), EINVAL);
	ASSERT_FALSE(mapwatch_changed(&h2));		/* nothing changed */
	/* From a child: EIO, the parent's watch stays. */
	a = (struct mapwatch_invalidate){ .size = sizeof(a),
		.addr = (uintptr_t)p, .length = 8 * PAGE };
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(ioctl(fd, MAPWATCH_IOCTL_INVALIDATE, &a) == -1 &&
		      errno == EIO ? 0 : 1);
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ASSERT_FALSE(mapwatch_changed(&h2));
	ASSERT_EQ(mapwatch_unwatch(mw, &h2), 0);
	mapwatch_close(mw);
	munmap(p, 8 * PAGE);
}

/* mapwatch_resize(): CONFIG_DATA again, allowed while idle. */
TEST(resize_on_the_kernel_backend)
{
	struct mapwatch *mw = kernel(2);
	struct mapwatch_handle h[4], old;
	struct mapwatch_probe probe = { .size = sizeof(probe) };
	char *p = map_pages(NULL, 4, 0);

	ASSERT_OK(mapwatch_watch(mw, p, PAGE, 1, &h[0]));
	ASSERT_OK(mapwatch_watch(mw, p + PAGE, PAGE, 2, &h[1]));
	ASSERT_BAD_INPUT("mapwatch_resize", "watches active (kernel)",
			 neg(mapwatch_resize(mw, 4096)), EBUSY);
	ASSERT_FALSE(mapwatch_changed(&h[0]));
	old = h[0];
	ASSERT_EQ(mapwatch_unwatch(mw, &h[0]), 0);
	ASSERT_EQ(mapwatch_unwatch(mw, &h[1]), 0);
	ASSERT_EQ(mapwatch_resize(mw, 4096), 0);	/* a larger area */
	ASSERT_TRUE(mapwatch_changed(&old));		/* the old one, readable */
	for (int i = 0; i < 4; i++)
		ASSERT_OK(mapwatch_watch(mw, p + i * PAGE, PAGE, 10 + i, &h[i]));
	ASSERT_EQ(mstats(mw).watched, 4);
	ASSERT_OK(munmap(p + 2 * PAGE, PAGE));
	ASSERT_TRUE(mapwatch_changed(&h[2]));
	ASSERT_FALSE(mapwatch_changed(&h[3]));
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(mapwatch_unwatch(mw, &h[i]), 0);
	ASSERT_BAD_INPUT("mapwatch_resize", "events pending (kernel)",
			 neg(mapwatch_resize(mw, 8)), EBUSY);
	{
		struct mapwatch_event ev[4];

		ASSERT_EQ(mapwatch_read_events(mw, ev, 4), 1);
	}
	ASSERT_OK(ioctl(mapwatch_fd(mw), MAPWATCH_IOCTL_PROBE, &probe));
	ASSERT_BAD_INPUT("mapwatch_resize", "above max_regions_limit (kernel)",
			 neg(mapwatch_resize(mw, probe.max_regions_limit + 1)), ENOSPC);
	ASSERT_EQ(mapwatch_resize(mw, 8), 0);		/* fits: the same area */
	ASSERT_OK(mapwatch_watch(mw, p, PAGE, 20, &h[0]));
	ASSERT_EQ(mapwatch_unwatch(mw, &h[0]), 0);
	mapwatch_close(mw);
	munmap(p, 4 * PAGE);
}

static void *kc_reg(void *ctx, void *addr, size_t len, int flags)
{
	return fake_reg(ctx, addr, len, flags);
}

/* Two caches over one kernel monitor: a munmap under B's entry is taken
 * out by A's progress; the cache's own invalidation goes through INVALIDATE. */
TEST(caches_share_a_kernel_monitor)
{
	struct mapwatch *mw = kernel(64);
	struct fake fa, fb;
	struct mapwatch_cache_ops oa = { .reg = kc_reg, .dereg = fake_dereg, .ctx = &fa };
	struct mapwatch_cache_ops ob = { .reg = kc_reg, .dereg = fake_dereg, .ctx = &fb };
	struct mapwatch_cache *a, *b;
	char *p = map_pages(NULL, 4, 0);

	fake_init(&fa);
	fake_init(&fb);
	a = mapwatch_cache_create(mw, &oa, NULL);
	b = mapwatch_cache_create(mw, &ob, NULL);
	ASSERT_TRUE(a && b);
	mapwatch_cache_put(a, mapwatch_cache_get(a, p, PAGE, 0));
	mapwatch_cache_put(b, mapwatch_cache_get(b, p + PAGE, PAGE, 0));
	mapwatch_cache_put(b, mapwatch_cache_get(b, p + 2 * PAGE, PAGE, 0));
	ASSERT_OK(munmap(p + PAGE, PAGE));
	ASSERT_EQ(mapwatch_cache_progress(a), 1);
	ASSERT_EQ(atomic_load(&fb.ndereg), 1);		/* B's, by A */
	ASSERT_EQ(mapwatch_cache_invalidate(b, MAPWATCH_MEM_HOST, 0, p + 2 * PAGE,
					    PAGE), 0);
	ASSERT_EQ(atomic_load(&fb.ndereg), 2);
	ASSERT_EQ(atomic_load(&fa.ndereg), 0);
	mapwatch_cache_destroy(a);
	mapwatch_cache_destroy(b);
	ASSERT_EQ(atomic_load(&fa.ndereg), 1);
	mapwatch_close(mw);
	munmap(p, 4 * PAGE);
}

TEST(events_poll_counters)
{
	struct mapwatch *mw = kernel(16);
	struct mapwatch_handle h[3];
	struct mapwatch_event ev[4];
	struct seen s = { 0 };
	char *p = map_pages(NULL, 8, 0);
	uint64_t reported = 0;

	for (int i = 0; i < 3; i++)
		ASSERT_OK(mapwatch_watch(mw, p + 2 * i * PAGE, PAGE, 100 + i, &h[i]));
	ASSERT_FALSE(readable(mw, 0));
	ASSERT_EQ(mapwatch_read_events(mw, ev, 4), 0);
	ASSERT_OK(mprotect(p, 8 * PAGE, PROT_READ));	/* skipped, counted */
	if (!mw_skips("protection_vma")) {
		/* Not skipped on this kernel (5.10): every region reported
		 * once, in address order, nothing counted; watched again. */
		ASSERT_TRUE(readable(mw, 0));
		ASSERT_EQ(mapwatch_read_events(mw, ev, 4), 3);
		for (int i = 0; i < 3; i++) {
			ASSERT_EQ(ev[i].cookie, 100 + i);
			ASSERT_EQ(ev[i].addr, (uintptr_t)p + 2 * i * PAGE);
			ASSERT_OK(mapwatch_watch(mw, p + 2 * i * PAGE, PAGE,
						 100 + i, &h[i]));
		}
		ASSERT_EQ(mstats(mw).skipped, 0);
		reported = 3;
	}
	ASSERT_OK(mprotect(p, 8 * PAGE, PROT_READ | PROT_WRITE));
	if (!reported) {
		ASSERT_FALSE(readable(mw, 0));
		ASSERT_GT(mstats(mw).skipped, 0);
	} else {
		ASSERT_EQ(mapwatch_read_events(mw, ev, 4), 3);
		for (int i = 0; i < 3; i++)
			ASSERT_OK(mapwatch_watch(mw, p + 2 * i * PAGE, PAGE,
						 100 + i, &h[i]));
		ASSERT_EQ(mstats(mw).skipped, 0);
		reported += 3;
	}
	ASSERT_FALSE(readable(mw, 0));
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_OK(madvise(p + 4 * PAGE, PAGE, MADV_DONTNEED));
	ASSERT_TRUE(mapwatch_pending(mw));
	ASSERT_TRUE(readable(mw, 0));
	ASSERT_EQ(mapwatch_read_events(mw, ev, 1), 1);
	ASSERT_EQ(ev[0].cookie, 100);
	ASSERT_EQ(ev[0].addr, (uintptr_t)p);
	ASSERT_EQ(ev[0].len, PAGE);
	ASSERT_EQ(mapwatch_drain(mw, collect, &s), 1);
	ASSERT_EQ(s.ev[0].cookie, 102);
	ASSERT_FALSE(readable(mw, 0));
	ASSERT_FALSE(mapwatch_pending(mw));
	ASSERT_EQ(mstats(mw).events, 2 + reported);
	ASSERT_EQ(mstats(mw).watched, 1);
	ASSERT_EQ(mstats(mw).overflows, 0);
	mapwatch_close(mw);
}

/* Past the module's per-fd event cap: the rest as one range event. */
TEST(overflow_gives_a_range_event)
{
	static const char *param = "/sys/module/mapwatch/parameters/max_pending_events";
	enum { N = 40, CAP = 8 };
	struct mapwatch *mw = kernel(N);
	struct mapwatch_handle h[N];
	struct mapwatch_event ev[N];
	char old[64] = "", *p = map_pages(NULL, 2 * N, 0);
	int n = 0, r, range = 0;
	FILE *f = fopen(param, "r");

	if (!f || !fgets(old, sizeof(old), f))
		SKIP("cannot read %s", param);
	fclose(f);
	f = fopen(param, "w");
	if (!f)
		SKIP("cannot write %s (not root?)", param);
	fprintf(f, "%d\n", CAP);
	fclose(f);
	for (int i = 0; i < N; i++)
		ASSERT_OK(mapwatch_watch(mw, p + 2 * i * PAGE, PAGE, i, &h[i]));
	ASSERT_OK(munmap(p, 2 * N * PAGE));
	f = fopen(param, "w");
	fputs(old, f);
	fclose(f);
	for (int i = 0; i < N; i++)
		ASSERT_TRUE(mapwatch_changed(&h[i]));
	ASSERT_GT(mstats(mw).overflows, 0);
	while ((r = mapwatch_read_events(mw, ev + n, N - n)) > 0)
		n += r;
	for (int i = 0; i < n; i++)
		range += ev[i].cookie == MAPWATCH_COOKIE_RANGE;
	tap_diag("%d events read, %d range, %llu overflows", n, range,
		 (unsigned long long)mstats(mw).overflows);
	ASSERT_EQ(range, 1);
	ASSERT_EQ(n, CAP + 1);
	mapwatch_close(mw);
}

TEST(fork_child_gets_eio_and_opens_a_fresh_monitor)
{
	struct mapwatch *mw = kernel(8);
	struct mapwatch_handle h;
	char *p = map_pages(NULL, 2, 0);
	pid_t pid;
	int st;

	ASSERT_OK(mapwatch_watch(mw, p, PAGE, 1, &h));
	fflush(stdout);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		struct mapwatch_handle h2;
		struct mapwatch_event ev;
		struct mapwatch_watch_req req = { .addr = p, .len = PAGE, .cookie = 2 };
		struct mapwatch *fresh;
		int bad = 0;

		bad += mapwatch_watch(mw, p, PAGE, 2, &h2) != -EIO;
		bad += mapwatch_unwatch(mw, &h) != -EIO;
		bad += mapwatch_read_events(mw, &ev, 1) != -EIO;
		bad += mapwatch_fd(mw) != -EIO;
		bad += mapwatch_watch_batch(mw, &req, 1) != -EIO;
		bad += mapwatch_unwatch_batch(mw, &h, 1, NULL) != -EIO;
		mapwatch_close(mw);
		/* Our own monitor sees our own munmap. */
		if (mapwatch_open(&fresh, MAPWATCH_BACKEND_KERNEL, 4, NULL) ||
		    mapwatch_watch(fresh, p + PAGE, PAGE, 1, &h2) ||
		    munmap(p + PAGE, PAGE) || !mapwatch_changed(&h2))
			bad += 100;
		else
			mapwatch_close(fresh);
		_exit(bad);
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	ASSERT_FALSE(mapwatch_changed(&h));	/* the child changed nothing */
	ASSERT_EQ(mstats(mw).watched, 1);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_TRUE(mapwatch_changed(&h));
	mapwatch_close(mw);
}

/* --- batches ------------------------------------------------------------------ */

enum { NB = 300 };	/* more than one ioctl's worth (128) */

static void batch_roundtrip(struct mapwatch *mw)
{
	static struct mapwatch_watch_req req[NB];
	static struct mapwatch_handle h[NB];
	static int st[NB];
	char *p = map_pages(NULL, NB, 0);
	int ok = 0;

	for (int i = 0; i < NB; i++)
		req[i] = (struct mapwatch_watch_req){
			.addr = p + i * PAGE, .len = PAGE, .cookie = 1000 + i,
		};
	req[10].len = 0;				/* refused by the library */
	req[200].cookie = MAPWATCH_COOKIE_RANGE;	/* refused by the library */
	req[150].cookie = 1000;				/* busy: another range */
	ASSERT_EQ(mapwatch_watch_batch(mw, req, NB), NB - 3);
	for (int i = 0; i < NB; i++) {
		if (i == 10 || i == 200)
			ASSERT_EQ(req[i].status, -EINVAL);
		else if (i == 150)
			ASSERT_EQ(req[i].status, -EBUSY);
		else
			ASSERT_EQ(req[i].status, 0);
		if (!req[i].status)
			ASSERT_FALSE(mapwatch_changed(&req[i].h));
	}
	ASSERT_EQ(mstats(mw).watched, NB - 3);
	/* The handles are real: munmap changes exactly the ones it should. */
	ASSERT_OK(munmap(p + 20 * PAGE, 5 * PAGE));
	for (int i = 0; i < NB; i++)
		if (!req[i].status)
			ASSERT_EQ(mapwatch_changed(&req[i].h), i >= 20 && i < 25);
	for (int i = 0; i < NB; i++) {
		h[i] = req[i].h;
		if (req[i].status)
			memset(&h[i], 0, sizeof(h[i]));
	}
	ASSERT_EQ(mapwatch_unwatch_batch(mw, h, NB, st), NB - 3);
	for (int i = 0; i < NB; i++) {
		ASSERT_EQ(st[i], req[i].status ? -EINVAL : 0);
		ok += !st[i];
	}
	ASSERT_EQ(ok, NB - 3);
	ASSERT_EQ(mstats(mw).watched, 0);
	/* Again: already gone is fine. */
	ASSERT_EQ(mapwatch_unwatch_batch(mw, h, NB, st), NB - 3);
	ASSERT_OK(munmap(p, NB * PAGE));
}

TEST(batch_with_the_batch_ioctls)
{
	struct mapwatch *mw = kernel(NB);

	ASSERT_TRUE(mapwatch_features(mw) & MAPWATCH_F_BATCH);
	batch_roundtrip(mw);
	mapwatch_close(mw);
}

TEST(batch_fallback_when_disabled)
{
	struct mapwatch *mw;

	setenv("MAPWATCH_NO_BATCH", "1", 1);
	mw = kernel(NB);
	ASSERT_FALSE(mapwatch_features(mw) & MAPWATCH_F_BATCH);
	batch_roundtrip(mw);
	mapwatch_close(mw);
}

/* A module without the extension: the probe fails, the loop is used. */
TEST(batch_fallback_when_the_probe_fails)
{
	struct mapwatch *mw;

	deny_syscall(SYS_ioctl, MAPWATCH_IOCTL_PROBE, ENOTTY);
	mw = kernel(NB);
	ASSERT_FALSE(mapwatch_features(mw) & MAPWATCH_F_BATCH);
	batch_roundtrip(mw);
	mapwatch_close(mw);
}

/* Proof of which ioctls each path uses: the one it must not use fails. */
TEST(batch_path_makes_no_single_monitor_calls)
{
	struct mapwatch *mw = kernel(NB);

	deny_syscall(SYS_ioctl, KDREG2_IOCTL_MONITOR, ENOTTY);
	deny_syscall(SYS_ioctl, KDREG2_IOCTL_UNMONITOR, ENOTTY);
	batch_roundtrip(mw);
	mapwatch_close(mw);
}

TEST(fallback_path_makes_no_batch_calls)
{
	struct mapwatch *mw;

	setenv("MAPWATCH_NO_BATCH", "1", 1);
	mw = kernel(NB);
	deny_syscall(SYS_ioctl, MAPWATCH_IOCTL_MONITOR_BATCH, ENOTTY);
	deny_syscall(SYS_ioctl, MAPWATCH_IOCTL_UNMONITOR_BATCH, ENOTTY);
	batch_roundtrip(mw);
	mapwatch_close(mw);
}

/* --- the cache over the kernel backend ----------------------------------------- */

static uint64_t tag_content(struct fake *f, uintptr_t addr, size_t len)
{
	(void)f;
	(void)len;
	return *(volatile uint64_t *)addr;
}

/*
 * The stale-registration scenario: register a buffer through the cache,
 * munmap it, map new memory at the same address; the next get misses and
 * registers the new memory.  Nothing but the module tells the cache.
 */
TEST(stale_registration_scenario_kernel)
{
	struct mapwatch *mw = kernel(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e;
	struct freg *old;
	struct mapwatch_cache_stats s;
	char *p, *q;

	fake_init(&f);
	f.tag = tag_content;
	c = fake_cache(mw, &f, 0, 0);
	p = map_pages(NULL, 4, 0);
	*(uint64_t *)p = 0x1111;
	e = mapwatch_cache_get(c, p, 4 * PAGE, 0);
	ASSERT_TRUE(e != NULL);
	old = reg_of(e);
	ASSERT_EQ(old->tag, 0x1111);
	mapwatch_cache_put(c, e);
	e = mapwatch_cache_get(c, p + PAGE, PAGE, 0);	/* a covering hit */
	ASSERT_TRUE(reg_of(e) == old);
	mapwatch_cache_put(c, e);

	ASSERT_OK(munmap(p, 4 * PAGE));
	q = map_pages(p, 4, MAP_FIXED_NOREPLACE);
	ASSERT_TRUE(q == p);
	*(uint64_t *)q = 0x2222;

	e = mapwatch_cache_get(c, q, 4 * PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(reg_of(e) != old);
	ASSERT_EQ(reg_of(e)->tag, 0x2222);
	ASSERT_TRUE(old->dead);
	mapwatch_cache_get_stats(c, &s);
	ASSERT_EQ(s.misses, 2);
	ASSERT_EQ(s.registrations, 2);
	ASSERT_EQ(s.invalidations, 1);
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

TEST(held_entry_invalidated_by_munmap_dereg_at_last_put)
{
	struct mapwatch *mw = kernel(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e, *e2;
	struct freg *r;
	char *p = map_pages(NULL, 4, 0);

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	e = mapwatch_cache_get(c, p, 4 * PAGE, 0);
	ASSERT_TRUE(e != NULL);
	r = reg_of(e);
	ASSERT_OK(madvise(p + 3 * PAGE, PAGE, MADV_DONTNEED));
	ASSERT_TRUE(mapwatch_cache_entry_changed(e));
	e2 = mapwatch_cache_get(c, p, 4 * PAGE, 0);
	ASSERT_TRUE(e2 != NULL && e2 != e);
	ASSERT_FALSE(r->dead);
	mapwatch_cache_put(c, e);
	ASSERT_TRUE(r->dead);
	mapwatch_cache_put(c, e2);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/*
 * Threads get/put while another thread replaces buffers with new memory
 * holding a new version number (mremap of a prepared mapping onto the
 * buffer: the address is never unmapped, the pages change).  An entry is
 * never older than the last replacement finished before its get began.
 */
enum { RB = 16, RPAGES = 4, RWORKERS = 4 };

static struct {
	struct mapwatch_cache *c;
	char *base;
	_Atomic uint64_t done[RB];
	_Atomic bool stop;
	_Atomic long gets, stale, fails;
} rr;

/*
 * The fake registration reads the buffer's version the way ibv_reg_mr
 * reaches its pages: through get_user_pages under the mmap lock
 * (process_vm_readv), so it waits for a remap in flight, as a real
 * registration does.  A plain load would not: through a TLB entry not yet
 * flushed it can still see the old page after the kernel has cleared the
 * page table entry and the module has reported the change (see
 * watch_placed_during_a_remap_in_flight).
 */
static uint64_t tag_version(struct fake *f, uintptr_t addr, size_t len)
{
	uint64_t v = 0;
	struct iovec local = { &v, sizeof(v) };
	struct iovec remote = { (void *)(addr & ~(RPAGES * PAGE - 1)), sizeof(v) };

	(void)f;
	(void)len;
	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != sizeof(v))
		abort();
	return v;
}

static void *rr_worker(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg;

	while (!atomic_load(&rr.stop)) {
		unsigned int b = rand_r(&seed) % RB;
		size_t off = (rand_r(&seed) % RPAGES) * PAGE;
		size_t len = 1 + rand_r(&seed) % (RPAGES * PAGE - off);
		uint64_t v0 = atomic_load(&rr.done[b]);
		struct mapwatch_cache_entry *e =
			mapwatch_cache_get(rr.c, rr.base + b * RPAGES * PAGE + off, len, 0);
		struct freg *r;

		if (!e) {
			atomic_fetch_add(&rr.fails, 1);
			continue;
		}
		r = mapwatch_cache_entry_reg(e);
		if (r->tag < v0 || r->dead)
			atomic_fetch_add(&rr.stale, 1);
		mapwatch_cache_put(rr.c, e);
		atomic_fetch_add(&rr.gets, 1);
	}
	return NULL;
}

static void *rr_remapper(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg;
	uint64_t v = 1;

	while (!atomic_load(&rr.stop)) {
		unsigned int b = rand_r(&seed) % RB;
		char *dst = rr.base + b * RPAGES * PAGE;
		char *n = mmap(NULL, RPAGES * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (n == MAP_FAILED)
			abort();
		*(uint64_t *)n = ++v;
		if (mremap(n, RPAGES * PAGE, RPAGES * PAGE,
			   MREMAP_MAYMOVE | MREMAP_FIXED, dst) != dst)
			abort();
		atomic_store(&rr.done[b], v);
		usleep(rand_r(&seed) % 200);
	}
	return NULL;
}

TEST(threads_race_real_remaps)
{
	struct mapwatch *mw = kernel(1024);
	struct fake f;
	pthread_t t[RWORKERS + 1];
	double secs = getenv("RACE_SECONDS") ? atof(getenv("RACE_SECONDS")) : 3;

	fake_init(&f);
	f.tag = tag_version;
	rr.c = fake_cache(mw, &f, 32, 0);
	/* Buffers aligned to their size, so a page finds its buffer's head. */
	rr.base = mmap(NULL, (RB + 1) * RPAGES * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(rr.base != MAP_FAILED);
	rr.base = (char *)(((uintptr_t)rr.base + RPAGES * PAGE - 1) &
			   ~(RPAGES * PAGE - 1));
	memset(rr.base, 0, RB * RPAGES * PAGE);
	for (int i = 0; i < RWORKERS; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, rr_worker, (void *)(uintptr_t)(i + 1)), 0);
	ASSERT_EQ(pthread_create(&t[RWORKERS], NULL, rr_remapper, (void *)7), 0);
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&rr.stop, true);
	for (int i = 0; i <= RWORKERS; i++)
		pthread_join(t[i], NULL);
	tap_diag("%ld gets, %ld registrations, %ld stale, %ld failed",
		 (long)rr.gets, (long)f.nreg, (long)rr.stale, (long)rr.fails);
	ASSERT_EQ(rr.stale, 0);
	ASSERT_EQ(rr.fails, 0);
	ASSERT_GT(rr.gets, 100);
	mapwatch_cache_destroy(rr.c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/*
 * A watch placed while another thread's mremap replaces the memory: if the
 * page tables show the memory change after the watch is placed, the watch
 * says so.  The memory is read through the page tables (process_vm_readv,
 * get_user_pages under the mmap lock, as a pinning registration does): a
 * plain load may still hit a TLB entry of the old page after the kernel
 * has cleared the page table entry and reported the change (the flush can
 * come after the notifier's end), which would make a correct module look
 * wrong.  tests/guest/invalidation tests the module's side of this in
 * depth; this is the library's view.
 */
static char *win_dst;
static _Atomic bool win_stop;

static void *win_remapper(void *arg)
{
	uint64_t v = 1;

	(void)arg;
	while (!atomic_load(&win_stop)) {
		char *n = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (n == MAP_FAILED)
			abort();
		*(uint64_t *)n = ++v;
		if (mremap(n, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED,
			   win_dst) != win_dst)
			abort();
	}
	return NULL;
}

static uint64_t read_through_page_tables(const void *p)
{
	uint64_t v = 0;
	struct iovec local = { &v, sizeof(v) }, remote = { (void *)p, sizeof(v) };

	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != sizeof(v))
		abort();
	return v;
}

TEST(watch_placed_during_a_remap_in_flight)
{
	struct mapwatch *mw = kernel(16);
	pthread_t t;
	long rounds = 0, missed = 0, changed = 0;
	double end;

	win_dst = map_pages(NULL, 4, 0);
	ASSERT_EQ(pthread_create(&t, NULL, win_remapper, NULL), 0);
	end = now_s() + 4;
	while (now_s() < end) {
		struct mapwatch_handle h;
		uint64_t t1, t2;
		struct mapwatch_event ev[8];

		ASSERT_OK(mapwatch_watch(mw, win_dst, 4 * PAGE, rounds + 1, &h));
		t1 = read_through_page_tables(win_dst);
		for (volatile int i = 0; i < 2000; i++)
			;
		t2 = read_through_page_tables(win_dst);
		if (t2 != t1 && !mapwatch_changed(&h))
			missed++;
		changed += mapwatch_changed(&h);
		mapwatch_unwatch(mw, &h);
		while (mapwatch_read_events(mw, ev, 8) > 0)
			;
		rounds++;
	}
	atomic_store(&win_stop, true);
	pthread_join(t, NULL);
	tap_diag("%ld rounds, %ld changed, %ld with the page replaced after the "
		 "watch and the watch unchanged", rounds, changed, missed);
	ASSERT_GT(changed, 0);
	ASSERT_EQ(missed, 0);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
