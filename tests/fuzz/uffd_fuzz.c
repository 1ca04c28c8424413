// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer harness for the registration cache over the userfaultfd
 * backend, with threads, on real memory.
 *
 * A region of PAGES pages; every page carries a serial number in its first
 * bytes, new each time the page is replaced (mmap MAP_FIXED over it) or
 * emptied (MADV_DONTNEED).  The fake registration snapshots the serials of
 * the pages it covers.  The input is two programs of byte pairs, run at the
 * same time by two threads: get a range, check it, put it; replace pages;
 * empty a page; flush.  A page's rwlock orders the threads: a get holds the
 * read side of the pages it asks for, a change the write side, so every
 * change a get must see has returned before the get began.  Checked: the
 * registration a get returns still names the pages there now (the stale
 * hit the cache exists to stop), every registration is deregistered
 * exactly once.  Exits quietly (every input a no-op) where userfaultfd is
 * not permitted.
 *
 *   build/fuzz/uffd_fuzz -runs=N -seed=S        (make check runs a short one)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mapwatch.h"

#define PAGES 16
#define PAGE 4096UL

#define CHECK(c)							\
	do {								\
		if (!(c)) {						\
			fprintf(stderr, "uffd_fuzz: %s:%d: %s\n",	\
				__FILE__, __LINE__, #c);		\
			abort();					\
		}							\
	} while (0)

struct fake_reg {
	uintptr_t start;
	size_t len;
	uint64_t serial[PAGES];
	_Atomic bool dead;
};

static char *region;
static pthread_rwlock_t page_lock[PAGES];
static _Atomic uint64_t next_serial = 1;
static _Atomic long nreg, ndereg;
static bool unavailable;

static uint64_t *serial_of(unsigned int p)
{
	return (uint64_t *)(region + p * PAGE);
}

static void *fake_reg(void *ctx, void *addr, size_t len, int flags)
{
	struct fake_reg *r = calloc(1, sizeof(*r));

	(void)ctx;
	(void)flags;
	if (!r)
		return NULL;
	r->start = (uintptr_t)addr;
	r->len = len;
	/* The pages as the registration would pin them now. */
	for (uintptr_t a = r->start; a < r->start + len; a += PAGE)
		r->serial[(a - (uintptr_t)region) / PAGE] =
			*serial_of((a - (uintptr_t)region) / PAGE);
	atomic_fetch_add(&nreg, 1);
	return r;
}

static void fake_dereg(void *ctx, void *reg)
{
	struct fake_reg *r = reg;

	(void)ctx;
	CHECK(!atomic_exchange(&r->dead, true));
	atomic_fetch_add(&ndereg, 1);
	free(r);
}

/* A new page, with a new serial. */
static void replace(unsigned int p)
{
	char *q = mmap(region + p * PAGE, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	CHECK(q == region + p * PAGE);
	*serial_of(p) = atomic_fetch_add(&next_serial, 1);
}

static void empty(unsigned int p)
{
	CHECK(madvise(region + p * PAGE, PAGE, MADV_DONTNEED) == 0);
	*serial_of(p) = atomic_fetch_add(&next_serial, 1);
}

struct prog {
	struct mapwatch_cache *c;
	const uint8_t *data;
	size_t size;
};

static void get_check_put(struct mapwatch_cache *c, unsigned int p,
			  unsigned int n)
{
	struct mapwatch_cache_entry *e;

	for (unsigned int k = p; k < p + n; k++)
		pthread_rwlock_rdlock(&page_lock[k]);
	e = mapwatch_cache_get(c, region + p * PAGE, n * PAGE, 0);
	if (e) {
		struct fake_reg *r = mapwatch_cache_entry_reg(e);

		CHECK(!atomic_load(&r->dead));
		CHECK(r->start <= (uintptr_t)region + p * PAGE &&
		      (uintptr_t)region + (p + n) * PAGE <= r->start + r->len);
		for (unsigned int k = p; k < p + n; k++)
			CHECK(r->serial[k] == *serial_of(k));	/* not stale */
		mapwatch_cache_put(c, e);
	}
	for (unsigned int k = p; k < p + n; k++)
		pthread_rwlock_unlock(&page_lock[k]);
}

static void *run(void *arg)
{
	const struct prog *pr = arg;

	for (size_t i = 0; i + 1 < pr->size; i += 2) {
		unsigned int op = pr->data[i] % 8, arg8 = pr->data[i + 1];
		unsigned int p = arg8 % PAGES;
		unsigned int n = 1 + (arg8 / PAGES) % 4;

		if (p + n > PAGES)
			n = PAGES - p;
		switch (op) {
		case 0: case 1: case 2: case 3:
			get_check_put(pr->c, p, n);
			break;
		case 4: case 5:
			for (unsigned int k = p; k < p + n; k++) {
				pthread_rwlock_wrlock(&page_lock[k]);
				replace(k);
				pthread_rwlock_unlock(&page_lock[k]);
			}
			break;
		case 6:
			pthread_rwlock_wrlock(&page_lock[p]);
			empty(p);
			pthread_rwlock_unlock(&page_lock[p]);
			break;
		case 7:
			mapwatch_cache_flush(pr->c);
			break;
		}
	}
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct mapwatch *mw;

	(void)argc;
	(void)argv;
	/* Kept open: the process's userfaultfd and reader thread stay up
	 * between inputs instead of starting anew for each. */
	if (mapwatch_open(&mw, MAPWATCH_BACKEND_USERFAULTFD, 1, NULL)) {
		fprintf(stderr, "uffd_fuzz: userfaultfd not permitted here: every input is a no-op\n");
		unavailable = true;
		return 0;
	}
	region = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(region != MAP_FAILED);
	for (unsigned int p = 0; p < PAGES; p++) {
		pthread_rwlock_init(&page_lock[p], NULL);
		replace(p);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mapwatch_cache_config cfg = { 0 };
	struct mapwatch_cache_ops ops = { .reg = fake_reg, .dereg = fake_dereg };
	struct prog a, b;
	struct mapwatch *mw;
	pthread_t t;
	size_t half;

	if (unavailable || size < 3)
		return 0;
	nreg = ndereg = 0;
	cfg.max_entries = data[0] % 6;		/* 0: unlimited */
	CHECK(mapwatch_open(&mw, MAPWATCH_BACKEND_USERFAULTFD,
			    1 + data[0] % 16, NULL) == 0);
	a.c = b.c = mapwatch_cache_create(mw, &ops, &cfg);
	CHECK(a.c);
	half = (size - 1) / 2 & ~(size_t)1;
	a.data = data + 1;
	a.size = half;
	b.data = data + 1 + half;
	b.size = size - 1 - half;
	CHECK(pthread_create(&t, NULL, run, &b) == 0);
	run(&a);
	CHECK(pthread_join(t, NULL) == 0);
	mapwatch_cache_destroy(a.c);
	mapwatch_close(mw);
	CHECK(nreg == ndereg);
	return 0;
}
