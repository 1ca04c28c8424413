// SPDX-License-Identifier: GPL-2.0-only
/*
 * libmapwatch's registration cache on the host: a fake registration
 * backend that counts reg/dereg, and the MANUAL monitor backend, where
 * mapwatch_invalidate() plays the kernel.  Addresses are just numbers
 * (nothing is mapped) except in the stale-registration scenario.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/mman.h>

#include "host/libtest.h"

#define BASE ((char *)0x100000000000UL)

static struct mapwatch *manual(size_t max)
{
	return open_backend(MAPWATCH_BACKEND_MANUAL, max);
}

static struct mapwatch_cache_stats stats(struct mapwatch_cache *c)
{
	struct mapwatch_cache_stats s;

	mapwatch_cache_get_stats(c, &s);
	return s;
}

static struct mapwatch_cache_entry *get(struct mapwatch_cache *c, void *addr,
					size_t len, int flags)
{
	struct mapwatch_cache_entry *e = mapwatch_cache_get(c, addr, len, flags);

	if (!e)
		tap_diag("get(%p, %zu, %d): %s", addr, len, flags, strerror(errno));
	ASSERT_TRUE(e != NULL);
	return e;
}

/* get + put, returning the entry's registration. */
static struct freg *touch(struct mapwatch_cache *c, void *addr, size_t len)
{
	struct mapwatch_cache_entry *e = get(c, addr, len, 0);
	struct freg *r = reg_of(e);

	mapwatch_cache_put(c, e);
	return r;
}

/* --- hits and misses -------------------------------------------------------- */

TEST(miss_then_hit)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e1, *e2;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	e1 = get(c, BASE, 3 * PAGE, 0);
	ASSERT_EQ(f.nreg, 1);
	ASSERT_TRUE(mapwatch_cache_entry_addr(e1) == BASE);
	ASSERT_EQ(mapwatch_cache_entry_len(e1), 3 * PAGE);
	ASSERT_EQ(reg_of(e1)->addr, (uintptr_t)BASE);
	ASSERT_EQ(reg_of(e1)->len, 3 * PAGE);
	ASSERT_FALSE(mapwatch_cache_entry_changed(e1));
	mapwatch_cache_put(c, e1);
	e2 = get(c, BASE, 3 * PAGE, 0);
	ASSERT_TRUE(e2 == e1);
	ASSERT_EQ(f.nreg, 1);
	/* Held twice at once: the same entry. */
	e1 = get(c, BASE, PAGE, 0);
	ASSERT_TRUE(e1 == e2);
	mapwatch_cache_put(c, e1);
	mapwatch_cache_put(c, e2);
	ASSERT_EQ(stats(c).hits, 2);
	ASSERT_EQ(stats(c).misses, 1);
	ASSERT_EQ(stats(c).covering_hits, 0);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.ndereg, 1);
	mapwatch_close(mw);
}

TEST(requests_widen_to_pages)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	e = get(c, BASE + 100, 10, 0);
	ASSERT_TRUE(mapwatch_cache_entry_addr(e) == BASE);
	ASSERT_EQ(mapwatch_cache_entry_len(e), PAGE);
	mapwatch_cache_put(c, e);
	/* Straddling a page boundary: two pages. */
	e = get(c, BASE + PAGE - 1, 2, 0);
	ASSERT_TRUE(mapwatch_cache_entry_addr(e) == BASE);
	ASSERT_EQ(mapwatch_cache_entry_len(e), 2 * PAGE);
	ASSERT_EQ(f.nreg, 2);
	mapwatch_cache_put(c, e);
	/* Anything within those two pages now hits one of them. */
	touch(c, BASE + 5, PAGE);
	touch(c, BASE + PAGE, 1);
	ASSERT_EQ(f.nreg, 2);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.ndereg, 2);
	mapwatch_close(mw);
}

TEST(custom_alignment)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache_ops ops = { .reg = fake_reg, .dereg = fake_dereg, .ctx = &f };
	struct mapwatch_cache_config cfg = { .align = 1 << 16 };
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e;

	/* Widening covers mapped pages only (cache_adopt.c has the holes):
	 * 64 KiB units inside a mapping of 3 of them. */
	char *a = mmap(NULL, 3 << 16, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *m;

	ASSERT_TRUE(a != MAP_FAILED);
	m = (char *)(((uintptr_t)a + 65535) & ~(uintptr_t)65535);
	fake_init(&f);
	c = mapwatch_cache_create(mw, &ops, &cfg);
	ASSERT_TRUE(c != NULL);
	e = get(c, m + 4464, 100, 0);
	ASSERT_TRUE(mapwatch_cache_entry_addr(e) == m);
	ASSERT_EQ(mapwatch_cache_entry_len(e), 65536);
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
	munmap(a, 3 << 16);
}

/* --- the covering policy --------------------------------------------------- */

TEST(request_inside_larger_entry_hits)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *big, *e;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	big = get(c, BASE, 16 * PAGE, 0);
	mapwatch_cache_put(c, big);
	/* Inside, at several starts, aligned and not, up to the last byte. */
	e = get(c, BASE + 3 * PAGE, 2 * PAGE, 0);
	ASSERT_TRUE(e == big);
	mapwatch_cache_put(c, e);
	e = get(c, BASE + 5 * PAGE + 17, 100, 0);
	ASSERT_TRUE(e == big);
	mapwatch_cache_put(c, e);
	e = get(c, BASE + 15 * PAGE, PAGE, 0);
	ASSERT_TRUE(e == big);
	mapwatch_cache_put(c, e);
	e = get(c, BASE + 16 * PAGE - 1, 1, 0);
	ASSERT_TRUE(e == big);
	mapwatch_cache_put(c, e);
	ASSERT_EQ(f.nreg, 1);
	ASSERT_EQ(stats(c).hits, 4);
	ASSERT_EQ(stats(c).covering_hits, 4);
	/* One byte past the end is not covered. */
	e = get(c, BASE + 15 * PAGE, PAGE + 1, 0);
	ASSERT_TRUE(e != big);
	ASSERT_EQ(f.nreg, 2);
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.ndereg, 2);
	mapwatch_close(mw);
}

