// SPDX-License-Identifier: GPL-2.0-only
/*
 * A libmapwatch client built against an OLD copy of <mapwatch.h>
 * (MAPWATCH_HEADER: mapwatch-1.0.h or mapwatch-1.1-base.h) and run against
 * the library of today (tests/packaging, the abi_* cases).  It uses only
 * what every header has and checks that the library reads no more of its
 * input structs than the old header declares (each sits right below a
 * PROT_NONE page), writes no more of its output structs (guard bytes), and
 * honours the old fields.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include MAPWATCH_HEADER
#include "tap.h"

#define PAGE 4096UL
#define BASE ((char *)0x100000000000UL)

/* A copy of *src placed so that its last byte is the last of a page
 * followed by an inaccessible one: reading past it faults. */
static void *at_page_end(const void *src, size_t size)
{
	char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	ASSERT_EQ(mprotect(p + PAGE, PAGE, PROT_NONE), 0);
	memcpy(p + PAGE - size, src, size);
	return p + PAGE - size;
}

static atomic_int nreg, ndereg;

static void *fake_reg(void *ctx, void *addr, size_t len, int flags)
{
	(void)ctx, (void)len, (void)flags;
	atomic_fetch_add(&nreg, 1);
	return addr;		/* any non-NULL registration */
}

static void fake_dereg(void *ctx, void *reg)
{
	(void)ctx, (void)reg;
	atomic_fetch_add(&ndereg, 1);
}

static struct mapwatch *manual(void)
{
	struct mapwatch *mw = NULL;
	const char *why = NULL;

	ASSERT_EQ(mapwatch_open(&mw, MAPWATCH_BACKEND_MANUAL, 16, &why), 0);
	return mw;
}

/* The old struct, then guard bytes the library must leave alone. */
#define GUARDED(T) struct { T s; unsigned char guard[256]; }

static void guard_intact(const unsigned char *g, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(g[i], 0xa5);
}

/* The enum values of the old header still name the same backends. */
TEST(backend_values_kept)
{
	struct mapwatch *mw = manual();

	ASSERT_EQ(strcmp(mapwatch_backend_name(MAPWATCH_BACKEND_AUTO), "auto"), 0);
	ASSERT_EQ(strcmp(mapwatch_backend_name(MAPWATCH_BACKEND_KERNEL), "kernel"), 0);
	ASSERT_EQ(strcmp(mapwatch_backend_name(MAPWATCH_BACKEND_USERFAULTFD),
			 "userfaultfd"), 0);
	ASSERT_EQ(strcmp(mapwatch_backend_name(MAPWATCH_BACKEND_MANUAL), "manual"), 0);
	ASSERT_EQ(strcmp(mapwatch_backend_name(mapwatch_backend(mw)), "manual"), 0);
	mapwatch_close(mw);
}

TEST(monitor_stats_fill_only_the_old_struct)
{
	struct mapwatch *mw = manual();
	struct mapwatch_handle h;
	GUARDED(struct mapwatch_stats) st;

	ASSERT_EQ(mapwatch_watch(mw, BASE, PAGE, 7, &h), 0);
	memset(&st, 0xa5, sizeof(st));
	mapwatch_get_stats(mw, &st.s);
	guard_intact(st.guard, sizeof(st.guard));
	EXPECT_EQ(st.s.watched, 1);
	EXPECT_EQ(st.s.events, 0);
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, 1), 0);
	ASSERT_TRUE(mapwatch_changed(&h));
	memset(&st, 0xa5, sizeof(st));
	mapwatch_get_stats(mw, &st.s);
	guard_intact(st.guard, sizeof(st.guard));
	EXPECT_EQ(st.s.events, 1);
	EXPECT_EQ(st.s.overflows, 0);
	mapwatch_close(mw);
}

