// SPDX-License-Identifier: GPL-2.0-only
/*
 * The registration cache under contention, as libfabric's and UCX's caches
 * are used: many threads missing on one buffer, a registration limit that
 * idle entries hold, an event left over from an earlier cache on the same
 * monitor, errors of two threads at once, a fork while another thread holds
 * the cache's lock.  MANUAL backend: addresses are just numbers.  Also run
 * under ThreadSanitizer (build/tests/host-tsan).
 */
#define _GNU_SOURCE
#include <sys/wait.h>

#include "host/libtest.h"

#define BASE ((char *)0x100000000000UL)
#define MIB (1024 * 1024UL)

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

/* --- the herd ---------------------------------------------------------------- */

enum { HERD = 16 };

struct herd {
	struct mapwatch_cache *c;
	pthread_barrier_t go;
	struct mapwatch_cache_entry *got[HERD];
};

static void reg_slowly(struct fake *f, struct freg *r)
{
	(void)f;
	(void)r;
	usleep(20 * 1000);	/* every other thread arrives meanwhile */
}

static void *herd_thread(void *arg)
{
	struct herd *h = arg;
	static _Atomic int next;
	int me = atomic_fetch_add(&next, 1);

	pthread_barrier_wait(&h->go);
	h->got[me] = mapwatch_cache_get(h->c, BASE, MIB, 0);
	return NULL;
}

/* 16 threads, one 1 MiB buffer, all missing at once: one registration. */
TEST(herd_of_misses_registers_once)
{
	struct mapwatch *mw = manual(64);
	struct fake f;
	struct herd h = { 0 };
	pthread_t t[HERD];

	fake_init(&f);
	f.on_reg = reg_slowly;
	h.c = fake_cache(mw, &f, 0, 0);
	pthread_barrier_init(&h.go, NULL, HERD);
	for (int i = 0; i < HERD; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, herd_thread, &h), 0);
	for (int i = 0; i < HERD; i++)
		pthread_join(t[i], NULL);
	tap_diag("%ld registrations for %d threads", (long)f.nreg, HERD);
	EXPECT_EQ(f.nreg, 1);
	for (int i = 0; i < HERD; i++) {
		ASSERT_TRUE(h.got[i] != NULL);
		EXPECT_TRUE(h.got[i] == h.got[0]);
		mapwatch_cache_put(h.c, h.got[i]);
	}
	EXPECT_EQ(stats(h.c).entries, 1);
	EXPECT_EQ(stats(h.c).misses + stats(h.c).hits, HERD);
	mapwatch_cache_destroy(h.c);
	EXPECT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

/* A reg callback that gets the same range again does not wait for itself. */
static struct mapwatch_cache *reenter_cache;

static void reg_reenters(struct fake *f, struct freg *r)
{
	struct mapwatch_cache_entry *e;

	f->on_reg = NULL;
	e = mapwatch_cache_get(reenter_cache, (void *)r->addr, r->len, 0);
	if (!e)
		abort();
	mapwatch_cache_put(reenter_cache, e);
}

TEST(reg_callback_getting_its_own_range_does_not_deadlock)
{
	struct mapwatch *mw = manual(64);
	struct mapwatch_cache_entry *e;
	struct fake f;

	fake_init(&f);
	f.on_reg = reg_reenters;
	reenter_cache = fake_cache(mw, &f, 0, 0);
	alarm(10);
	e = mapwatch_cache_get(reenter_cache, BASE, PAGE, 0);
	alarm(0);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(reenter_cache, e);
	mapwatch_cache_destroy(reenter_cache);
	mapwatch_close(mw);
}

/* --- out of registrations ------------------------------------------------------ */

static long reg_limit;

/* At most reg_limit registrations alive: ENOMEM (RLIMIT_MEMLOCK), ENOSPC
 * (a NIC's MR limit) or EAGAIN beyond, as f->arg says. */
