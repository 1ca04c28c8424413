// SPDX-License-Identifier: GPL-2.0-only
/*
 * Overlapping entries (F16): a growing prefix (MPI sending 8 KiB, then
 * 1 MiB, of one buffer) registered the same pages twice and kept both, so
 * memlock and the NIC's translations were charged twice.  A miss that
 * registers a range covering idle entries, which it serves in their place
 * (same memory type and device, at least their flags), takes them out.
 * The fake registration counts the bytes it holds pinned.  MANUAL monitor.
 */
#define _GNU_SOURCE
#include "host/libtest.h"

#define BASE ((char *)0x100000000000UL)
#define MIB (1UL << 20)

struct pinned {
	struct fake f;
	_Atomic long bytes;
};

static void on_reg(struct fake *f, struct freg *r)
{
	atomic_fetch_add(&((struct pinned *)f)->bytes, (long)r->len);
}

static void on_dereg(struct fake *f, struct freg *r)
{
	atomic_fetch_sub(&((struct pinned *)f)->bytes, (long)r->len);
}

static long pinned_bytes(struct pinned *p)
{
	return atomic_load(&p->bytes);
}

static long nreg(struct pinned *p)
{
	return atomic_load(&p->f.nreg);
}

static struct mapwatch_cache *pinned_cache(struct mapwatch *mw, struct pinned *p)
{
	memset(p, 0, sizeof(*p));
	p->f.on_reg = on_reg;
	p->f.on_dereg = on_dereg;
	return fake_cache(mw, &p->f, 0, 0);
}

static void touch(struct mapwatch_cache *c, void *addr, size_t len, int flags)
{
	struct mapwatch_cache_entry *e = mapwatch_cache_get(c, addr, len, flags);

	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(c, e);
}

/* Device memory: mem_type, device. */
static void touch_mem(struct mapwatch_cache *c, void *addr, size_t len,
		      uint32_t mem_type, uint64_t device)
{
	struct mapwatch_cache_req r = {
		.addr = addr, .len = len, .mem_type = mem_type, .device = device,
	};
	struct mapwatch_cache_entry *e = mapwatch_cache_get_req(c, &r);

	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(c, e);
}

static uint64_t entries(struct mapwatch_cache *c)
{
	struct mapwatch_cache_stats s;

	ASSERT_EQ(mapwatch_cache_get_stats(c, &s), 0);
	return s.entries;
}

/* The review's case: same start, growing length. */
TEST(growing_prefix_pins_once)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 64);
	struct pinned p;
	struct mapwatch_cache *c = pinned_cache(mw, &p);

	touch(c, BASE, 8192, 0);
	touch(c, BASE, 64 * 1024, 0);
	touch(c, BASE, MIB, 0);
	tap_diag("pinned %ld bytes in %llu entries for a 1 MiB buffer",
		 pinned_bytes(&p), (unsigned long long)entries(c));
	EXPECT_EQ(pinned_bytes(&p), (long)MIB);
	EXPECT_EQ(entries(c), 1);
	/* The small requests hit the large entry now. */
	touch(c, BASE, 8192, 0);
	EXPECT_EQ(nreg(&p), 3);
	mapwatch_cache_destroy(c);
	EXPECT_EQ(pinned_bytes(&p), 0);
	mapwatch_close(mw);
}

/* An idle entry inside the new range, starting above it, goes too. */
TEST(covered_entries_inside_go)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 64);
	struct pinned p;
	struct mapwatch_cache *c = pinned_cache(mw, &p);

	touch(c, BASE + 64 * 1024, 8192, 0);
	touch(c, BASE + 512 * 1024, 4096, 0);
	touch(c, BASE + MIB - 4096, 8192, 0);	/* sticks out: stays */
	touch(c, BASE, MIB, 0);
	EXPECT_EQ(pinned_bytes(&p), (long)(MIB + 8192));
	EXPECT_EQ(entries(c), 2);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* What the new entry cannot serve, or someone holds, stays. */
TEST(held_or_unlike_entries_stay)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 64);
	struct pinned p;
	struct mapwatch_cache *c = pinned_cache(mw, &p);
	struct mapwatch_cache_entry *held, *e;

	held = mapwatch_cache_get(c, BASE, 8192, 0);
	ASSERT_TRUE(held != NULL);
	touch(c, BASE + 64 * 1024, 8192, 2);	/* flags the new one lacks */
	touch_mem(c, BASE + 128 * 1024, 8192, 1, 0);	/* another mem_type */
	touch_mem(c, BASE + 256 * 1024, 8192, 1, 1);	/* and device */
	touch(c, BASE, MIB, 1);
	EXPECT_EQ(pinned_bytes(&p), (long)(MIB + 4 * 8192));
	EXPECT_EQ(entries(c), 5);
	/* Device 0's memory over the same addresses: device 0's idle entry
	 * goes, device 1's stays (and the host entries). */
	touch_mem(c, BASE, MIB, 1, 0);
	EXPECT_EQ(pinned_bytes(&p), (long)(2 * MIB + 3 * 8192));
	EXPECT_EQ(entries(c), 5);
	touch_mem(c, BASE + 256 * 1024, 8192, 1, 1);	/* still a hit */
	/* Both still hit. */
	e = mapwatch_cache_get(c, BASE + 64 * 1024, 8192, 2);
	ASSERT_TRUE(e != NULL);
	EXPECT_EQ(mapwatch_cache_entry_len(e), 8192);
	mapwatch_cache_put(c, e);
	mapwatch_cache_put(c, held);
	EXPECT_EQ(nreg(&p), 6);
	mapwatch_cache_destroy(c);
	EXPECT_EQ(pinned_bytes(&p), 0);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
