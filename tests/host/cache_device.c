// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device memory in the cache (mem_type other than MAPWATCH_MEM_HOST): no
 * watch of the monitor, only mapwatch_cache_invalidate() (a device
 * allocator's free hook, as libfabric's cuda/rocr/ze monitors) takes it
 * out.  An invalidation that lands while the range is being registered
 * must not be lost (F4), and invalidation must find its entries among
 * many (F25).  MANUAL monitor.
 */
#define _GNU_SOURCE
#include "host/libtest.h"

#define BASE ((char *)0x100000000000UL)
#define GPU 7u			/* the caller's memory type */
#define DEV 3u			/* and device */

struct dev {
	struct fake f;
	struct mapwatch_cache *c;
	_Atomic uint64_t seq;		/* registrations and invalidations */
	int invalidate_in_reg;		/* so many regs invalidate their range */
	uint64_t invalidated_at;	/* seq of the last such invalidation */
	uint64_t other_dev;		/* of this device instead */
	size_t other_off;		/* of the range this far on instead */
};

static long nreg(const struct dev *d)
{
	return atomic_load(&d->f.nreg);
}

static long ndereg(const struct dev *d)
{
	return atomic_load(&d->f.ndereg);
}

static uint64_t seq_tag(struct fake *f, uintptr_t addr, size_t len)
{
	(void)addr;
	(void)len;
	return atomic_fetch_add(&((struct dev *)f)->seq, 1) + 1;
}

/* The device's free hook runs while this thread registers the range: the
 * buffer is freed (and may be handed out again) under the registration. */
static void *dev_reg_ex(void *ctx, void *addr, size_t len, int flags,
			void *arg, void *data)
{
	struct dev *d = ctx;
	void *r = fake_reg(&d->f, addr, len, flags);

	(void)arg;
	(void)data;
	if (r && d->invalidate_in_reg > 0) {
		d->invalidate_in_reg--;
		d->invalidated_at = atomic_fetch_add(&d->seq, 1) + 1;
		if (mapwatch_cache_invalidate(d->c, GPU, DEV + d->other_dev,
					      (char *)addr + d->other_off, len))
			abort();
	}
	return r;
}

static void dev_dereg(void *ctx, void *reg)
{
	fake_dereg(&((struct dev *)ctx)->f, reg);
}

static struct mapwatch_cache *dev_cache(struct mapwatch *mw, struct dev *d)
{
	struct mapwatch_cache_ops ops = {
		.reg_ex = dev_reg_ex, .dereg = dev_dereg, .ctx = d,
	};

	memset(d, 0, sizeof(*d));
	d->f.tag = seq_tag;
	d->c = mapwatch_cache_create(mw, &ops, NULL);
	ASSERT_TRUE(d->c != NULL);
	return d->c;
}

static struct mapwatch_cache_entry *get_dev(struct mapwatch_cache *c,
					    void *addr, size_t len)
{
	struct mapwatch_cache_req q = {
		.addr = addr, .len = len, .mem_type = GPU, .device = DEV,
	};

	return mapwatch_cache_get_req(c, &q);
}

/*
 * F4: mapwatch_cache_invalidate() of a device range while a get registers
 * it.  The invalidation used to find nothing (the entry was not yet in
 * c->all) and the entry, registered before it, was cached and hit: a
 * registration of freed device memory.  The get must hand out a
 * registration made after the invalidation, and the earlier one must go.
 */
TEST(device_invalidate_during_reg_is_not_lost)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct dev d;
	struct mapwatch_cache *c = dev_cache(mw, &d);
	struct mapwatch_cache_entry *e, *again;
	struct freg *r;

	d.invalidate_in_reg = 1;
	e = get_dev(c, BASE, PAGE);
	ASSERT_TRUE(e != NULL);
	r = reg_of(e);
	tap_diag("registration #%llu handed out, invalidated at #%llu; "
		 "%ld reg, %ld dereg, changed %d",
		 (unsigned long long)r->tag, (unsigned long long)d.invalidated_at,
		 nreg(&d), ndereg(&d),
		 mapwatch_cache_entry_changed(e));
	/* Either way the caller must not use a registration from before:
	 * a fresh one, or one that says it changed. */
	EXPECT_TRUE(r->tag > d.invalidated_at || mapwatch_cache_entry_changed(e));
	mapwatch_cache_put(c, e);
	/* The next get must not hit the registration from before. */
	again = get_dev(c, BASE, PAGE);
	ASSERT_TRUE(again != NULL);
	EXPECT_TRUE(reg_of(again)->tag > d.invalidated_at);
	EXPECT_FALSE(mapwatch_cache_entry_changed(again));
	mapwatch_cache_put(c, again);
	mapwatch_cache_destroy(c);
	EXPECT_EQ(nreg(&d), ndereg(&d));
	mapwatch_close(mw);
}

/* F4: a range invalidated under every registration: EAGAIN after a few
 * tries (as host memory that keeps changing), nothing left registered. */