static void *limited_reg(void *ctx, void *addr, size_t len, int flags)
{
	struct fake *f = ctx;

	if (atomic_load(&f->nreg) - atomic_load(&f->ndereg) >= reg_limit) {
		errno = (int)(intptr_t)f->arg;
		return NULL;
	}
	return fake_reg(ctx, addr, len, flags);
}

static void limit_case(int err)
{
	struct mapwatch *mw = manual(64);
	struct mapwatch_cache_ops ops = {
		.reg = limited_reg, .dereg = fake_dereg,
	};
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e, *held;
	struct fake f;

	fake_init(&f);
	f.arg = (void *)(intptr_t)err;
	ops.ctx = &f;
	reg_limit = 4;
	c = mapwatch_cache_create(mw, &ops, NULL);
	ASSERT_TRUE(c != NULL);
	held = mapwatch_cache_get(c, BASE, PAGE, 0);	/* held: never evicted */
	ASSERT_TRUE(held != NULL);
	for (int i = 1; i < 4; i++) {
		e = mapwatch_cache_get(c, BASE + i * 16 * PAGE, PAGE, 0);
		ASSERT_TRUE(e != NULL);
		mapwatch_cache_put(c, e);		/* idle, pinning */
	}
	e = mapwatch_cache_get(c, BASE + 64 * PAGE, PAGE, 0);
	if (!e)
		tap_diag("fifth get: %s", strerror(errno));
	ASSERT_TRUE(e != NULL);
	EXPECT_GE(stats(c).evict_lru, 1);
	mapwatch_cache_put(c, e);
	/* Everything held: the error comes through. */
	{
		struct mapwatch_cache_entry *h[4];

		for (int i = 0; i < 3; i++) {
			h[i] = mapwatch_cache_get(c, BASE + (128 + i * 16) * PAGE, PAGE, 0);
			ASSERT_TRUE(h[i] != NULL);
		}
		errno = 0;
		h[3] = mapwatch_cache_get(c, BASE + 256 * PAGE, PAGE, 0);
		EXPECT_TRUE(h[3] == NULL);
		EXPECT_EQ(errno, err);
		for (int i = 0; i < 3; i++)
			mapwatch_cache_put(c, h[i]);
	}
	mapwatch_cache_put(c, held);
	mapwatch_cache_destroy(c);
	EXPECT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

TEST(reg_enomem_evicts_idle_entries_and_retries)
{
	limit_case(ENOMEM);
}

TEST(reg_enospc_evicts_idle_entries_and_retries)
{
	limit_case(ENOSPC);
}

TEST(reg_eagain_evicts_idle_entries_and_retries)
{
	limit_case(EAGAIN);
}

/* --- an event of an earlier cache ------------------------------------------------ */

/* Cache A's watch changes; A goes before reading the event; cache B, on the
 * same monitor and made while A was alive, must not take that event for one
 * of its healthy entries (cookies count per cache). */
TEST(leftover_event_never_evicts_a_healthy_entry_of_a_newer_cache)
{
	struct mapwatch *mw = manual(64);
	struct mapwatch_cache *a, *b;
	struct mapwatch_cache_entry *ea, *e;
	struct fake fa, fb;

	fake_init(&fa);
	fake_init(&fb);
	a = fake_cache(mw, &fa, 0, 0);
	b = fake_cache(mw, &fb, 0, 0);
	ea = mapwatch_cache_get(a, BASE, PAGE, 0);
	ASSERT_TRUE(ea != NULL);
	e = mapwatch_cache_get(b, BASE + 64 * PAGE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(b, e);
	ASSERT_OK(mapwatch_invalidate(mw, BASE, PAGE));	/* A's event queued */
	mapwatch_cache_put(a, ea);
	mapwatch_cache_destroy(a);
	for (int i = 0; i < 3; i++) {	/* B reads the leftover event */
		e = mapwatch_cache_get(b, BASE + 64 * PAGE, PAGE, 0);
		ASSERT_TRUE(e != NULL);
		mapwatch_cache_put(b, e);
	}
	EXPECT_EQ(fb.nreg, 1);
	EXPECT_EQ(stats(b).evict_invalid, 0);
	mapwatch_cache_destroy(b);
	mapwatch_close(mw);
}

/* --- mapwatch_strerror per thread -------------------------------------------------- */

struct errs {
	struct mapwatch *mw;
	pthread_barrier_t go;
	_Atomic long wrong;
};

static void *fail_empty(void *arg)
{
	struct errs *x = arg;
	struct mapwatch_handle h;

	pthread_barrier_wait(&x->go);
	for (int i = 0; i < 50000; i++) {
		if (mapwatch_watch(x->mw, BASE, 0, 1, &h) != -EINVAL ||
		    !strstr(mapwatch_strerror(x->mw), "empty"))
			atomic_fetch_add(&x->wrong, 1);
	}
	return NULL;
}

static void *fail_full(void *arg)
{
	struct errs *x = arg;
	struct mapwatch_handle h;

	pthread_barrier_wait(&x->go);
	for (int i = 0; i < 50000; i++) {
		if (mapwatch_watch(x->mw, BASE, PAGE, 2, &h) != -ENOSPC ||
		    !strstr(mapwatch_strerror(x->mw), "in use"))
			atomic_fetch_add(&x->wrong, 1);
	}
	return NULL;
}

TEST(strerror_is_per_thread)
{
	struct errs x = { .mw = manual(1) };
	struct mapwatch_handle h;
	pthread_t a, b;

	ASSERT_OK(mapwatch_watch(x.mw, BASE, PAGE, 9, &h));	/* now full */
	pthread_barrier_init(&x.go, NULL, 2);
	ASSERT_EQ(pthread_create(&a, NULL, fail_empty, &x), 0);
	ASSERT_EQ(pthread_create(&b, NULL, fail_full, &x), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	tap_diag("%ld of 100000 failures read another thread's text",
		 (long)x.wrong);
	EXPECT_EQ(x.wrong, 0);
	mapwatch_close(x.mw);
}

/* --- fork while another thread holds the cache lock ------------------------------- */

struct busy {
	struct mapwatch_cache *c;
	_Atomic bool stop;
};

static void *stats_loop(void *arg)
{
	struct busy *b = arg;
	struct mapwatch_cache_stats s;

	while (!atomic_load(&b->stop))
		mapwatch_cache_get_stats(b->c, &s);	/* holds the lock */
	return NULL;
}

TEST(flush_and_stats_in_a_forked_child_never_deadlock)
{
	enum { N = 5000, FORKS = 100 };
	struct mapwatch *mw = manual(N);
	struct fake f;
	struct busy b = { 0 };
	pthread_t t;
	int hung = 0;

	fake_init(&f);
	b.c = fake_cache(mw, &f, 0, 0);
	for (int i = 0; i < N; i++) {
		struct mapwatch_cache_entry *e =
			mapwatch_cache_get(b.c, BASE + i * PAGE, PAGE, 0);

		ASSERT_TRUE(e != NULL);
		mapwatch_cache_put(b.c, e);
	}
	ASSERT_EQ(pthread_create(&t, NULL, stats_loop, &b), 0);
	for (int i = 0; i < FORKS; i++) {
		int st;
		pid_t pid = fork();

		ASSERT_TRUE(pid >= 0);
		if (pid == 0) {
			struct mapwatch_cache_stats s;

			alarm(5);
			mapwatch_cache_get_stats(b.c, &s);
			mapwatch_cache_flush(b.c);
			_exit(s.entries == N ? 0 : 1);
		}
		ASSERT_EQ(waitpid(pid, &st, 0), pid);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			hung++;
		if (hung > 2)
			break;
	}
	atomic_store(&b.stop, true);
	pthread_join(t, NULL);
	tap_diag("%d children of %d hung or failed", hung, FORKS);
	EXPECT_EQ(hung, 0);
	mapwatch_cache_destroy(b.c);
	EXPECT_EQ(f.nreg, f.ndereg);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
