// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer harness for libmapwatch's registration cache.
 *
 * The input is a program: each byte pair is an operation on a cache over the
 * manual backend (mapwatch_invalidate() plays the kernel) and a fake
 * registration that snapshots the generation of every page it covers.
 * Checked after every operation:
 *   - get() returns an entry covering the request, registered with at least
 *     the requested flags, whose pages have not changed since it was
 *     registered (a stale registration is the bug the cache exists to stop);
 *   - every registration is deregistered exactly once, and only after its
 *     last reference is put; everything is released by destroy.
 * ASan/UBSan (and libFuzzer's leak check) catch the rest.
 *
 *   build/fuzz/cache_fuzz -runs=N -seed=S        (make check runs a short one)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapwatch.h"

#define PAGES 64
#define PAGE 4096UL
#define BASE 0x10000000UL
#define HELD 16

struct fake_reg {
	uintptr_t start;
	size_t len;
	int flags;
	unsigned int refs_seen;
	uint32_t gens[PAGES];
	bool live;
};

static uint32_t gen[PAGES];
static long nreg, ndereg;

#define CHECK(c)							\
	do {								\
		if (!(c)) {						\
			fprintf(stderr, "cache_fuzz: %s:%d: %s\n",	\
				__FILE__, __LINE__, #c);		\
			abort();					\
		}							\
	} while (0)

static void *fake_reg(void *ctx, void *addr, size_t len, int flags)
{
	struct fake_reg *r;
	uintptr_t a = (uintptr_t)addr;

	(void)ctx;
	CHECK(a >= BASE && a + len <= BASE + PAGES * PAGE && len);
	if (flags & 0x80)		/* the caller's way to make reg fail */
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->start = a;
	r->len = len;
	r->flags = flags;
	r->live = true;
	memcpy(r->gens, gen, sizeof(gen));
	nreg++;
	return r;
}

static void fake_dereg(void *ctx, void *reg)
{
	struct fake_reg *r = reg;

	(void)ctx;
	CHECK(r->live);
	r->live = false;
	ndereg++;
	free(r);
}

static bool still_valid(const struct fake_reg *r)
{
	for (uintptr_t p = (r->start - BASE) / PAGE;
	     p < (r->start + r->len - BASE + PAGE - 1) / PAGE; p++)
		if (r->gens[p] != gen[p])
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mapwatch_cache_config cfg = { 0 };
	struct mapwatch_cache_ops ops = { .reg = fake_reg, .dereg = fake_dereg };
	struct mapwatch_cache_entry *held[HELD] = { 0 };
	struct mapwatch_cache *c;
	struct mapwatch *mw;
	size_t i = 0;

	if (size < 2)
		return 0;
	memset(gen, 0, sizeof(gen));
	nreg = ndereg = 0;
	cfg.max_entries = data[0] % 9;		/* 0: unlimited */
	cfg.max_bytes = (data[1] % 5) * 4 * PAGE;
	CHECK(mapwatch_open(&mw, MAPWATCH_BACKEND_MANUAL, 1 + data[0] % 32,
			    NULL) == 0);
	c = mapwatch_cache_create(mw, &ops, &cfg);
	CHECK(c);
	for (i = 2; i + 1 < size; i += 2) {
		unsigned int op = data[i] % 8, arg = data[i + 1];
		unsigned int slot = arg % HELD;
		uintptr_t addr = BASE + (arg % PAGES) * PAGE + (data[i] >> 3) * 97;
		size_t len = 1 + (data[i] >> 3) * 1531 % (8 * PAGE);
		struct mapwatch_cache_entry *e;

		if (addr + len > BASE + PAGES * PAGE)
			len = BASE + PAGES * PAGE - addr;
		switch (op) {
		case 0: case 1: case 2:	/* get */
			if (held[slot])
				break;
			e = mapwatch_cache_get(c, (void *)addr, len,
					       arg & 0x81);
			if (!e)
				break;
			{
				struct fake_reg *r = mapwatch_cache_entry_reg(e);
				uintptr_t s = (uintptr_t)mapwatch_cache_entry_addr(e);

				CHECK(r && r->live);
				CHECK(s <= addr && addr + len <=
				      s + mapwatch_cache_entry_len(e));
				CHECK(r->start <= addr &&
				      addr + len <= r->start + r->len);
				CHECK((r->flags & (arg & 0x81)) == (arg & 0x81));
				CHECK(still_valid(r));
			}
			held[slot] = e;
			break;
		case 3: case 4:		/* put */
			if (held[slot]) {
				struct fake_reg *r = mapwatch_cache_entry_reg(held[slot]);

				CHECK(r->live);	/* a held entry stays registered */
				mapwatch_cache_put(c, held[slot]);
				held[slot] = NULL;
			}
			break;
		case 5: case 6: {	/* the mapping changes */
			uintptr_t p = (addr - BASE) / PAGE;
			size_t n = 1 + arg % 4;

			for (size_t k = p; k < p + n && k < PAGES; k++)
				gen[k]++;
			CHECK(mapwatch_invalidate(mw, (void *)(BASE + p * PAGE),
						  n * PAGE) == 0);
			break;
		}
		case 7:
			mapwatch_cache_flush(c);
			break;
		}
		CHECK(ndereg <= nreg);
	}
	for (i = 0; i < HELD; i++)
		mapwatch_cache_put(c, held[i]);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
	CHECK(nreg == ndereg);
	return 0;
}
