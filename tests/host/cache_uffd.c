// SPDX-License-Identifier: GPL-2.0-only
/*
 * The registration cache over the userfaultfd backend, on real memory: the
 * fake registration remembers what its page held when it was registered,
 * so a stale hit (a registration of memory that is gone) shows as the
 * wrong contents.  Also the backend's own edges: a change during
 * UFFDIO_REGISTER, unregistering, VMA counts, two monitors on one buffer,
 * a reader thread that dies, a kernel without write-protect.  Skipped as a
 * whole (exit 77) where the host does not permit userfaultfd.
 */
#define _GNU_SOURCE
#include <linux/userfaultfd.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "host/libtest.h"

/* --- interposed system calls ------------------------------------------------ */

/*
 * The test defines ioctl() and poll(), so the library (linked in
 * statically) calls these; each forwards to the system call unless a case
 * armed it.
 */
static char *window_remap;	/* remap this page right after UFFDIO_REGISTER */
static bool hide_wp;		/* UFFDIO_API reports no write-protect */
static _Atomic bool fail_poll;	/* the reader's poll() fails */

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	long r;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	r = syscall(SYS_ioctl, fd, req, arg);
	if (r == 0 && req == UFFDIO_REGISTER && window_remap) {
		char *p = window_remap;

		window_remap = NULL;
		/* The change lands after the kernel registered the range,
		 * before the library's ioctl call returns: new memory mapped
		 * over the page (the kernel unmaps the old one first). */
		if (mmap(p, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE |
			 MAP_ANONYMOUS | MAP_FIXED, -1, 0) != p)
			abort();
		*(volatile uint64_t *)p = 2;
		usleep(50 * 1000);	/* the reader has handled the event */
	}
	if (r == 0 && req == UFFDIO_API && hide_wp)
		((struct uffdio_api *)arg)->features &=
			~(uint64_t)UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	return r;
}

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts = { timeout / 1000, timeout % 1000 * 1000000L };

	if (n == 2 && atomic_load(&fail_poll)) {
		errno = EINVAL;
		return -1;
	}
	return syscall(SYS_ppoll, fds, n, timeout < 0 ? NULL : &ts, NULL, 0);
}

static struct mapwatch *uffd(size_t max)
{
	return open_backend(MAPWATCH_BACKEND_USERFAULTFD, max);
}

static uint64_t tag_content(struct fake *f, uintptr_t addr, size_t len)
{
	(void)f;
	(void)len;
	return *(volatile uint64_t *)addr;
}

static void pin_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	ASSERT_OK(sched_setaffinity(0, sizeof(set), &set));
}

/* Fresh memory at want (anywhere when NULL); NULL when another thread
 * (the sanitizer's, say) took the address in the meantime. */
static char *map_at(void *want, size_t len)
{
	char *p = mmap(want, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS |
		       (want ? MAP_FIXED_NOREPLACE : 0), -1, 0);

	if (p == MAP_FAILED && want && errno == EEXIST)
		return NULL;
	ASSERT_TRUE(p != MAP_FAILED);
	if (want)
		ASSERT_TRUE(p == want);
	return p;
}

/* --- the stale hit ------------------------------------------------------------ */

/*
 * get, put, munmap, mmap at the same address, get: the second get must
 * name the new memory, every round.  The munmap returns once the reader
 * thread has read the event; the cache must not hand out the old entry in
 * the moment before the reader has applied it.
 */