TEST(overlap_policy_no_merge)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct freg *a, *b, *d;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	a = touch(c, BASE, 2 * PAGE);
	/* Overlapping but not covered: a new entry, a left alone. */
	b = touch(c, BASE + PAGE, 2 * PAGE);
	ASSERT_TRUE(a != b);
	ASSERT_EQ(stats(c).entries, 2);
	ASSERT_FALSE(a->dead || b->dead);
	/* Larger at the same start: a new entry, and the idle entries it
	 * covers go (F16; they stayed, pinned twice, before 1.3). */
	d = touch(c, BASE, 4 * PAGE);
	ASSERT_TRUE(d != a && d != b);
	ASSERT_EQ(stats(c).entries, 1);
	ASSERT_EQ(stats(c).bytes_registered, 4 * PAGE);
	ASSERT_TRUE(a->dead && b->dead);
	/* The largest serves what they covered. */
	ASSERT_TRUE(touch(c, BASE + PAGE, 2 * PAGE) == d);
	ASSERT_TRUE(touch(c, BASE + 3 * PAGE, PAGE) == d);
	ASSERT_EQ(f.nreg, 3);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.ndereg, 3);
	mapwatch_close(mw);
}

TEST(flags_must_be_a_subset)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e1, *e2, *e3;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	e1 = get(c, BASE, PAGE, 0x1);
	ASSERT_EQ(reg_of(e1)->flags, 0x1);
	mapwatch_cache_put(c, e1);
	e2 = get(c, BASE, PAGE, 0);		/* fewer flags: hit */
	ASSERT_TRUE(e2 == e1);
	mapwatch_cache_put(c, e2);
	e3 = get(c, BASE, PAGE, 0x3);		/* more flags: miss */
	ASSERT_TRUE(e3 != e1);
	ASSERT_EQ(reg_of(e3)->flags, 0x3);
	mapwatch_cache_put(c, e3);
	e2 = get(c, BASE, PAGE, 0x2);		/* only e3 has it */
	ASSERT_TRUE(e2 == e3);
	mapwatch_cache_put(c, e2);
	/* The same through the covering path. */
	e2 = get(c, BASE + 8 * PAGE, 8 * PAGE, 0x4);
	mapwatch_cache_put(c, e2);
	e1 = get(c, BASE + 9 * PAGE, PAGE, 0x4);
	ASSERT_TRUE(e1 == e2);
	mapwatch_cache_put(c, e1);
	e1 = get(c, BASE + 9 * PAGE, PAGE, 0x5);
	ASSERT_TRUE(e1 != e2);
	mapwatch_cache_put(c, e1);
	ASSERT_EQ(f.nreg, 4);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* Many entries, random covering requests: always a covering, valid entry,
 * and a hit whenever some cached entry covers the request. */
TEST(covering_lookup_random)
{
	struct mapwatch *mw = manual(40000);
	struct fake f;
	struct mapwatch_cache *c;
	unsigned int seed = 12345;
	enum { N = 2000 };
	static uintptr_t s[N], e[N];

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	for (int i = 0; i < N; i++) {
		uintptr_t a = (uintptr_t)BASE + (rand_r(&seed) % 20000) * PAGE;
		size_t n = 1 + rand_r(&seed) % 64;
		struct freg *r = touch(c, (void *)a, n * PAGE);

		s[i] = r->addr;
		e[i] = r->addr + r->len;
	}
	for (int i = 0; i < 20000; i++) {
		uintptr_t a = (uintptr_t)BASE + (rand_r(&seed) % 20100) * PAGE +
			      rand_r(&seed) % PAGE;
		size_t len = 1 + rand_r(&seed) % (8 * PAGE);
		uintptr_t as = a & ~(PAGE - 1), ae = (a + len + PAGE - 1) & ~(PAGE - 1);
		long before = f.nreg;
		bool covered = false;
		struct freg *r;

		for (int k = 0; k < N && !covered; k++)
			covered = s[k] <= as && e[k] >= ae;
		r = touch(c, (void *)a, len);
		ASSERT_TRUE(r->addr <= as && r->addr + r->len >= ae);
		ASSERT_FALSE(r->dead);
		if (covered)
			ASSERT_EQ(f.nreg, before);
	}
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/* --- eviction --------------------------------------------------------------- */

TEST(clock_gives_hit_entries_a_second_chance)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct freg *a, *b, *cc, *d, *e;

	fake_init(&f);
	c = fake_cache(mw, &f, 3, 0);
	a = touch(c, BASE, PAGE);
	b = touch(c, BASE + PAGE, PAGE);
	cc = touch(c, BASE + 2 * PAGE, PAGE);
	ASSERT_TRUE(touch(c, BASE, PAGE) == a);		/* a is recently used */
	d = touch(c, BASE + 3 * PAGE, PAGE);		/* evicts b, not a */
	ASSERT_TRUE(b->dead);
	ASSERT_FALSE(a->dead || cc->dead || d->dead);
	e = touch(c, BASE + 4 * PAGE, PAGE);		/* then c, the oldest */
	ASSERT_TRUE(cc->dead);
	ASSERT_FALSE(a->dead || d->dead || e->dead);
	ASSERT_EQ(stats(c).evict_lru, 2);
	ASSERT_EQ(stats(c).entries, 3);
	ASSERT_TRUE(touch(c, BASE, PAGE) == a);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

TEST(lru_order_without_hits)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct freg *r[6];

	fake_init(&f);
	c = fake_cache(mw, &f, 4, 0);
	for (int i = 0; i < 6; i++)
		r[i] = touch(c, BASE + i * PAGE, PAGE);
	/* Oldest first. */
	ASSERT_TRUE(r[0]->dead && r[1]->dead);
	for (int i = 2; i < 6; i++)
		ASSERT_FALSE(r[i]->dead);
	ASSERT_EQ(stats(c).entries, 4);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

TEST(max_bytes_limit)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct freg *a, *b, *d;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 4 * PAGE);
	a = touch(c, BASE, 2 * PAGE);
	b = touch(c, BASE + 4 * PAGE, 2 * PAGE);
	ASSERT_EQ(stats(c).bytes_registered, 4 * PAGE);
	d = touch(c, BASE + 8 * PAGE, PAGE);		/* a goes */
	ASSERT_TRUE(a->dead);
	ASSERT_FALSE(b->dead || d->dead);
	ASSERT_EQ(stats(c).bytes_registered, 3 * PAGE);
	/* Larger than the whole budget: handed out, never cached. */
	struct mapwatch_cache_entry *big = get(c, BASE + 16 * PAGE, 5 * PAGE, 0);

	ASSERT_EQ(stats(c).bytes_registered, 0);
	ASSERT_TRUE(b->dead && d->dead);
	struct freg *rbig = reg_of(big);

	ASSERT_FALSE(rbig->dead);
	mapwatch_cache_put(c, big);
	ASSERT_TRUE(rbig->dead);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

