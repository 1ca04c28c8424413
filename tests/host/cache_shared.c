// SPDX-License-Identifier: GPL-2.0-only
/*
 * Several caches over one monitor (one per protection domain, as libfabric
 * shares one monitor between its domains' caches: ofi_monitor_notify()
 * walks them), and a monitor that grows (mapwatch_resize()).  MANUAL
 * monitor, and userfaultfd where the host allows it.
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "host/libtest.h"

#define BASE ((char *)0x100000000000UL)

struct counts {
	struct fake f;
	_Atomic int invalidated;
};

static void *c_reg(void *ctx, void *addr, size_t len, int flags)
{
	return fake_reg(&((struct counts *)ctx)->f, addr, len, flags);
}

static void c_dereg(void *ctx, void *reg)
{
	fake_dereg(&((struct counts *)ctx)->f, reg);
}

static void c_invalidate(void *ctx, struct mapwatch_cache_entry *e)
{
	(void)e;
	atomic_fetch_add(&((struct counts *)ctx)->invalidated, 1);
}

static struct mapwatch_cache *counted(struct mapwatch *mw, struct counts *k)
{
	struct mapwatch_cache_ops ops = {
		.reg = c_reg, .dereg = c_dereg, .invalidate = c_invalidate,
		.ctx = k,
	};
	struct mapwatch_cache *c;

	memset(k, 0, sizeof(*k));
	c = mapwatch_cache_create(mw, &ops, NULL);
	ASSERT_TRUE(c != NULL);
	return c;
}

static uint64_t invalidations(struct mapwatch_cache *c)
{
	struct mapwatch_cache_stats s;

	ASSERT_EQ(mapwatch_cache_get_stats(c, &s), 0);
	return s.invalidations;
}

/* One cache's progress releases the other's idle memory: before 1.2 the
 * events of B's watches, read by A, were dropped, and B's registration
 * stayed pinned until B itself looked the range up. */
TEST(one_progress_serves_every_cache_of_the_monitor)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct counts ka, kb;
	struct mapwatch_cache *a = counted(mw, &ka), *b = counted(mw, &kb);
	struct mapwatch_cache_entry *e;

	mapwatch_cache_put(a, mapwatch_cache_get(a, BASE, PAGE, 0));
	mapwatch_cache_put(b, mapwatch_cache_get(b, BASE, PAGE, 0));
	mapwatch_cache_put(b, mapwatch_cache_get(b, BASE + 4 * PAGE, PAGE, 0));
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, PAGE), 0);
	ASSERT_EQ(mapwatch_cache_progress(a), 2);
	tap_diag("after A's progress: A dereg %ld, B dereg %ld, B invalidated %d",
		 atomic_load(&ka.f.ndereg), atomic_load(&kb.f.ndereg),
		 atomic_load(&kb.invalidated));
	EXPECT_EQ(atomic_load(&ka.f.ndereg), 1);
	EXPECT_EQ(atomic_load(&kb.f.ndereg), 1);
	EXPECT_EQ(atomic_load(&kb.invalidated), 1);
	EXPECT_EQ(invalidations(b), 1);
	ASSERT_EQ(mapwatch_cache_progress(b), 0);	/* nothing left */
	/* B's unchanged entry still hits. */
	e = mapwatch_cache_get(b, BASE + 4 * PAGE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(b, e);
	EXPECT_EQ(atomic_load(&kb.f.nreg), 2);
	/* A gone: B's events still find B, and A's are dropped. */
	mapwatch_cache_put(a, mapwatch_cache_get(a, BASE + 8 * PAGE, PAGE, 0));
	mapwatch_cache_destroy(a);
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, 16 * PAGE), 0);
	ASSERT_EQ(mapwatch_cache_progress(b), 1);
	EXPECT_EQ(atomic_load(&kb.f.ndereg), 2);
	mapwatch_cache_destroy(b);
	mapwatch_close(mw);
}

