// SPDX-License-Identifier: GPL-2.0-only
/*
 * The registration cache over the userfaultfd backend at scale: 64K
 * separate 4 KiB buffers (every other page of one mapping).  Each watch
 * splits the mapping's VMA, and past vm.max_map_count (65530 by default)
 * UFFDIO_REGISTER fails with ENOMEM, some 32,000 buffers in.  A get must
 * not fail for it: idle entries make room, and when every entry is held
 * the get is served uncached (stats.uncached, stats.passthrough).
 * Skipped where the host does not permit userfaultfd, or where
 * vm.max_map_count is so large that 64K watches fit.
 */
#define _GNU_SOURCE
#include <sys/mman.h>

#include "host/libtest.h"

#define N 65536

static long max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static char *buffers(void)
{
	long m = max_map_count();
	char *p;

	if (UNDER_VALGRIND())
		SKIP("valgrind has no userfaultfd");
	if (m < 0 || m > 2L * N + 1000)
		SKIP("vm.max_map_count %ld: %d watches fit", m, N);
	p = mmap(NULL, 2UL * N * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	return p;
}

static struct mapwatch_cache_stats stats_of(struct mapwatch_cache *c)
{
	struct mapwatch_cache_stats s;

	ASSERT_EQ(mapwatch_cache_get_stats(c, &s), 0);
	return s;
}

static void show(const char *when, struct mapwatch_cache *c, const struct fake *f)
{
	struct mapwatch_cache_stats s = stats_of(c);

	tap_diag("%s: %llu entries, %llu misses, %llu uncached (%llu pass-through), "
		 "%llu evicted; %ld reg, %ld dereg", when,
		 (unsigned long long)s.entries, (unsigned long long)s.misses,
		 (unsigned long long)s.uncached, (unsigned long long)s.passthrough,
		 (unsigned long long)s.evict_lru, atomic_load(&f->nreg),
		 atomic_load(&f->ndereg));
}

/* Get and put 64K buffers, twice: every get succeeds; the cache keeps what
 * the VMAs allow, evicting idle entries for the rest. */
TEST(idle_64k_buffers_every_get_succeeds)
{
	char *p = buffers();
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_USERFAULTFD, N);
	struct mapwatch_cache_stats s;
	struct fake f;
	struct mapwatch_cache *c;
	long failed = 0;
	int first_errno = 0;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	for (int round = 0; round < 2; round++) {
		for (long i = 0; i < N; i++) {
			struct mapwatch_cache_entry *e =
				mapwatch_cache_get(c, p + 2 * i * PAGE, PAGE, 0);

			if (!e) {
				if (!failed++)
					first_errno = errno;
				continue;
			}
			mapwatch_cache_put(c, e);
		}
		show(round ? "round 2" : "round 1", c, &f);
	}
	errno = first_errno;
	tap_diag("failed gets: %ld, the first with errno %d (%s)", failed,
		 first_errno, strerror(first_errno));
	EXPECT_EQ(failed, 0);
	s = stats_of(c);
	EXPECT_LE(s.entries, (uint64_t)N - 1);	/* the bound was met */
	/* A change still reaches a cached entry. */
	{
		struct mapwatch_cache_entry *e =
			mapwatch_cache_get(c, p + 2 * (N - 1) * PAGE, PAGE, 0);

		ASSERT_TRUE(e != NULL);
		ASSERT_OK(munmap(p + 2 * (N - 1) * PAGE, PAGE));
		for (int i = 0; i < 1000 && !mapwatch_cache_entry_changed(e); i++)
			usleep(1000);	/* a watchdog, not a timing claim */
		EXPECT_TRUE(mapwatch_cache_entry_changed(e));
		mapwatch_cache_put(c, e);
	}
	mapwatch_cache_destroy(c);
	EXPECT_EQ(atomic_load(&f.nreg), atomic_load(&f.ndereg));
	mapwatch_close(mw);
	munmap(p, 2UL * N * PAGE);
}

/* 64K buffers all held at once: what cannot be watched is served uncached
 * and deregistered at its put. */
TEST(held_64k_buffers_served_uncached_past_the_vma_limit)
{
	char *p = buffers();
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_USERFAULTFD, N);
	static struct mapwatch_cache_entry *held[N];
	struct mapwatch_cache_stats s;
	struct fake f;
	struct mapwatch_cache *c;
	long failed = 0;
	int first_errno = 0;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	for (long i = 0; i < N; i++) {
		held[i] = mapwatch_cache_get(c, p + 2 * i * PAGE, PAGE, 0);
		if (!held[i] && !failed++)
			first_errno = errno;
	}
	show("all held", c, &f);
	errno = first_errno;
	tap_diag("failed gets: %ld, the first with errno %d (%s)", failed,
		 first_errno, strerror(first_errno));
	EXPECT_EQ(failed, 0);
	s = stats_of(c);
	EXPECT_GE(s.uncached, 1);
	EXPECT_EQ(s.passthrough, s.uncached);
	EXPECT_EQ(s.entries + s.uncached, (uint64_t)N - failed);
	for (long i = 0; i < N; i++)
		mapwatch_cache_put(c, held[i]);
	/* The uncached ones went at their put; the cached ones stay. */
	s = stats_of(c);
	EXPECT_EQ((uint64_t)atomic_load(&f.ndereg), (uint64_t)N - failed - s.entries);
	mapwatch_cache_destroy(c);
	EXPECT_EQ(atomic_load(&f.nreg), atomic_load(&f.ndereg));
	mapwatch_close(mw);
	munmap(p, 2UL * N * PAGE);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