TEST(held_entries_are_never_evicted)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *a, *b, *x;

	fake_init(&f);
	c = fake_cache(mw, &f, 2, 0);
	a = get(c, BASE, PAGE, 0);
	b = get(c, BASE + PAGE, PAGE, 0);
	x = get(c, BASE + 2 * PAGE, PAGE, 0);	/* no room: uncached */
	ASSERT_EQ(stats(c).entries, 2);
	ASSERT_FALSE(reg_of(a)->dead || reg_of(b)->dead);
	struct freg *rx = reg_of(x);

	ASSERT_FALSE(rx->dead);
	mapwatch_cache_put(c, x);
	ASSERT_TRUE(rx->dead);			/* went with its reference */
	ASSERT_EQ(f.ndereg, 1);
	mapwatch_cache_put(c, a);
	mapwatch_cache_put(c, b);
	/* Idle now: the next miss evicts one of them. */
	touch(c, BASE + 3 * PAGE, PAGE);
	ASSERT_EQ(stats(c).entries, 2);
	ASSERT_EQ(f.ndereg, 2);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

TEST(full_monitor_evicts_an_idle_entry)
{
	struct mapwatch *mw = manual(2);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *a, *b;
	struct freg *ra;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	ra = touch(c, BASE, PAGE);
	touch(c, BASE + PAGE, PAGE);
	touch(c, BASE + 2 * PAGE, PAGE);	/* the monitor had 2 watches */
	ASSERT_TRUE(ra->dead);
	ASSERT_EQ(stats(c).entries, 2);
	a = get(c, BASE + PAGE, PAGE, 0);
	b = get(c, BASE + 2 * PAGE, PAGE, 0);
	/* Both held: nothing to evict.  Served uncached and unwatched (it
	 * was ENOSPC before F14), deregistered at its put. */
	{
		struct mapwatch_cache_entry *u = get(c, BASE + 3 * PAGE, PAGE, 0);

		ASSERT_EQ(f.nreg, 4);
		ASSERT_EQ(stats(c).entries, 2);
		ASSERT_EQ(stats(c).uncached, 1);
		ASSERT_EQ(stats(c).passthrough, 1);
		mapwatch_cache_put(c, u);
		ASSERT_EQ(f.ndereg, 2);
	}
	mapwatch_cache_put(c, a);
	mapwatch_cache_put(c, b);
	touch(c, BASE + 3 * PAGE, PAGE);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/* --- invalidation ----------------------------------------------------------- */

TEST(invalidated_while_referenced)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *old, *e;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	old = get(c, BASE, 4 * PAGE, 0);
	ASSERT_OK(mapwatch_invalidate(mw, BASE + 2 * PAGE, 1));
	ASSERT_TRUE(mapwatch_cache_entry_changed(old));
	/* Never returned again, by either lookup... */
	for (int i = 0; i < 3; i++) {
		e = get(c, BASE, 4 * PAGE, 0);
		ASSERT_TRUE(e != old);
		ASSERT_FALSE(mapwatch_cache_entry_changed(e));
		mapwatch_cache_put(c, e);
		e = get(c, BASE + PAGE, PAGE, 0);
		ASSERT_TRUE(e != old);
		mapwatch_cache_put(c, e);
	}
	ASSERT_EQ(f.nreg, 2);
	/* ...still registered while held, deregistered exactly at the last
	 * put. */
	ASSERT_FALSE(reg_of(old)->dead);
	ASSERT_EQ(f.ndereg, 0);
	ASSERT_EQ(stats(c).invalidations, 1);
	mapwatch_cache_put(c, old);
	ASSERT_EQ(f.ndereg, 1);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.ndereg, 2);
	mapwatch_close(mw);
}