TEST(device_invalidated_under_every_reg_fails_eagain)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct dev d;
	struct mapwatch_cache *c = dev_cache(mw, &d);
	struct mapwatch_cache_entry *e;

	d.invalidate_in_reg = 1000;
	int err;

	errno = 0;
	e = get_dev(c, BASE, PAGE);
	err = errno;
	tap_diag("get: %p errno %d; %ld reg, %ld dereg", (void *)e, err,
		 nreg(&d), ndereg(&d));
	EXPECT_TRUE(e == NULL);
	EXPECT_EQ(err, EAGAIN);
	mapwatch_cache_put(c, e);
	EXPECT_EQ(nreg(&d), ndereg(&d));
	d.invalidate_in_reg = 0;
	e = get_dev(c, BASE, PAGE);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	EXPECT_EQ(nreg(&d), ndereg(&d));
	mapwatch_close(mw);
}

/* An invalidation of another device, or of another range, during the
 * registration costs no second registration. */
TEST(device_invalidate_of_other_memory_during_reg_is_ignored)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct dev d;
	struct mapwatch_cache *c = dev_cache(mw, &d);
	struct mapwatch_cache_entry *e;

	d.invalidate_in_reg = 1;
	d.other_dev = 1;
	e = get_dev(c, BASE, PAGE);
	ASSERT_TRUE(e != NULL);
	EXPECT_FALSE(mapwatch_cache_entry_changed(e));
	mapwatch_cache_put(c, e);
	d.invalidate_in_reg = 1;
	d.other_dev = 0;
	d.other_off = PAGE;
	e = get_dev(c, BASE + 2 * PAGE, PAGE);
	ASSERT_TRUE(e != NULL);
	EXPECT_FALSE(mapwatch_cache_entry_changed(e));
	mapwatch_cache_put(c, e);
	EXPECT_EQ(nreg(&d), 2);
	EXPECT_EQ(ndereg(&d), 0);
	/* Both cached: hits. */
	e = get_dev(c, BASE, PAGE);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(c, e);
	e = get_dev(c, BASE + 2 * PAGE, PAGE);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(c, e);
	EXPECT_EQ(nreg(&d), 2);
	mapwatch_cache_destroy(c);
	EXPECT_EQ(nreg(&d), ndereg(&d));
	mapwatch_close(mw);
}

/* --- F25: finding the entries of a device range ---------------------------- */

uint64_t mw_cache_test_visited(struct mapwatch_cache *c);

/*
 * F25: a device invalidation (a cudaFree hook: often) walked every entry
 * alive under the cache mutex.  With 10,000 entries, invalidating one
 * buffer must look at a few of them, not all (a count of entries looked
 * at, not a time).
 */
TEST(device_invalidate_looks_at_the_range_only)
{
	enum { N = 10000 };
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct dev d;
	struct mapwatch_cache *c = dev_cache(mw, &d);
	struct mapwatch_cache_entry *e;
	uint64_t before, looked;

	for (int i = 0; i < N; i++) {
		e = get_dev(c, BASE + 2 * i * PAGE, PAGE);
		ASSERT_TRUE(e != NULL);
		mapwatch_cache_put(c, e);
	}
	before = mw_cache_test_visited(c);
	ASSERT_EQ(mapwatch_cache_invalidate(c, GPU, DEV, BASE + 2 * 5000 * PAGE,
					    PAGE), 0);
	looked = mw_cache_test_visited(c) - before;
	tap_diag("invalidating 1 of %d entries looked at %llu", N,
		 (unsigned long long)looked);
	EXPECT_EQ(ndereg(&d), 1);
	EXPECT_LE(looked, 200);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* Entries outside the index still reached: held across a flush, and
 * handed out uncached (max_entries 1, both held). */
TEST(device_invalidate_reaches_held_entries_out_of_the_cache)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct dev d;
	struct mapwatch_cache_ops ops = {
		.reg_ex = dev_reg_ex, .dereg = dev_dereg, .ctx = &d,
	};
	struct mapwatch_cache_config cfg = { .max_entries = 1 };
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *flushed, *cached, *uncached;
	struct mapwatch_cache_stats s;

	memset(&d, 0, sizeof(d));
	c = d.c = mapwatch_cache_create(mw, &ops, &cfg);
	ASSERT_TRUE(c != NULL);
	flushed = get_dev(c, BASE, PAGE);
	ASSERT_TRUE(flushed != NULL);
	mapwatch_cache_flush(c);			/* out of the cache, held */
	cached = get_dev(c, BASE + 2 * PAGE, PAGE);
	uncached = get_dev(c, BASE + 4 * PAGE, PAGE);	/* the one slot held */
	ASSERT_TRUE(cached != NULL && uncached != NULL);
	ASSERT_EQ(mapwatch_cache_get_stats(c, &s), 0);
	ASSERT_EQ(s.uncached, 1);
	ASSERT_EQ(mapwatch_cache_invalidate(c, GPU, DEV, BASE, 6 * PAGE), 0);
	EXPECT_TRUE(mapwatch_cache_entry_changed(flushed));
	EXPECT_TRUE(mapwatch_cache_entry_changed(cached));
	EXPECT_TRUE(mapwatch_cache_entry_changed(uncached));
	mapwatch_cache_put(c, flushed);
	mapwatch_cache_put(c, cached);
	mapwatch_cache_put(c, uncached);
	EXPECT_EQ(nreg(&d), ndereg(&d));
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