/* A range event (the monitor's queue overflowed) concerns every cache. */
TEST(range_event_reaches_every_cache)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 8192);
	struct counts ka, kb;
	struct mapwatch_cache *a = counted(mw, &ka), *b = counted(mw, &kb);

	/* More changes than the manual ring holds (4096): folded. */
	for (int i = 0; i < 2500; i++) {
		mapwatch_cache_put(a, mapwatch_cache_get(a, BASE + 2 * i * PAGE, PAGE, 0));
		mapwatch_cache_put(b, mapwatch_cache_get(b, BASE + (2 * i + 1) * PAGE,
							 PAGE, 0));
	}
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, 5000 * PAGE), 0);
	ASSERT_GT(mapwatch_cache_progress(b), 0);
	EXPECT_EQ(atomic_load(&ka.f.ndereg), 2500);
	EXPECT_EQ(atomic_load(&kb.f.ndereg), 2500);
	mapwatch_cache_destroy(a);
	mapwatch_cache_destroy(b);
	mapwatch_close(mw);
}

struct churn {
	struct mapwatch *mw;
	_Atomic bool stop;
	_Atomic long rounds;
};

/* Caches come and go while another one routes the monitor's events to
 * them: a destroy waits for a router applying its events (TSan lane). */
static void *come_and_go(void *arg)
{
	struct churn *x = arg;

	while (!atomic_load(&x->stop)) {
		struct counts k;
		struct mapwatch_cache *c = counted(x->mw, &k);

		for (int i = 0; i < 8; i++)
			mapwatch_cache_put(c, mapwatch_cache_get(c, BASE + i * PAGE,
								 PAGE, 0));
		mapwatch_cache_destroy(c);
		if (atomic_load(&k.f.nreg) != atomic_load(&k.f.ndereg))
			return (void *)1;
		atomic_fetch_add(&x->rounds, 1);
	}
	return NULL;
}

TEST(caches_come_and_go_while_events_are_routed)
{
	struct churn x = { .mw = open_backend(MAPWATCH_BACKEND_MANUAL, 1024) };
	struct counts k;
	struct mapwatch_cache *a = counted(x.mw, &k);
	pthread_t t[2];
	void *ret;
	long routed = 0;

	for (int i = 0; i < 2; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, come_and_go, &x), 0);
	for (int i = 0; i < 3000 || atomic_load(&x.rounds) < 50; i++) {
		mapwatch_cache_put(a, mapwatch_cache_get(a, BASE + 64 * PAGE, PAGE, 0));
		ASSERT_EQ(mapwatch_invalidate(x.mw, BASE, 65 * PAGE), 0);
		routed += mapwatch_cache_progress(a);
	}
	atomic_store(&x.stop, true);
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(pthread_join(t[i], &ret), 0);
		ASSERT_TRUE(ret == NULL);
	}
	tap_diag("%ld caches created and destroyed, %ld events routed",
		 atomic_load(&x.rounds), routed);
	ASSERT_GT(routed, 3000);
	mapwatch_cache_destroy(a);
	ASSERT_EQ(atomic_load(&k.f.nreg), atomic_load(&k.f.ndereg));
	mapwatch_close(x.mw);
}

/* --- F7: two routers, three caches ---------------------------------------- */

uint64_t mw_cache_test_applied(struct mapwatch_cache *c);
uint64_t mw_cache_test_reads(struct mapwatch_cache *c);

/* The batches read by the monitor's caches, in sum (every read in these
 * tests is a cache's). */
static uint64_t batches_read(struct mapwatch_cache *a, struct mapwatch_cache *b,
			     struct mapwatch_cache *t)
{
	return mw_cache_test_reads(a) + mw_cache_test_reads(b) +
	       mw_cache_test_reads(t);
}

struct two_routers {
	struct mapwatch *mw;
	struct mapwatch_cache *a, *b, *t;
	struct counts kt;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stage;		/* 1: router 1 inside T; 2: router 2 done */
	bool timed_out;
};

static struct two_routers *routers;

static void wait_stage(struct two_routers *x, int stage)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;		/* a watchdog, not a timing assertion */
	pthread_mutex_lock(&x->lock);
	while (x->stage < stage && !x->timed_out)
		if (pthread_cond_timedwait(&x->cond, &x->lock, &ts))
			x->timed_out = true;
	pthread_mutex_unlock(&x->lock);
}

static void set_stage(struct two_routers *x, int stage)
{
	pthread_mutex_lock(&x->lock);
	x->stage = stage;
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
}