TEST(invalidated_with_two_holders_dereg_at_last_put)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *a, *b;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	a = get(c, BASE, PAGE, 0);
	b = get(c, BASE, PAGE, 0);
	ASSERT_TRUE(a == b);
	ASSERT_OK(mapwatch_invalidate(mw, BASE, PAGE));
	mapwatch_cache_put(c, a);	/* no get in between: the put sees it */
	ASSERT_EQ(f.ndereg, 0);
	ASSERT_EQ(stats(c).entries, 0);
	mapwatch_cache_put(c, b);
	ASSERT_EQ(f.ndereg, 1);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.ndereg, 1);
	mapwatch_close(mw);
}

TEST(idle_invalidated_entry_goes_at_next_get)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct freg *a, *b;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	a = touch(c, BASE, PAGE);
	b = touch(c, BASE + 8 * PAGE, PAGE);
	ASSERT_OK(mapwatch_invalidate(mw, BASE, 2 * PAGE));
	ASSERT_FALSE(a->dead);		/* nobody asked yet */
	ASSERT_TRUE(touch(c, BASE + 8 * PAGE, PAGE) == b);	/* a hit elsewhere */
	ASSERT_TRUE(a->dead);		/* the event was read */
	ASSERT_FALSE(b->dead);
	ASSERT_EQ(stats(c).evict_invalid, 1);
	ASSERT_EQ(stats(c).entries, 1);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* Events lost (read by someone else): every hit still checks the watch. */
TEST(lost_events_still_no_stale_hit)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_event ev[8];
	struct freg *a, *big, *r;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	a = touch(c, BASE, PAGE);
	big = touch(c, BASE + 16 * PAGE, 16 * PAGE);
	ASSERT_OK(mapwatch_invalidate(mw, BASE, PAGE));
	ASSERT_OK(mapwatch_invalidate(mw, BASE + 20 * PAGE, PAGE));
	ASSERT_EQ(mapwatch_read_events(mw, ev, 8), 2);	/* stolen */
	r = touch(c, BASE, PAGE);			/* exact path */
	ASSERT_TRUE(r != a);
	ASSERT_TRUE(a->dead);
	r = touch(c, BASE + 18 * PAGE, PAGE);		/* covering path */
	ASSERT_TRUE(r != big);
	ASSERT_TRUE(big->dead);
	ASSERT_EQ(stats(c).invalidations, 2);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/* A changed entry met on the way to a hit is purged too (not leaked). */
TEST(stale_entry_before_a_hit_is_purged)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_event ev[8];
	struct freg *a, *b;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	/* a held while b registers, or b's miss would take it out (F16). */
	{
		struct mapwatch_cache_entry *ea = get(c, BASE, PAGE, 0);

		a = reg_of(ea);
		b = touch(c, BASE, 2 * PAGE);	/* same start, newer: met first */
		mapwatch_cache_put(c, ea);
	}
	ASSERT_TRUE(a != b);
	ASSERT_OK(mapwatch_invalidate(mw, BASE + PAGE, PAGE));	/* b only */
	ASSERT_EQ(mapwatch_read_events(mw, ev, 8), 1);		/* lost */
	ASSERT_TRUE(touch(c, BASE, PAGE) == a);
	ASSERT_TRUE(b->dead);
	ASSERT_FALSE(a->dead);
	ASSERT_EQ(stats(c).invalidations, 1);
	ASSERT_EQ(stats(c).entries, 1);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/* The monitor's ring overflows: a range event evicts what changed. */
