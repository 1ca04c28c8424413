// SPDX-License-Identifier: GPL-2.0-only
/*
 * What the reg callback may do and what it is given: a get from inside reg
 * (F9: two threads whose regs get each other's range), and the arg of
 * mapwatch_cache_get_arg(), which is not part of the key (F15: one cache
 * per protection domain).  MANUAL monitor.
 */
#define _GNU_SOURCE
#include "host/libtest.h"

#define BASE ((char *)0x100000000000UL)

/* --- F9: nested gets ------------------------------------------------------ */

struct nested {
	struct fake f;
	struct mapwatch_cache *c;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int inside;			/* threads inside their outer reg */
	_Atomic int nested_ok;
};

static __thread int depth;

static void *nested_reg(void *ctx, void *addr, size_t len, int flags)
{
	struct nested *n = ctx;
	void *r = fake_reg(&n->f, addr, len, flags);

	if (depth++ == 0) {
		/* The outer reg of R1 (or R2): wait until the other thread is
		 * inside its own, then get the range it is registering. */
		char *other = (char *)addr == BASE ? BASE + 16 * PAGE : BASE;
		struct mapwatch_cache_entry *e;

		pthread_mutex_lock(&n->lock);
		n->inside++;
		pthread_cond_broadcast(&n->cond);
		while (n->inside < 2)
			pthread_cond_wait(&n->cond, &n->lock);
		pthread_mutex_unlock(&n->lock);
		e = mapwatch_cache_get(n->c, other, PAGE, 0);
		if (e) {
			atomic_fetch_add(&n->nested_ok, 1);
			mapwatch_cache_put(n->c, e);
		}
	}
	depth--;
	return r;
}

static void nested_dereg(void *ctx, void *reg)
{
	fake_dereg(&((struct nested *)ctx)->f, reg);
}

struct getter {
	struct nested *n;
	char *addr;
	struct mapwatch_cache_entry *e;
};

static void *outer_get(void *arg)
{
	struct getter *g = arg;

	g->e = mapwatch_cache_get(g->n->c, g->addr, PAGE, 0);
	return NULL;
}

/*
 * F9: T1 registers R1 and its reg gets R2; T2 registers R2 and its reg
 * gets R1.  Each used to wait for the other's registration in progress:
 * a deadlock.  A thread inside a reg callback now never waits for another
 * thread's registration (it registers the range itself: a duplicate at
 * worst).  The 10 s join is a watchdog against the deadlock.
 */
TEST(gets_from_reg_of_each_others_range_do_not_deadlock)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 64);
	static struct nested n = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	struct mapwatch_cache_ops ops = {
		.reg = nested_reg, .dereg = nested_dereg, .ctx = &n,
	};
	struct getter g[2] = { { &n, BASE, NULL }, { &n, BASE + 16 * PAGE, NULL } };
	pthread_t th[2];

	n.c = mapwatch_cache_create(mw, &ops, NULL);
	ASSERT_TRUE(n.c != NULL);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(pthread_create(&th[i], NULL, outer_get, &g[i]), 0);
	for (int i = 0; i < 2; i++) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10;
		if (pthread_timedjoin_np(th[i], NULL, &ts)) {
			tap_diag("thread %d still in get after 10 s: deadlock "
				 "(%ld reg so far, %d nested gets done)", i,
				 (long)atomic_load(&n.f.nreg),
				 atomic_load(&n.nested_ok));
			fflush(stdout);
			_exit(1);	/* the threads hold the cache's state */
		}
	}
	ASSERT_TRUE(g[0].e != NULL && g[1].e != NULL);
	EXPECT_EQ(atomic_load(&n.nested_ok), 2);
	mapwatch_cache_put(n.c, g[0].e);
	mapwatch_cache_put(n.c, g[1].e);
	mapwatch_cache_destroy(n.c);
	EXPECT_EQ(atomic_load(&n.f.nreg), atomic_load(&n.f.ndereg));
	mapwatch_close(mw);
}

/* --- F15: arg is not part of the key -------------------------------------- */

struct pd_rec {
	struct fake f;
};

