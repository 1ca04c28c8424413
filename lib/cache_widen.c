// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Widening a miss: a registration widened to whole units (cfg.align, a
 * request's align, a transparent huge page) where every page it adds is
 * mapped, probed with msync().
 */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache_internal.h"

uintptr_t mwc_page_size(void)
{
	static _Atomic uintptr_t pg;
	uintptr_t v = atomic_load_explicit(&pg, memory_order_relaxed);

	if (!v) {
		v = (uintptr_t)sysconf(_SC_PAGESIZE);
		atomic_store_explicit(&pg, v, memory_order_relaxed);
	}
	return v;
}

/* The transparent huge page size (a PMD), read once. */
uintptr_t mwc_huge_size(void)
{
	static _Atomic uintptr_t cached;
	uintptr_t v = atomic_load_explicit(&cached, memory_order_relaxed);
	unsigned long long x = 0;
	FILE *f;

	if (v)
		return v;
	f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "re");
	if (f) {
		if (fscanf(f, "%llu", &x) != 1)
			x = 0;
		fclose(f);
	}
	v = x && !(x & (x - 1)) ? (uintptr_t)x : (uintptr_t)2 << 20;
	atomic_store_explicit(&cached, v, memory_order_relaxed);
	return v;
}

/* Every page of [a, b) is mapped (msync fails with ENOMEM on a hole, and
 * with MS_ASYNC does nothing else). */
static bool mapped(uintptr_t a, uintptr_t b)
{
	uintptr_t pg = mwc_page_size();

	a &= ~(pg - 1);
	b = (b + pg - 1) & ~(pg - 1);
	return a >= b || !msync((void *)a, b - a, MS_ASYNC);
}

/* Widen [k->s, k->end) (aligned to n) towards units of a, each side only
 * as far as every page it adds is mapped: halve the unit until it is. */
void mwc_widen(struct key *k, uintptr_t a, uintptr_t n)
{
	uintptr_t s = k->s, end = k->end;

	for (uintptr_t u = a; u > n; u >>= 1) {
		uintptr_t x = k->s & ~(u - 1);

		if (x == k->s || mapped(x, k->s)) {
			s = x;
			break;
		}
	}
	for (uintptr_t u = a; u > n; u >>= 1) {
		uintptr_t x = (k->end + u - 1) & ~(u - 1);

		if (x < k->end)		/* the top of the address space */
			continue;
		if (x == k->end || mapped(k->end, x)) {
			end = x;
			break;
		}
	}
	k->s = s;
	k->end = end;
}