TEST(range_event_after_monitor_overflow)
{
	enum { N = 5000 };
	struct mapwatch *mw = manual(N);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_stats ms;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	for (int i = 0; i < N; i++)
		touch(c, BASE + 2 * i * PAGE, PAGE);
	ASSERT_OK(mapwatch_invalidate(mw, BASE, 2 * N * PAGE));
	mapwatch_get_stats(mw, &ms);
	ASSERT_GT(ms.overflows, 0);
	touch(c, BASE + 2 * N * PAGE, PAGE);
	ASSERT_EQ(stats(c).entries, 1);
	ASSERT_EQ(f.ndereg, N);
	ASSERT_EQ(stats(c).invalidations, N);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/* A change while reg runs (after the watch is placed) is never missed. */
static void invalidate_during_reg(struct fake *f, struct freg *r)
{
	static int times;

	if (times++ < 2)	/* the first two attempts change under us */
		mapwatch_invalidate(f->arg, (void *)r->addr, r->len);
}

TEST(change_during_registration_is_seen)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e;

	fake_init(&f);
	f.on_reg = invalidate_during_reg;
	f.arg = mw;
	c = fake_cache(mw, &f, 0, 0);
	e = get(c, BASE, PAGE, 0);
	ASSERT_EQ(f.nreg, 3);
	ASSERT_EQ(f.ndereg, 2);		/* the raced registrations */
	ASSERT_FALSE(mapwatch_cache_entry_changed(e));
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

static void always_invalidate(struct fake *f, struct freg *r)
{
	mapwatch_invalidate(f->arg, (void *)r->addr, r->len);
}

TEST(range_that_never_settles_gives_eagain)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_stats ms;

	fake_init(&f);
	f.on_reg = always_invalidate;
	f.arg = mw;
	c = fake_cache(mw, &f, 0, 0);
	ASSERT_ERRNO(nul(mapwatch_cache_get(c, BASE, PAGE, 0)), EAGAIN);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_get_stats(mw, &ms);
	ASSERT_EQ(ms.watched, 0);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* --- flush, stats, destroy --------------------------------------------------- */

TEST(flush)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *held;
	struct freg *idle;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	idle = touch(c, BASE, PAGE);
	held = get(c, BASE + PAGE, PAGE, 0);
	mapwatch_cache_flush(c);
	ASSERT_TRUE(idle->dead);
	ASSERT_FALSE(reg_of(held)->dead);
	ASSERT_EQ(stats(c).entries, 0);
	ASSERT_EQ(stats(c).evict_flush, 2);
	/* Out of the cache: a get registers anew. */
	struct freg *rheld = reg_of(held);

	ASSERT_TRUE(touch(c, BASE + PAGE, PAGE) != rheld);
	mapwatch_cache_put(c, held);
	ASSERT_TRUE(rheld->dead);
	mapwatch_cache_flush(c);
	mapwatch_cache_flush(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

TEST(stats_add_up)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_stats s;
	struct mapwatch_stats ms;

	fake_init(&f);
	c = fake_cache(mw, &f, 3, 0);
	touch(c, BASE, 4 * PAGE);			/* miss */
	touch(c, BASE, PAGE);				/* hit */
	touch(c, BASE + PAGE, PAGE);			/* covering hit */
	touch(c, BASE + 8 * PAGE, PAGE);		/* miss */
	touch(c, BASE + 9 * PAGE, PAGE);		/* miss */
	touch(c, BASE + 10 * PAGE, PAGE);		/* miss, evicts */
	ASSERT_OK(mapwatch_invalidate(mw, BASE + 10 * PAGE, PAGE));
	touch(c, BASE + 9 * PAGE, PAGE);		/* hit, drops 10 */
	mapwatch_cache_get_stats(c, &s);
	EXPECT_EQ(s.hits, 3);
	EXPECT_EQ(s.covering_hits, 1);
	EXPECT_EQ(s.misses, 4);
	EXPECT_EQ(s.registrations, 4);
	EXPECT_EQ(s.deregistrations, 2);
	EXPECT_EQ(s.evict_lru, 1);
	EXPECT_EQ(s.evict_invalid, 1);
	EXPECT_EQ(s.invalidations, 1);
	EXPECT_EQ(s.evict_flush, 0);
	EXPECT_EQ(s.entries, 2);
	EXPECT_EQ(s.bytes_registered, 5 * PAGE);
	mapwatch_get_stats(mw, &ms);
	EXPECT_EQ(ms.watched, 2);
	EXPECT_EQ(ms.events, 1);
	mapwatch_cache_destroy(c);
	mapwatch_get_stats(mw, &ms);
	EXPECT_EQ(ms.watched, 0);
	mapwatch_close(mw);
}

static int released;

static void release(void *ctx)
{
	struct fake *f = ctx;

	ASSERT_EQ(f->nreg, f->ndereg);	/* last, after every dereg */
	released++;
}

TEST(destroy_deregisters_and_releases)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache_ops ops = {
		.reg = fake_reg, .dereg = fake_dereg, .ctx = &f, .release = release,
	};
	struct mapwatch_cache *c;

	fake_init(&f);
	c = mapwatch_cache_create(mw, &ops, NULL);
	ASSERT_TRUE(c != NULL);
	for (int i = 0; i < 10; i++)
		touch(c, BASE + i * PAGE, PAGE);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(released, 1);
	ASSERT_EQ(f.ndereg, 10);
	mapwatch_close(mw);
}

/* --- callbacks ---------------------------------------------------------------- */

TEST(reg_failure)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_stats ms;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	f.fail_errno = ENOMEM;
	ASSERT_ERRNO(nul(mapwatch_cache_get(c, BASE, PAGE, 0)), ENOMEM);
	f.fail_errno = -1;			/* fails, sets no errno */
	ASSERT_ERRNO(nul(mapwatch_cache_get(c, BASE, PAGE, 0)), EIO);
	f.fail_errno = EFAULT;
	ASSERT_ERRNO(nul(mapwatch_cache_get(c, BASE, PAGE, 0)), EFAULT);
	mapwatch_get_stats(mw, &ms);
	ASSERT_EQ(ms.watched, 0);		/* no watch left behind */
	ASSERT_EQ(stats(c).entries, 0);
	ASSERT_EQ(stats(c).misses, 3);
	ASSERT_EQ(stats(c).registrations, 0);
	/* And then it works. */
	touch(c, BASE, PAGE);
	ASSERT_EQ(f.nreg, 1);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.ndereg, 1);
	mapwatch_close(mw);
}

static struct mapwatch_cache *reenter_cache;

/* reg of a large range first registers (and drops) a smaller one, the way
 * a provider might register a bounce buffer. */
static void reg_reenters(struct fake *f, struct freg *r)
{
	struct mapwatch_cache_entry *e;
	struct mapwatch_cache_stats s;

	(void)f;
	if (r->len < 8 * PAGE)
		return;
	e = mapwatch_cache_get(reenter_cache, (void *)(r->addr + r->len), PAGE, 0);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(reenter_cache, e);
	mapwatch_cache_get_stats(reenter_cache, &s);
}

/* dereg of a large entry flushes the cache and gets another entry. */
static void dereg_reenters(struct fake *f, struct freg *r)
{
	struct mapwatch_cache_entry *e;

	(void)f;
	if (r->len < 8 * PAGE)
		return;
	mapwatch_cache_flush(reenter_cache);
	e = mapwatch_cache_get(reenter_cache, (void *)(r->addr + 64 * PAGE),
			       PAGE, 0);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(reenter_cache, e);
}