/* T's invalidate callback runs inside a router's application of a batch
 * to T: the first one holds router 1 there until router 2 has routed its
 * own batch to T. */
static void t_invalidate(void *ctx, struct mapwatch_cache_entry *e)
{
	(void)ctx;
	(void)e;
	if (atomic_fetch_add(&routers->kt.invalidated, 1) == 0) {
		set_stage(routers, 1);
		wait_stage(routers, 2);
	}
}

static void *router2(void *arg)
{
	struct two_routers *x = arg;

	wait_stage(x, 1);
	if (mapwatch_invalidate(x->mw, BASE + 8 * PAGE, PAGE))
		return (void *)1;
	if (mapwatch_cache_progress(x->b) != 1)
		return (void *)2;
	set_stage(x, 2);
	return NULL;
}

/*
 * F7: a router marked the caches it had served in one field per cache
 * (routed), which another router overwrites: router 1 then applied its
 * batch to T again, and two routers out of phase can keep doing so.  Each
 * router must apply its batch to each cache exactly once: both batches
 * concern T, so T is applied to once per batch read, twice (re-applying
 * changes nothing T's callbacks could count: the entry is gone).
 */
TEST(two_routers_apply_each_batch_once_per_cache)
{
	static struct two_routers x = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	struct mapwatch_cache_ops ops = {
		.reg = c_reg, .dereg = c_dereg, .invalidate = t_invalidate,
		.ctx = &x.kt,
	};
	struct counts ka, kb;
	uint64_t reads, applied;
	pthread_t th;
	void *ret;

	routers = &x;
	x.mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	x.a = counted(x.mw, &ka);
	x.b = counted(x.mw, &kb);
	x.t = mapwatch_cache_create(x.mw, &ops, NULL);
	ASSERT_TRUE(x.t != NULL);
	mapwatch_cache_put(x.t, mapwatch_cache_get(x.t, BASE, PAGE, 0));
	mapwatch_cache_put(x.t, mapwatch_cache_get(x.t, BASE + 8 * PAGE, PAGE, 0));
	ASSERT_EQ(pthread_create(&th, NULL, router2, &x), 0);
	ASSERT_EQ(mapwatch_invalidate(x.mw, BASE, PAGE), 0);
	ASSERT_EQ(mapwatch_cache_progress(x.a), 1);	/* router 1 */
	ASSERT_EQ(pthread_join(th, &ret), 0);
	ASSERT_TRUE(ret == NULL);
	ASSERT_FALSE(x.timed_out);
	reads = batches_read(x.a, x.b, x.t);
	applied = mw_cache_test_applied(x.t);
	tap_diag("T: %d invalidated; %llu batches read, %llu applied to T",
		 atomic_load(&x.kt.invalidated), (unsigned long long)reads,
		 (unsigned long long)applied);
	EXPECT_EQ(atomic_load(&x.kt.invalidated), 2);
	EXPECT_EQ(reads, 2);
	EXPECT_EQ(applied, reads);
	mapwatch_cache_destroy(x.a);
	mapwatch_cache_destroy(x.b);
	mapwatch_cache_destroy(x.t);
	mapwatch_close(x.mw);
}

struct looper {
	struct mapwatch *mw;
	struct mapwatch_cache *own, *t;
	uintptr_t off;
	_Atomic bool *stop;
	long slowest_ns;
};

static void *route_loop(void *arg)
{
	struct looper *l = arg;

	for (int i = 0; i < 2000 && !atomic_load(l->stop); i++) {
		struct timespec t0, t1;
		long ns;

		mapwatch_cache_put(l->t, mapwatch_cache_get(l->t, BASE + l->off,
							    PAGE, 0));
		if (mapwatch_invalidate(l->mw, BASE + l->off, PAGE))
			return (void *)1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (mapwatch_cache_progress(l->own) < 0)
			return (void *)2;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + t1.tv_nsec - t0.tv_nsec;
		if (ns > l->slowest_ns)
			l->slowest_ns = ns;
	}
	return NULL;
}

/* The review's loop: two threads drain one monitor shared by three caches.
 * No batch applied twice: every event is of T's watches, so every batch
 * read, by any of the three, is applied to T once.  The 10 s bound on one
 * progress call is a watchdog against the livelock, not a timing claim. */