static void churn(long rounds, bool pinned)
{
	struct mapwatch *mw;
	struct mapwatch_cache *c;
	struct fake f;
	long stale = 0, moved = 0;
	char *p, *q;

	if (pinned)
		pin_cpu0();	/* the reader thread inherits it */
	mw = uffd(64);
	fake_init(&f);
	f.tag = tag_content;
	c = fake_cache(mw, &f, 0, 0);
	p = map_at(NULL, 4 * PAGE);
	for (long i = 1; i <= rounds; i++) {
		struct mapwatch_cache_entry *e;

		*(volatile uint64_t *)p = i;
		e = mapwatch_cache_get(c, p, 4 * PAGE, 0);
		ASSERT_TRUE(e != NULL);
		if (reg_of(e)->tag != (uint64_t)i) {
			if (!stale)
				tap_diag("round %ld: the registration names memory that held %llu",
					 i, (unsigned long long)reg_of(e)->tag);
			stale++;
		}
		mapwatch_cache_put(c, e);
		ASSERT_OK(munmap(p, 4 * PAGE));
		q = map_at(p, 4 * PAGE);
		if (!q) {
			moved++;
			q = map_at(NULL, 4 * PAGE);
		}
		p = q;
	}
	tap_diag("stale hits: %ld of %ld rounds%s (%ld rounds at a new address)",
		 stale, rounds, pinned ? ", pinned to CPU 0" : "", moved);
	EXPECT_LE(moved, rounds / 10);
	EXPECT_EQ(stale, 0);
	ASSERT_OK(munmap(p, 4 * PAGE));
	mapwatch_cache_destroy(c);
	ASSERT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

TEST(churn_never_hits_freed_memory)
{
	churn(20000, false);
}

TEST(churn_never_hits_freed_memory_pinned_to_one_cpu)
{
	churn(20000, true);
}

/* --- the register window ----------------------------------------------------- */

/* A change between UFFDIO_REGISTER and the watch going live is seen. */
TEST(change_during_register_is_seen)
{
	struct mapwatch *mw = uffd(8);
	struct mapwatch_handle h;
	char *p = map_at(NULL, PAGE);

	window_remap = p;
	ASSERT_OK(mapwatch_watch(mw, p, PAGE, 1, &h));
	ASSERT_TRUE(window_remap == NULL);
	EXPECT_TRUE(wait_changed(&h, 1));
	mapwatch_close(mw);
}

/* Through the cache: the entry made across the change is not kept, so the
 * next munmap/mmap is seen and the new memory gets its own registration. */
TEST(change_during_register_cache_never_stale)
{
	struct mapwatch *mw = uffd(8);
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e;
	struct fake f;
	char *p = map_at(NULL, PAGE);

	fake_init(&f);
	f.tag = tag_content;
	c = fake_cache(mw, &f, 0, 0);
	*(volatile uint64_t *)p = 1;
	window_remap = p;
	e = mapwatch_cache_get(c, p, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(reg_of(e)->tag, 2);	/* registered after the change */
	mapwatch_cache_put(c, e);
	ASSERT_OK(munmap(p, PAGE));
	if (map_at(p, PAGE) != p)
		SKIP("the address was taken again");
	*(volatile uint64_t *)p = 3;
	e = mapwatch_cache_get(c, p, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	EXPECT_EQ(reg_of(e)->tag, 3);
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* --- unregistering ------------------------------------------------------------- */

/* VMAs starting in [lo, hi) (the sanitizers map memory of their own). */
static int vma_count(const char *lo, const char *hi)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long a;
	char line[512];
	int n = 0;

	ASSERT_TRUE(f != NULL);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-", &a) == 1 && a >= (uintptr_t)lo &&
		    a < (uintptr_t)hi)
			n++;
	fclose(f);
	return n;
}

/* Watching every other page splits the VMA; unwatching must merge it back
 * (and leave nothing registered: a later munmap does not wait). */
TEST(unwatch_unregisters_vma_count)
{
	enum { N = 1000 };
	struct mapwatch *mw = uffd(N);
	static struct mapwatch_handle h[N];
	char *p = map_at(NULL, 2 * N * PAGE);
	int before, during, after;

	before = vma_count(p, p + 2 * N * PAGE);
	for (int i = 0; i < N; i++)
		ASSERT_OK(mapwatch_watch(mw, p + 2 * i * PAGE, PAGE, i + 1, &h[i]));
	during = vma_count(p, p + 2 * N * PAGE);
	for (int i = 0; i < N; i++)
		ASSERT_OK(mapwatch_unwatch(mw, &h[i]));
	after = vma_count(p, p + 2 * N * PAGE);
	tap_diag("VMAs in the buffer: %d before, %d watched, %d after unwatch", before,
		 during, after);
	EXPECT_GE(during, before + N);
	EXPECT_EQ(after, before);
	mapwatch_close(mw);
}

/* Overlapping watches: the shared pages stay registered until the last
 * watch of them goes. */
TEST(overlapping_watches_unregister_only_when_last_goes)
{
	struct mapwatch *mw = uffd(8);
	struct mapwatch_handle a, b;
	char *p = map_at(NULL, 4 * PAGE);

	ASSERT_OK(mapwatch_watch(mw, p, 3 * PAGE, 1, &a));
	ASSERT_OK(mapwatch_watch(mw, p + PAGE, 3 * PAGE, 2, &b));
	ASSERT_OK(mapwatch_unwatch(mw, &a));
	/* b's pages are still watched: a munmap there is seen. */
	ASSERT_OK(munmap(p + 2 * PAGE, PAGE));
	EXPECT_TRUE(wait_changed(&b, 1));
	mapwatch_close(mw);
}

/* The cache: entries that go (flush) leave no registration behind. */
TEST(cache_flush_leaves_no_vmas)
{
	enum { N = 500 };
	struct mapwatch *mw = uffd(N);
	struct mapwatch_cache *c;
	struct fake f;
	char *p = map_at(NULL, 2 * N * PAGE);
	int before, after;

	fake_init(&f);
	c = fake_cache(mw, &f, 0, 0);
	before = vma_count(p, p + 2 * N * PAGE);
	for (int i = 0; i < N; i++) {
		struct mapwatch_cache_entry *e =
			mapwatch_cache_get(c, p + 2 * i * PAGE, PAGE, 0);

		ASSERT_TRUE(e != NULL);
		mapwatch_cache_put(c, e);
	}
	mapwatch_cache_flush(c);
	after = vma_count(p, p + 2 * N * PAGE);
	tap_diag("VMAs in the buffer: %d before, %d after %d entries came and went",
		 before, after, N);
	EXPECT_EQ(after, before);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* --- two monitors, one buffer ----------------------------------------------- */

TEST(two_monitors_watch_one_buffer)
{
	struct mapwatch *m1 = uffd(8), *m2 = uffd(8);
	struct mapwatch_handle h1, h2;
	char *p = map_at(NULL, 2 * PAGE);
	int r;

	ASSERT_OK(mapwatch_watch(m1, p, 2 * PAGE, 1, &h1));
	r = mapwatch_watch(m2, p, 2 * PAGE, 1, &h2);
	if (r)
		tap_diag("second monitor: %s", mapwatch_strerror(m2));
	ASSERT_EQ(r, 0);
	/* Closing one leaves the other's registration in place. */
	ASSERT_OK(mapwatch_unwatch(m1, &h1));
	mapwatch_close(m1);
	ASSERT_OK(munmap(p, PAGE));
	EXPECT_TRUE(wait_changed(&h2, 1));
	mapwatch_close(m2);
}

TEST(two_caches_one_buffer)
{
	struct mapwatch *m1 = uffd(8), *m2 = uffd(8);
	struct fake f1, f2;
	struct mapwatch_cache *c1, *c2;
	struct mapwatch_cache_entry *e1, *e2;
	char *p = map_at(NULL, 2 * PAGE);

	fake_init(&f1);
	fake_init(&f2);
	c1 = fake_cache(m1, &f1, 0, 0);
	c2 = fake_cache(m2, &f2, 0, 0);
	e1 = mapwatch_cache_get(c1, p, 2 * PAGE, 0);
	ASSERT_TRUE(e1 != NULL);
	e2 = mapwatch_cache_get(c2, p, 2 * PAGE, 0);
	if (!e2)
		tap_diag("second cache: %s (%s)", strerror(errno),
			 mapwatch_strerror(m2));
	ASSERT_TRUE(e2 != NULL);
	ASSERT_OK(munmap(p, PAGE));
	EXPECT_TRUE(mapwatch_cache_entry_changed(e1));
	EXPECT_TRUE(mapwatch_cache_entry_changed(e2));
	mapwatch_cache_put(c1, e1);
	mapwatch_cache_put(c2, e2);
	mapwatch_cache_destroy(c1);
	mapwatch_cache_destroy(c2);
	mapwatch_close(m1);
	mapwatch_close(m2);
}

/* --- the reader thread fails ------------------------------------------------- */

/* Later munmaps of watched memory must not hang, and every watch must
 * read changed: the cache must not trust watches nobody updates. */
TEST(reader_death_releases_waiters_and_reports_all_changed)
{
	struct mapwatch *mw = uffd(8);
	struct mapwatch_handle a, b, c;
	char *p = map_at(NULL, 3 * PAGE);

	ASSERT_OK(mapwatch_watch(mw, p, PAGE, 1, &a));
	ASSERT_OK(mapwatch_watch(mw, p + PAGE, PAGE, 2, &b));
	ASSERT_OK(mapwatch_watch(mw, p + 2 * PAGE, PAGE, 3, &c));
	atomic_store(&fail_poll, true);
	alarm(10);		/* a hang fails the case */
	ASSERT_OK(munmap(p, PAGE));	/* wakes the reader; its next poll fails */
	ASSERT_TRUE(wait_changed(&a, 2));
	ASSERT_OK(munmap(p + PAGE, PAGE));
	EXPECT_TRUE(wait_changed(&b, 2));
	EXPECT_TRUE(wait_changed(&c, 2));	/* never unmapped: reported anyway */
	alarm(0);
	ASSERT_EQ(mapwatch_watch(mw, p + 2 * PAGE, PAGE, 4, &a), -EIO);
	tap_diag("strerror: %s", mapwatch_strerror(mw));
	EXPECT_TRUE(strstr(mapwatch_strerror(mw), "reader") != NULL);
	atomic_store(&fail_poll, false);
	/* A new monitor starts a new reader. */
	{
		struct mapwatch *m2 = uffd(8);
		char *q = map_at(NULL, PAGE);

		ASSERT_OK(mapwatch_watch(m2, q, PAGE, 1, &a));
		ASSERT_OK(munmap(q, PAGE));
		EXPECT_TRUE(wait_changed(&a, 2));
		mapwatch_close(m2);
	}
	mapwatch_close(mw);
}

/* --- probing at open ------------------------------------------------------------ */

TEST(open_refuses_a_kernel_without_write_protect)
{
	struct mapwatch *mw = NULL;
	const char *why = NULL;
	int r;

	hide_wp = true;
	r = mapwatch_open(&mw, MAPWATCH_BACKEND_USERFAULTFD, 8, &why);
	tap_diag("open: %d, why: %s", r, why ? why : "(null)");
	EXPECT_NE(r, 0);
	EXPECT_TRUE(why && strstr(why, "write-protect"));
	if (!r)
		mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	struct mapwatch *mw;
	const char *why = NULL;

	if (!(argc == 2 && !strcmp(argv[1], "-l"))) {
		if (mapwatch_open(&mw, MAPWATCH_BACKEND_USERFAULTFD, 1, &why)) {
			printf("# SKIP: whole program: %s\n", why);
			return TAP_SKIP_EXIT;
		}
		mapwatch_close(mw);
	}
	return tap_main(argc, argv);
}