static void *pd_reg_ex(void *ctx, void *addr, size_t len, int flags,
		       void *arg, void *data)
{
	struct freg *r = fake_reg(ctx, addr, len, flags);

	(void)data;
	if (r)
		r->tag = (uintptr_t)arg;	/* the PD it was registered in */
	return r;
}

static void pd_dereg(void *ctx, void *reg)
{
	fake_dereg(ctx, reg);
}

static struct mapwatch_cache *pd_cache(struct mapwatch *mw, struct fake *f)
{
	struct mapwatch_cache_ops ops = {
		.reg_ex = pd_reg_ex, .dereg = pd_dereg, .ctx = f,
	};
	struct mapwatch_cache *c;

	fake_init(f);
	c = mapwatch_cache_create(mw, &ops, NULL);
	ASSERT_TRUE(c != NULL);
	return c;
}

/*
 * F15, as documented: arg reaches reg_ex on a miss and is not matched on a
 * hit.  Two protection domains through one cache: the second gets the
 * first's registration (in an RDMA stack, the wrong lkey).
 */
TEST(arg_is_not_part_of_the_key)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 64);
	struct fake f;
	struct mapwatch_cache *c = pd_cache(mw, &f);
	struct mapwatch_cache_entry *e;
	void *pd_a = (void *)0xa, *pd_b = (void *)0xb;

	e = mapwatch_cache_get_arg(c, BASE, PAGE, 0, pd_a);
	ASSERT_TRUE(e != NULL);
	EXPECT_EQ(reg_of(e)->tag, (uintptr_t)pd_a);
	mapwatch_cache_put(c, e);
	e = mapwatch_cache_get_arg(c, BASE, PAGE, 0, pd_b);
	ASSERT_TRUE(e != NULL);
	EXPECT_EQ(reg_of(e)->tag, (uintptr_t)pd_a);	/* a hit: pd_a's */
	EXPECT_EQ(atomic_load(&f.nreg), 1);
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* F15, what the documentation prescribes: one cache per protection domain,
 * sharing one monitor.  Each domain gets its own registration. */
TEST(one_cache_per_protection_domain)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 64);
	struct fake fa, fb;
	struct mapwatch_cache *ca = pd_cache(mw, &fa), *cb = pd_cache(mw, &fb);
	struct mapwatch_cache_entry *ea, *eb;
	void *pd_a = (void *)0xa, *pd_b = (void *)0xb;

	ea = mapwatch_cache_get_arg(ca, BASE, PAGE, 0, pd_a);
	eb = mapwatch_cache_get_arg(cb, BASE, PAGE, 0, pd_b);
	ASSERT_TRUE(ea != NULL && eb != NULL);
	EXPECT_EQ(reg_of(ea)->tag, (uintptr_t)pd_a);
	EXPECT_EQ(reg_of(eb)->tag, (uintptr_t)pd_b);
	mapwatch_cache_put(ca, ea);
	mapwatch_cache_put(cb, eb);
	/* Hits, each in its own domain. */
	ea = mapwatch_cache_get_arg(ca, BASE, PAGE, 0, pd_a);
	eb = mapwatch_cache_get_arg(cb, BASE, PAGE, 0, pd_b);
	ASSERT_TRUE(ea != NULL && eb != NULL);
	EXPECT_EQ(reg_of(ea)->tag, (uintptr_t)pd_a);
	EXPECT_EQ(reg_of(eb)->tag, (uintptr_t)pd_b);
	EXPECT_EQ(atomic_load(&fa.nreg) + atomic_load(&fb.nreg), 2);
	mapwatch_cache_put(ca, ea);
	mapwatch_cache_put(cb, eb);
	/* One change of the memory reaches both. */
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, PAGE), 0);
	ASSERT_EQ(mapwatch_cache_progress(ca), 2);
	EXPECT_EQ(atomic_load(&fa.ndereg), 1);
	EXPECT_EQ(atomic_load(&fb.ndereg), 1);
	mapwatch_cache_destroy(ca);
	mapwatch_cache_destroy(cb);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