TEST(two_routers_three_caches_loop)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 64);
	struct counts ka, kb, kt;
	struct mapwatch_cache *a = counted(mw, &ka), *b = counted(mw, &kb),
			      *t = counted(mw, &kt);
	_Atomic bool stop = false;
	struct looper l[2] = {
		{ mw, a, t, 0, &stop, 0 }, { mw, b, t, 16 * PAGE, &stop, 0 },
	};
	uint64_t reads, applied;
	pthread_t th[2];
	void *ret;

	for (int i = 0; i < 2; i++)
		ASSERT_EQ(pthread_create(&th[i], NULL, route_loop, &l[i]), 0);
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(pthread_join(th[i], &ret), 0);
		ASSERT_TRUE(ret == NULL);
	}
	reads = batches_read(a, b, t);
	applied = mw_cache_test_applied(t);
	tap_diag("slowest progress: %ld us, %ld us; %llu batches read, %llu applied to T",
		 l[0].slowest_ns / 1000, l[1].slowest_ns / 1000,
		 (unsigned long long)reads, (unsigned long long)applied);
	EXPECT_GE(reads, 1);
	EXPECT_EQ(applied, reads);
	EXPECT_LE(l[0].slowest_ns, 10000000000L);
	EXPECT_LE(l[1].slowest_ns, 10000000000L);
	mapwatch_cache_destroy(a);
	mapwatch_cache_destroy(b);
	mapwatch_cache_destroy(t);
	ASSERT_EQ(atomic_load(&kt.f.nreg), atomic_load(&kt.f.ndereg));
	mapwatch_close(mw);
}

/* --- F14: a shared monitor's capacity ------------------------------------- */

/*
 * F14: cache A's idle entries fill the monitor; cache B's get used to fail
 * with ENOSPC ("monitor full of held entries", which it was not) because
 * B could only evict its own entries.  B now evicts A's idle ones.
 */
TEST(shared_monitor_capacity_is_shared)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 4);
	struct counts ka, kb;
	struct mapwatch_cache *a = counted(mw, &ka), *b = counted(mw, &kb);
	struct mapwatch_cache_stats sa, sb;
	struct mapwatch_cache_entry *e;

	for (int i = 0; i < 4; i++)
		mapwatch_cache_put(a, mapwatch_cache_get(a, BASE + i * PAGE, PAGE, 0));
	ASSERT_EQ(mapwatch_cache_get_stats(a, &sa), 0);
	ASSERT_EQ(sa.entries, 4);
	e = mapwatch_cache_get(b, BASE + 8 * PAGE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_FALSE(mapwatch_cache_entry_changed(e));
	ASSERT_EQ(mapwatch_cache_get_stats(a, &sa), 0);
	ASSERT_EQ(mapwatch_cache_get_stats(b, &sb), 0);
	tap_diag("A: %llu entries, %llu evicted; B: %llu entries, %llu uncached",
		 (unsigned long long)sa.entries, (unsigned long long)sa.evict_lru,
		 (unsigned long long)sb.entries, (unsigned long long)sb.uncached);
	EXPECT_EQ(sa.entries, 3);		/* one of A's idle entries went */
	EXPECT_EQ(sa.evict_lru, 1);
	EXPECT_EQ(atomic_load(&ka.f.ndereg), 1);
	EXPECT_EQ(sb.entries, 1);		/* and B's is cached, watched */
	EXPECT_EQ(sb.uncached, 0);
	mapwatch_cache_put(b, e);
	/* B's entry is watched: a change reaches it. */
	ASSERT_EQ(mapwatch_invalidate(mw, BASE + 8 * PAGE, PAGE), 0);
	ASSERT_EQ(mapwatch_cache_progress(b), 1);
	EXPECT_EQ(atomic_load(&kb.f.ndereg), 1);
	mapwatch_cache_destroy(a);
	mapwatch_cache_destroy(b);
	EXPECT_EQ(atomic_load(&ka.f.nreg), atomic_load(&ka.f.ndereg));
	mapwatch_close(mw);
}

/*
 * F14: every watch held (A holds its 4 entries): B's get is served by a
 * registration of its own, uncached and unwatched (counted as uncached
 * and pass-through), deregistered at its put, instead of ENOSPC.
 */