TEST(callbacks_reenter_the_cache)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache_entry *e;

	fake_init(&f);
	f.on_reg = reg_reenters;
	f.on_dereg = dereg_reenters;
	reenter_cache = fake_cache(mw, &f, 0, 0);
	e = get(reenter_cache, BASE, 8 * PAGE, 0);
	ASSERT_EQ(f.nreg, 2);
	ASSERT_EQ(stats(reenter_cache).entries, 2);
	/* Invalidate and put: dereg runs from put, flushes, gets. */
	ASSERT_OK(mapwatch_invalidate(mw, BASE, PAGE));
	mapwatch_cache_put(reenter_cache, e);
	ASSERT_EQ(f.nreg, 3);
	ASSERT_EQ(f.ndereg, 2);
	/* From a miss that evicts (dereg inside get). */
	mapwatch_cache_destroy(reenter_cache);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/* reg blocks in one thread while another thread hits: no cache lock is
 * held across the callback, and hits do not wait for misses. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_stage;

static void reg_blocks(struct fake *f, struct freg *r)
{
	(void)f;
	if (r->addr != (uintptr_t)BASE + 32 * PAGE)
		return;
	pthread_mutex_lock(&gate_lock);
	gate_stage = 1;
	pthread_cond_broadcast(&gate_cond);
	while (gate_stage != 2)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
}

static void *slow_miss(void *arg)
{
	struct mapwatch_cache *c = arg;

	mapwatch_cache_put(c, mapwatch_cache_get(c, BASE + 32 * PAGE, PAGE, 0));
	return NULL;
}

TEST(hits_proceed_while_a_reg_callback_blocks)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	pthread_t t;

	fake_init(&f);
	f.on_reg = reg_blocks;
	c = fake_cache(mw, &f, 0, 0);
	touch(c, BASE, 4 * PAGE);
	ASSERT_EQ(pthread_create(&t, NULL, slow_miss, c), 0);
	pthread_mutex_lock(&gate_lock);
	while (gate_stage != 1)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	/* The other thread is inside reg: hit, covering hit, stats, a miss
	 * of our own, an invalidation and a flush all go through. */
	touch(c, BASE, PAGE);
	touch(c, BASE + 2 * PAGE, PAGE);
	touch(c, BASE + 64 * PAGE, PAGE);
	ASSERT_OK(mapwatch_invalidate(mw, BASE + 64 * PAGE, PAGE));
	mapwatch_cache_flush(c);
	ASSERT_EQ(stats(c).hits, 2);
	pthread_mutex_lock(&gate_lock);
	gate_stage = 2;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	pthread_join(t, NULL);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/* --- threads ------------------------------------------------------------------ */

enum { NBUF = 64, NTHREADS = 8 };

struct race {
	struct mapwatch *mw;
	struct mapwatch_cache *c;
	_Atomic unsigned int ver[NBUF];		/* bumped before invalidating */
	_Atomic unsigned int done[NBUF];	/* set once invalidated */
	_Atomic bool stop;
	_Atomic long gets, stale, fails, wrong;
};

static struct race race;

static uint64_t tag_version(struct fake *f, uintptr_t addr, size_t len)
{
	(void)f;
	(void)len;
	return atomic_load(&race.ver[(addr - (uintptr_t)BASE) / (4 * PAGE) % NBUF]);
}

static void *race_worker(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg;

	while (!atomic_load(&race.stop)) {
		unsigned int b = rand_r(&seed) % NBUF;
		size_t off = (rand_r(&seed) % 4) * PAGE / 2;
		size_t len = 1 + rand_r(&seed) % (4 * PAGE - off);
		unsigned int v0 = atomic_load(&race.done[b]);
		char *a = BASE + b * 4 * PAGE + off;
		struct mapwatch_cache_entry *e = mapwatch_cache_get(race.c, a, len, 0);
		struct freg *r;

		if (!e) {
			atomic_fetch_add(&race.fails, 1);
			continue;
		}
		r = mapwatch_cache_entry_reg(e);
		/* Covers the request, and is what was registered for it
		 * (entries are recycled under lock-free readers). */
		if (r->addr > (uintptr_t)a || r->addr + r->len < (uintptr_t)a + len ||
		    (char *)mapwatch_cache_entry_addr(e) != (char *)r->addr ||
		    mapwatch_cache_entry_len(e) != r->len)
			atomic_fetch_add(&race.wrong, 1);
		/* Registered no earlier than the last invalidation that
		 * finished before this get began, and alive while held. */
		if (r->tag < v0 || r->dead)
			atomic_fetch_add(&race.stale, 1);
		if (rand_r(&seed) % 4 == 0)
			sched_yield();
		if (r->dead)
			atomic_fetch_add(&race.stale, 1);
		mapwatch_cache_put(race.c, e);
		atomic_fetch_add(&race.gets, 1);
	}
	return NULL;
}

static void *race_invalidator(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg;

	while (!atomic_load(&race.stop)) {
		unsigned int b = rand_r(&seed) % NBUF;
		unsigned int v = atomic_fetch_add(&race.ver[b], 1) + 1;

		mapwatch_invalidate(race.mw, BASE + b * 4 * PAGE, 4 * PAGE);
		/* Sometimes the events get lost: then only the one-load check
		 * of every hit stands between a worker and a stale entry. */
		if (rand_r(&seed) % 3 == 0) {
			struct mapwatch_event ev[16];

			while (mapwatch_read_events(race.mw, ev, 16) > 0)
				;
		}
		/* Monotonic: a slower invalidator never lowers it. */
		unsigned int cur = atomic_load(&race.done[b]);

		while (cur < v && !atomic_compare_exchange_weak(&race.done[b], &cur, v))
			;
		if (rand_r(&seed) % 64 == 0)
			mapwatch_cache_flush(race.c);
		usleep(rand_r(&seed) % 50);
	}
	return NULL;
}

/* Issue 15: a lookup never takes the 2^31st reference (a carry would turn
 * the count into hits): a saturated entry reads as a miss, and its count
 * and the hit total stay exact. */