TEST(cache_reads_only_the_old_ops_and_config)
{
	struct mapwatch *mw = manual();
	struct mapwatch_cache_ops ops = { .reg = fake_reg, .dereg = fake_dereg };
	struct mapwatch_cache_config cfg = { .max_entries = 2 };
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e;
	GUARDED(struct mapwatch_cache_stats) st;

	c = mapwatch_cache_create(mw, at_page_end(&ops, sizeof(ops)),
				  at_page_end(&cfg, sizeof(cfg)));
	ASSERT_TRUE(c != NULL);
	/* Three ranges, max_entries 2: the old field is honoured. */
	for (int i = 0; i < 3; i++) {
		e = mapwatch_cache_get(c, BASE + i * PAGE, PAGE, 0);
		ASSERT_TRUE(e != NULL);
		ASSERT_TRUE(mapwatch_cache_entry_reg(e) == BASE + i * PAGE);
		mapwatch_cache_put(c, e);
	}
	e = mapwatch_cache_get(c, BASE + 2 * PAGE, PAGE, 0);	/* a hit */
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(c, e);
	memset(&st, 0xa5, sizeof(st));
	mapwatch_cache_get_stats(c, &st.s);
	guard_intact(st.guard, sizeof(st.guard));
	EXPECT_EQ(st.s.misses, 3);
	EXPECT_EQ(st.s.hits, 1);
	EXPECT_EQ(st.s.entries, 2);
	EXPECT_EQ(st.s.evict_lru, 1);
	EXPECT_EQ(st.s.registrations, 3);
	EXPECT_EQ(atomic_load(&nreg), 3);
	mapwatch_cache_destroy(c);
	EXPECT_EQ(atomic_load(&ndereg), 3);
	mapwatch_close(mw);
}

TEST(cache_without_config_and_changes)
{
	struct mapwatch *mw = manual();
	struct mapwatch_cache_ops ops = { .reg = fake_reg, .dereg = fake_dereg };
	struct mapwatch_cache *c = mapwatch_cache_create(mw, &ops, NULL);
	struct mapwatch_cache_entry *e;

	ASSERT_TRUE(c != NULL);
	e = mapwatch_cache_get(c, BASE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_FALSE(mapwatch_cache_entry_changed(e));
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, PAGE), 0);
	ASSERT_TRUE(mapwatch_cache_entry_changed(e));
	mapwatch_cache_put(c, e);
	EXPECT_EQ(atomic_load(&ndereg), 1);
	/* Bad input is still refused. */
	errno = 0;
	EXPECT_TRUE(mapwatch_cache_create(mw, NULL, NULL) == NULL);
	EXPECT_EQ(errno, EINVAL);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/*
 * The 1.0.0 release's header says MAPWATCH_BACKEND_AUTO is "kernel module,
 * else userfaultfd" (review 2026-12-07 F17): on a host without the module a
 * program linked in 1.0.0's day (MAPWATCH_LINKED_1_0: against stub-1.0.c,
 * unversioned references) must still get a working monitor, as it did
 * then, not the refusal that AUTO means in today's header.
 */
TEST(auto_without_module_falls_back_as_documented)
{
	struct mapwatch *mw = NULL;
	struct mapwatch_handle h;
	const char *why = NULL;
	struct stat st;
	char *p;
	int r;

#ifndef MAPWATCH_LINKED_1_0
	/* Built against the old header but linked today: it binds today's
	 * mapwatch_open (MAPWATCH_1.3), whose AUTO is auto_now.c's. */
	SKIP("linked against today's library: today's AUTO (abi_auto_meaning)");
#endif
	if (!stat("/dev/mapwatch", &st) || !stat("/dev/kdreg2", &st))
		SKIP("a module is loaded here: AUTO takes it, both then and now");
	r = mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO, 16, &why);
	tap_diag("mapwatch_open(AUTO): %d (%s), why: %s", r, strerror(-r),
		 why ? why : "(null)");
	ASSERT_EQ(r, 0);
	ASSERT_EQ(mapwatch_backend(mw), MAPWATCH_BACKEND_USERFAULTFD);
	/* A working monitor: a watched mapping unmapped reads changed. */
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	p[0] = 1;
	ASSERT_EQ(mapwatch_watch(mw, p, PAGE, 9, &h), 0);
	ASSERT_FALSE(mapwatch_changed(&h));
	ASSERT_EQ(munmap(p, PAGE), 0);
	/* userfaultfd: the reader thread marks it a moment after munmap
	 * returns (the old header says so too). */
	for (int i = 0; i < 2000 && !mapwatch_changed(&h); i++)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	ASSERT_TRUE(mapwatch_changed(&h));
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