TEST(full_shared_monitor_serves_uncached)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 4);
	struct counts ka, kb;
	struct mapwatch_cache *a = counted(mw, &ka), *b = counted(mw, &kb);
	struct mapwatch_cache_entry *held[4], *e, *e2;
	struct mapwatch_cache_stats sb;

	for (int i = 0; i < 4; i++) {
		held[i] = mapwatch_cache_get(a, BASE + i * PAGE, PAGE, 0);
		ASSERT_TRUE(held[i] != NULL);
	}
	e = mapwatch_cache_get(b, BASE + 8 * PAGE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(mapwatch_cache_get_stats(b, &sb), 0);
	EXPECT_EQ(sb.entries, 0);
	EXPECT_EQ(sb.uncached, 1);
	EXPECT_EQ(sb.passthrough, 1);
	/* Not cached: the next get registers again. */
	e2 = mapwatch_cache_get(b, BASE + 8 * PAGE, PAGE, 0);
	ASSERT_TRUE(e2 != NULL);
	EXPECT_TRUE(e2 != e);
	EXPECT_EQ(atomic_load(&kb.f.nreg), 2);
	mapwatch_cache_put(b, e);
	mapwatch_cache_put(b, e2);
	EXPECT_EQ(atomic_load(&kb.f.ndereg), 2);
	for (int i = 0; i < 4; i++)
		mapwatch_cache_put(a, held[i]);
	mapwatch_cache_destroy(a);
	mapwatch_cache_destroy(b);
	mapwatch_close(mw);
}

/*
 * F14 follow-up: a full shared monitor (every watch held by A) and cache B
 * full of idle device-memory entries, which hold no watch.  A's host get
 * must not deregister them: evicting them frees no watch.  It is served
 * uncached, and B keeps every entry.
 */
TEST(full_monitor_leaves_device_entries_of_other_caches)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 4);
	struct counts ka, kb;
	struct mapwatch_cache *a = counted(mw, &ka), *b = counted(mw, &kb);
	struct mapwatch_cache_entry *held[4], *e;
	struct mapwatch_cache_stats sa, sb;
	long b_dereg;

	for (int i = 0; i < 4; i++) {
		held[i] = mapwatch_cache_get(a, BASE + i * PAGE, PAGE, 0);
		ASSERT_TRUE(held[i] != NULL);
	}
	for (int i = 0; i < 100; i++) {
		struct mapwatch_cache_req r = {
			.addr = BASE + 0x1000000 + i * 16 * PAGE, .len = PAGE,
			.mem_type = 1, .device = 0,
		};

		e = mapwatch_cache_get_req(b, &r);
		ASSERT_TRUE(e != NULL);
		mapwatch_cache_put(b, e);
	}
	ASSERT_EQ(mapwatch_cache_get_stats(b, &sb), 0);
	ASSERT_EQ(sb.entries, 100);
	e = mapwatch_cache_get(a, BASE + 8 * PAGE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(mapwatch_cache_get_stats(a, &sa), 0);
	ASSERT_EQ(mapwatch_cache_get_stats(b, &sb), 0);
	b_dereg = atomic_load(&kb.f.ndereg);
	tap_diag("A: uncached %llu; B: %llu entries, %ld deregistrations",
		 (unsigned long long)sa.uncached, (unsigned long long)sb.entries,
		 b_dereg);
	EXPECT_EQ(b_dereg, 0);
	EXPECT_EQ(sb.entries, 100);
	EXPECT_EQ(sa.uncached, 1);
	mapwatch_cache_put(a, e);
	for (int i = 0; i < 4; i++)
		mapwatch_cache_put(a, held[i]);
	mapwatch_cache_destroy(a);
	mapwatch_cache_destroy(b);
	mapwatch_close(mw);
}

/* --- make_room pins one other cache at a time ------------------------------ */

struct room {
	struct mapwatch *mw;
	struct mapwatch_cache *a, *b, *c;
	struct fake fb;
	struct mapwatch_cache_entry *got;
	bool destroy_in_dereg;		/* else: another thread destroys C */
	_Atomic bool c_destroyed;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done, dereg_timed_out;
};

static void room_signal(struct room *x, bool *what)
{
	pthread_mutex_lock(&x->lock);
	*what = true;
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
}