uint32_t mw_cache_test_refs(struct mapwatch_cache_entry *e, int64_t n);

TEST(ref_count_saturates_into_a_miss)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e, *e2, *e3;
	uint32_t room;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	e = get(c, BASE, PAGE, 0);			/* refs: cache + 1 */
	room = 0x7fffffffu - mw_cache_test_refs(e, 0);
	ASSERT_EQ(mw_cache_test_refs(e, room - 1), 0x7ffffffeu);
	e2 = get(c, BASE, PAGE, 0);			/* the last one: a hit */
	ASSERT_TRUE(e2 == e);
	ASSERT_EQ(mw_cache_test_refs(e, 0), 0x7fffffffu);
	e3 = get(c, BASE, PAGE, 0);			/* saturated: a miss */
	ASSERT_TRUE(e3 != e);
	ASSERT_EQ(mw_cache_test_refs(e, 0), 0x7fffffffu);	/* no carry */
	EXPECT_EQ(stats(c).hits, 1);
	EXPECT_EQ(stats(c).misses, 2);
	ASSERT_EQ(atomic_load(&f.nreg), 2);
	/* Give the references back: both entries go at destroy. */
	mw_cache_test_refs(e, -(int64_t)(room - 1));
	mapwatch_cache_put(c, e2);
	mapwatch_cache_put(c, e);
	mapwatch_cache_put(c, e3);
	EXPECT_EQ(stats(c).hits, 1);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(atomic_load(&f.ndereg), 2);
	mapwatch_close(mw);
}

TEST(eight_threads_with_racing_invalidations)
{
	struct fake f;
	pthread_t t[NTHREADS + 2];
	double secs = getenv("RACE_SECONDS") ? atof(getenv("RACE_SECONDS")) : 2;

	fake_init(&f);
	f.tag = tag_version;
	race.mw = manual(1024);
	/* Small limits: eviction races too. */
	race.c = fake_cache(race.mw, &f, 48, 0);
	for (int i = 0; i < NTHREADS; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, race_worker,
					 (void *)(uintptr_t)(i + 1)), 0);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(pthread_create(&t[NTHREADS + i], NULL, race_invalidator,
					 (void *)(uintptr_t)(100 + i)), 0);
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&race.stop, true);
	for (int i = 0; i < NTHREADS + 2; i++)
		pthread_join(t[i], NULL);
	tap_diag("%ld gets, %ld registrations, %ld stale, %ld wrong, %ld failed",
		 (long)race.gets, (long)f.nreg, (long)race.stale,
		 (long)race.wrong, (long)race.fails);
	ASSERT_EQ(race.stale, 0);
	ASSERT_EQ(race.wrong, 0);
	ASSERT_EQ(race.fails, 0);
	ASSERT_GT(race.gets, 1000);
	ASSERT_GT(stats(race.c).invalidations, 0);
	ASSERT_GT(stats(race.c).hits, 0);
	mapwatch_cache_destroy(race.c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(race.mw);
}

/*
 * mapwatch_cache_invalidate_entry() racing gets, finds, puts and other
 * invalidations of the same entries (TSan): every accepted call's done
 * runs exactly once, after the last put; a get or find made after the
 * call returned, while the entry is still held, never returns it.
 */
static struct {
	struct mapwatch_cache *c;
	_Atomic long accepted, done, busy, returned_again, ops;
	_Atomic bool stop;
} ie;

static void ie_done(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ie.done, 1);
}

static void *ie_worker(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg;

	while (!atomic_load(&ie.stop)) {
		char *a = BASE + (rand_r(&seed) % 4) * PAGE;
		struct mapwatch_cache_entry *e, *g;
		int r;

		e = rand_r(&seed) % 4 ? mapwatch_cache_get(ie.c, a, PAGE, 0) :
					mapwatch_cache_find(ie.c, a, PAGE, 0);
		if (!e)
			continue;
		atomic_fetch_add(&ie.ops, 1);
		if (rand_r(&seed) % 3 == 0) {
			r = mapwatch_cache_invalidate_entry(ie.c, e, ie_done, NULL);
			if (!r)
				atomic_fetch_add(&ie.accepted, 1);
			else if (r == -EBUSY)
				atomic_fetch_add(&ie.busy, 1);
			else
				abort();
			g = mapwatch_cache_get(ie.c, a, PAGE, 0);
			if (g == e)
				atomic_fetch_add(&ie.returned_again, 1);
			mapwatch_cache_put(ie.c, g);
		}
		mapwatch_cache_put(ie.c, e);
	}
	return NULL;
}

TEST(invalidate_entry_races_gets_and_puts)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	pthread_t t[4];
	double secs = getenv("RACE_SECONDS") ? atof(getenv("RACE_SECONDS")) : 1;

	fake_init(&f);
	ie.c = fake_cache(mw, &f, 0, 0);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, ie_worker,
					 (void *)(uintptr_t)(i + 1)), 0);
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&ie.stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	tap_diag("%ld lookups, %ld invalidations accepted, %ld busy, %ld done, %ld registrations",
		 (long)ie.ops, (long)ie.accepted, (long)ie.busy,
		 (long)ie.done, (long)f.nreg);
	EXPECT_EQ(ie.done, ie.accepted);	/* every entry is put by now */
	EXPECT_EQ(ie.returned_again, 0);
	ASSERT_GT(ie.accepted, 10);
	mapwatch_cache_destroy(ie.c);
	EXPECT_EQ(ie.done, ie.accepted);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/* --- the stale-registration scenario ------------------------------------------ */

/* The fake "pins" what the memory holds when registered. */
static uint64_t tag_content(struct fake *f, uintptr_t addr, size_t len)
{
	(void)f;
	(void)len;
	return *(volatile uint64_t *)addr;
}

/*
 * Register a buffer through the cache, munmap it, map new memory at the
 * same address: the next get must miss and register the new memory.  The
 * manual backend stands in for the kernel (mapwatch_invalidate() right
 * after munmap, as the module does inside munmap).
 */
TEST(stale_registration_scenario_manual)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e;
	struct freg *old;
	char *p, *q;

	fake_init(&f);
	f.tag = tag_content;
	c = fake_cache(mw, &f, 0, 0);
	p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	*(uint64_t *)p = 0x1111;
	e = get(c, p, 4 * PAGE, 0);
	old = reg_of(e);
	ASSERT_EQ(old->tag, 0x1111);
	mapwatch_cache_put(c, e);
	ASSERT_TRUE(touch(c, p, 4 * PAGE) == old);		/* cached */

	ASSERT_OK(munmap(p, 4 * PAGE));
	ASSERT_OK(mapwatch_invalidate(mw, p, 4 * PAGE));	/* "the kernel" */
	q = mmap(p, 4 * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (q == MAP_FAILED && errno == EEXIST)
		SKIP("the address was taken again before we could remap it");
	ASSERT_TRUE(q == p);
	*(uint64_t *)q = 0x2222;

	e = get(c, q, 4 * PAGE, 0);
	ASSERT_TRUE(reg_of(e) != old);
	ASSERT_EQ(reg_of(e)->tag, 0x2222);		/* the new memory */
	ASSERT_EQ(f.nreg, 2);
	ASSERT_TRUE(old->dead);
	ASSERT_EQ(stats(c).misses, 2);
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/* --- fork ---------------------------------------------------------------------- */

TEST(child_after_fork_gets_eio_and_can_start_over)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct mapwatch_cache *c;
	pid_t pid;
	int st;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	touch(c, BASE, PAGE);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		struct mapwatch *mw2;
		struct mapwatch_cache *c2;
		struct fake f2;

		/* Not even a hit on the parent's entry. */
		errno = 0;
		if (mapwatch_cache_get(c, BASE, PAGE, 0) || errno != EIO)
			_exit(1);
		if (mapwatch_cache_get(c, BASE + PAGE, PAGE, 0) || errno != EIO)
			_exit(2);
		if (mapwatch_open(&mw2, MAPWATCH_BACKEND_MANUAL, 8, NULL))
			_exit(3);
		fake_init(&f2);
		c2 = mapwatch_cache_create(mw2, &(struct mapwatch_cache_ops){
			.reg = fake_reg, .dereg = fake_dereg, .ctx = &f2 }, NULL);
		if (!c2)
			_exit(4);
		mapwatch_cache_put(c2, mapwatch_cache_get(c2, BASE, PAGE, 0));
		if (f2.nreg != 1)
			_exit(5);
		mapwatch_cache_destroy(c2);
		mapwatch_close(mw2);
		/* The copies go, without deregistering the parent's. */
		mapwatch_cache_destroy(c);
		mapwatch_close(mw);
		if (f.ndereg != 0)
			_exit(7);
		_exit(f2.ndereg == 1 ? 0 : 6);
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	/* The parent's cache carries on. */
	touch(c, BASE, PAGE);
	ASSERT_EQ(f.nreg, 1);
	ASSERT_OK(mapwatch_invalidate(mw, BASE, PAGE));
	touch(c, BASE, PAGE);
	ASSERT_EQ(f.nreg, 2);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* --- bad arguments ------------------------------------------------------------- */

TEST(bad_arguments)
{
	struct mapwatch *mw = manual(8);
	struct fake f;
	struct mapwatch_cache_ops ops = { .reg = fake_reg, .dereg = fake_dereg, .ctx = &f };
	struct mapwatch_cache_ops no_reg = { .dereg = fake_dereg, .ctx = &f };
	struct mapwatch_cache_ops no_dereg = { .reg = fake_reg, .ctx = &f };
	struct mapwatch_cache_config odd = { .align = 3 * PAGE };
	struct mapwatch_cache *c;

	fake_init(&f);
	ASSERT_BAD_INPUT("mapwatch_cache_create", "NULL monitor",
			 nul(mapwatch_cache_create(NULL, &ops, NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_create", "NULL ops",
			 nul(mapwatch_cache_create(mw, NULL, NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_create", "no reg callback",
			 nul(mapwatch_cache_create(mw, &no_reg, NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_create", "no dereg callback",
			 nul(mapwatch_cache_create(mw, &no_dereg, NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_create", "align not a power of two",
			 nul(mapwatch_cache_create(mw, &ops, &odd)), EINVAL);
	c = fake_cache(mw, &f, 0, 0);
	ASSERT_BAD_INPUT("mapwatch_cache_get", "len 0",
			 nul(mapwatch_cache_get(c, BASE, 0, 0)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_get", "range wraps",
			 nul(mapwatch_cache_get(c, (void *)-PAGE, 2 * PAGE, 0)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_get", "range ends at the top",
			 nul(mapwatch_cache_get(c, (void *)-PAGE, PAGE - 1, 0)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_get", "NULL cache",
			 nul(mapwatch_cache_get(NULL, BASE, PAGE, 0)), EINVAL);
	ASSERT_EQ(f.nreg, 0);
	ASSERT_EQ(stats(c).misses, 0);
	/* NULL is ignored by put, flush and destroy. */
	mapwatch_cache_put(c, NULL);
	mapwatch_cache_put(NULL, NULL);
	mapwatch_cache_flush(NULL);
	mapwatch_cache_destroy(NULL);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