/* A watchdog, not a timing assertion: false after 5 s. */
static bool room_wait(struct room *x, bool *what)
{
	struct timespec ts;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&x->lock);
	while (!*what && ok)
		ok = !pthread_cond_timedwait(&x->cond, &x->lock, &ts) || *what;
	pthread_mutex_unlock(&x->lock);
	return ok;
}

static bool c_gone;

static void *destroy_c(void *arg)
{
	struct room *x = arg;

	mapwatch_cache_destroy(x->c);
	room_signal(x, &c_gone);
	return NULL;
}

/* B's idle entry, evicted for A's get: its dereg destroys cache C, or
 * waits (a slow device deregistration) for another thread's destroy of C. */
static void room_dereg(struct fake *f, struct freg *r)
{
	struct room *x = f->arg;
	pthread_t th;

	(void)r;
	if (atomic_exchange(&x->c_destroyed, true))
		return;
	if (x->destroy_in_dereg) {
		mapwatch_cache_destroy(x->c);
		return;
	}
	if (pthread_create(&th, NULL, destroy_c, x)) {
		x->dereg_timed_out = true;
		return;
	}
	if (!room_wait(x, &c_gone)) {
		x->dereg_timed_out = true;
		pthread_detach(th);
		return;
	}
	pthread_join(th, NULL);
}

static void *room_get(void *arg)
{
	struct room *x = arg;

	x->got = mapwatch_cache_get(x->a, BASE + 8 * PAGE, PAGE, 0);
	room_signal(x, &x->done);
	return NULL;
}

static void room_case(bool destroy_in_dereg)
{
	static struct room x = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	struct mapwatch_cache_entry *held[3];
	struct counts ka, kc;
	pthread_t th;

	x.destroy_in_dereg = destroy_in_dereg;
	x.mw = open_backend(MAPWATCH_BACKEND_MANUAL, 4);
	x.a = counted(x.mw, &ka);
	fake_init(&x.fb);
	x.fb.on_dereg = room_dereg;
	x.fb.arg = &x;
	x.b = fake_cache(x.mw, &x.fb, 0, 0);
	x.c = counted(x.mw, &kc);	/* first in the monitor's list */
	for (int i = 0; i < 3; i++) {
		held[i] = mapwatch_cache_get(x.a, BASE + i * PAGE, PAGE, 0);
		ASSERT_TRUE(held[i] != NULL);
	}
	/* The monitor's 4th watch: B's, idle. */
	mapwatch_cache_put(x.b, mapwatch_cache_get(x.b, BASE + 4 * PAGE, PAGE, 0));
	ASSERT_EQ(pthread_create(&th, NULL, room_get, &x), 0);
	if (!room_wait(&x, &x.done)) {
		tap_diag("A's get still inside B's dereg after 5 s: C's destroy waits for a pin of make_room (%s)",
			 destroy_in_dereg ? "destroyed from the dereg callback" :
			 "destroyed by another thread");
		ASSERT_TRUE(x.done);
	}
	ASSERT_EQ(pthread_join(th, NULL), 0);
	ASSERT_TRUE(x.got != NULL);
	EXPECT_FALSE(x.dereg_timed_out);
	EXPECT_TRUE(atomic_load(&x.c_destroyed));
	EXPECT_EQ(atomic_load(&x.fb.ndereg), 1);
	mapwatch_cache_put(x.a, x.got);
	for (int i = 0; i < 3; i++)
		mapwatch_cache_put(x.a, held[i]);
	mapwatch_cache_destroy(x.a);
	mapwatch_cache_destroy(x.b);
	mapwatch_close(x.mw);
}

/* A dereg callback run by eviction across caches destroys a third cache
 * of the monitor: make_room used to keep every other cache pinned while it
 * evicted, so that destroy waited on make_room's own pin, forever. */
TEST(dereg_run_by_make_room_may_destroy_a_third_cache)
{
	room_case(true);
}

/* Another thread's destroy of a third cache does not wait for a slow
 * deregistration of B's that eviction runs. */
TEST(destroy_does_not_wait_for_another_caches_dereg)
{
	room_case(false);
}

/* --- growing --------------------------------------------------------------- */

static void resize_rules(enum mapwatch_backend b, char *mem)
{
	struct mapwatch *mw = open_backend(b, 2);
	struct mapwatch_handle h[4];
	struct mapwatch_stats s;

	ASSERT_EQ(mapwatch_watch(mw, mem, PAGE, 1, &h[0]), 0);
	ASSERT_EQ(mapwatch_watch(mw, mem + PAGE, PAGE, 2, &h[1]), 0);
	ASSERT_ERRNO(neg(mapwatch_watch(mw, mem + 2 * PAGE, PAGE, 3, &h[2])), ENOSPC);
	/* Watches active: nothing changes. */
	ASSERT_BAD_INPUT("mapwatch_resize", "watches active",
			 neg(mapwatch_resize(mw, 4)), EBUSY);
	ASSERT_FALSE(mapwatch_changed(&h[0]));
	ASSERT_EQ(mapwatch_unwatch(mw, &h[0]), 0);
	ASSERT_EQ(mapwatch_unwatch(mw, &h[1]), 0);
	ASSERT_EQ(mapwatch_resize(mw, 4), 0);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(mapwatch_watch(mw, mem + i * PAGE, PAGE, 10 + i, &h[i]), 0);
	ASSERT_EQ(mapwatch_get_stats(mw, &s), 0);
	EXPECT_EQ(s.watched, 4);
	/* Events after the resize are delivered as before. */
	ASSERT_EQ(mapwatch_invalidate(mw, mem, PAGE), 0);
	ASSERT_TRUE(mapwatch_changed(&h[0]));
	ASSERT_FALSE(mapwatch_changed(&h[1]));
	/* Pending event: still busy even once unwatched. */
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(mapwatch_unwatch(mw, &h[i]), 0);
	ASSERT_BAD_INPUT("mapwatch_resize", "events pending",
			 neg(mapwatch_resize(mw, 8)), EBUSY);
	{
		struct mapwatch_event ev[4];

		ASSERT_EQ(mapwatch_read_events(mw, ev, 4), 1);
	}
	ASSERT_EQ(mapwatch_resize(mw, 1), 0);		/* shrinking too */
	ASSERT_EQ(mapwatch_watch(mw, mem, PAGE, 20, &h[0]), 0);
	ASSERT_ERRNO(neg(mapwatch_watch(mw, mem + PAGE, PAGE, 21, &h[1])), ENOSPC);
	ASSERT_EQ(mapwatch_unwatch(mw, &h[0]), 0);
	ASSERT_BAD_INPUT("mapwatch_resize", "0 watches",
			 neg(mapwatch_resize(mw, 0)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_resize", "NULL monitor",
			 neg(mapwatch_resize(NULL, 8)), EINVAL);
	mapwatch_close(mw);
}

TEST(resize_manual)
{
	resize_rules(MAPWATCH_BACKEND_MANUAL, BASE);
}

TEST(resize_userfaultfd)
{
	char *mem = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(mem != MAP_FAILED);
	if (UNDER_VALGRIND())
		SKIP("valgrind has no userfaultfd");
	resize_rules(MAPWATCH_BACKEND_USERFAULTFD, mem);
	munmap(mem, 4 * PAGE);
}

/* The cache over a grown monitor keeps more entries. */
TEST(cache_uses_the_grown_monitor)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 2);
	struct counts k;
	struct mapwatch_cache *c = counted(mw, &k);
	struct mapwatch_cache_stats s;

	for (int i = 0; i < 4; i++)
		mapwatch_cache_put(c, mapwatch_cache_get(c, BASE + i * PAGE, PAGE, 0));
	ASSERT_EQ(mapwatch_cache_get_stats(c, &s), 0);
	EXPECT_EQ(s.entries, 2);			/* the monitor's bound */
	ASSERT_ERRNO(neg(mapwatch_resize(mw, 64)), EBUSY);
	mapwatch_cache_flush(c);
	ASSERT_EQ(mapwatch_resize(mw, 64), 0);
	for (int i = 0; i < 4; i++)
		mapwatch_cache_put(c, mapwatch_cache_get(c, BASE + i * PAGE, PAGE, 0));
	ASSERT_EQ(mapwatch_cache_get_stats(c, &s), 0);
	EXPECT_EQ(s.entries, 4);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
