// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The registration cache's events: reading a monitor's events and taking
 * the changed entries out of every cache over the monitor, whichever of
 * them reads.
 */
#include <errno.h>
#include <stdlib.h>

#include "cache_internal.h"

struct ev_ctx {
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *dead;
};

/* Called with c->lock held; the monitor holds none of its own locks. */
static void on_event(void *arg, const struct mapwatch_event *ev, uint32_t info)
{
	struct ev_ctx *x = arg;
	struct mapwatch_cache *c = x->c;
	struct mapwatch_cache_entry *e, *next;

	if (ev->cookie != MAPWATCH_COOKIE_RANGE) {
		struct hnode *n = mwc_htab_find(&c->cookies, ev->cookie);

		/* Unknown: an entry already gone, or not the cache's watch.
		 * An entry whose watch has not changed is not the one the
		 * event is about (an event of an earlier user of the
		 * monitor): it stays. */
		e = n ? entry_of(n, by_cookie) : NULL;
		if (e && mapwatch_changed(&e->wh) && mwc_detach(c, e, &x->dead, false))
			count_invalid(c, e, info);
		return;
	}
	/* Events were folded into a range: every overlapping entry that
	 * changed goes (its watch says so). */
	size_t n = c->nentries;

	e = c->hand;
	for (size_t i = 0; i < n && e; i++) {
		next = e->ring_next;
		if (e->start < ev->addr + ev->len && ev->addr < e->end &&
		    mapwatch_changed(&e->wh) && mwc_detach(c, e, &x->dead, false))
			count_invalid(c, e, info);
		e = next;
	}
}

static bool for_cache(const struct mapwatch_cache *t,
		      const struct mapwatch_event *ev)
{
	return ev->cookie == MAPWATCH_COOKIE_RANGE ||
	       cookie_cache_id(ev->cookie) == t->id;
}

/* Apply the events of a batch that concern cache t (its own cookies, and
 * ranges).  No lock held on entry; t is pinned or the caller's. */
static void apply_events(struct mapwatch_cache *t,
			 const struct mapwatch_event *ev, const uint32_t *info,
			 int n)
{
	struct ev_ctx x = { t, NULL };

	atomic_fetch_add_explicit(&t->test_applied, 1, memory_order_relaxed);
	pthread_mutex_lock(&t->lock);
	for (int i = 0; i < n; i++)
		if (for_cache(t, &ev[i]))
			on_event(&x, &ev[i], info[i]);
	pthread_mutex_unlock(&t->lock);
	mwc_drop_dead(t, x.dead);
}

/*
 * Pin the other caches over c's monitor that the events ev[0..n) concern
 * (every other cache when ev is NULL), under the monitor's share_lock: a
 * pinned cache's destroy waits until mwc_unpin_caches(), so a callback run
 * while they are pinned (dereg, invalidate) must not destroy one of them.
 * (make_room() pins one cache at a time instead, by itself.)  Should the
 * list not fit and malloc fail, the caches beyond the first ROUTE_STACK are
 * left out: their changed entries still fail every hit (the watch word)
 * and leave at their next lookup or put.
 */
void mwc_pin_caches(struct mapwatch_cache *c, const struct mapwatch_event *ev,
		       int n, struct pinned *p)
{
	struct mapwatch *mw = c->mw;
	struct mapwatch_cache *t;
	size_t cap = ROUTE_STACK, ncaches = 0;

	p->c = p->stack;
	p->n = 0;
	pthread_mutex_lock(&mw->share_lock);
	for (t = mw->caches; t; t = t->share_next)
		ncaches++;
	if (ncaches > ROUTE_STACK) {
		struct mapwatch_cache **big = malloc(ncaches * sizeof(*big));

		if (big) {
			p->c = big;
			cap = ncaches;
		}
	}
	for (t = mw->caches; t && p->n < cap; t = t->share_next) {
		bool concerned = !ev;

		if (t == c)
			continue;
		for (int i = 0; i < n && !concerned; i++)
			concerned = for_cache(t, &ev[i]);
		if (concerned) {
			t->pins++;
			p->c[p->n++] = t;
		}
	}
	pthread_mutex_unlock(&mw->share_lock);
}

void mwc_unpin_caches(struct mapwatch *mw, struct pinned *p)
{
	if (p->n) {
		bool idle = false;

		pthread_mutex_lock(&mw->share_lock);
		for (size_t i = 0; i < p->n; i++)
			if (!--p->c[i]->pins)
				idle = true;
		if (idle)
			pthread_cond_broadcast(&mw->share_cond);
		pthread_mutex_unlock(&mw->share_lock);
	}
	if (p->c != p->stack)
		free(p->c);
}

/*
 * Read the monitor's pending events and take the changed entries out of
 * every cache over it, not only c (libfabric's ofi_monitor_notify() walks
 * the caches of a monitor the same way): whichever cache drains serves the
 * others, whose fd then no longer polls readable.
 *
 * Per batch, the caches it concerns are listed and pinned, then served one
 * after the other with no lock but their own, each once, then unpinned.
 * No two cache locks are ever held together.  The list is this router's
 * own: an earlier version marked each served cache with the batch in a
 * field of the cache, which a second router draining the same monitor
 * overwrote, so that both went round applying their batches again and
 * again (F7).
 */
int mwc_process_events(struct mapwatch_cache *c)
{
	struct mapwatch *mw = c->mw;
	struct mapwatch_event ev[64];
	uint32_t info[64];
	struct pinned p;
	int n, total = 0;

	while ((n = mw_read_events_info(mw, ev, info, 64)) > 0) {
		total += n;
		atomic_fetch_add_explicit(&c->test_reads, 1, memory_order_relaxed);
		apply_events(c, ev, info, n);
		mwc_pin_caches(c, ev, n, &p);
		for (size_t i = 0; i < p.n; i++)
			apply_events(p.c[i], ev, info, n);
		mwc_unpin_caches(mw, &p);
	}
	/* -ENOMSG (a read of only unknown records) only when nothing was
	 * delivered: what was, is the answer. */
	return n < 0 && !(n == -ENOMSG && total) ? n : total;
}

/*
 * Tests only (not exported): how many batches were applied to c, and how
 * many non-empty batches c's progress read.  A cache every batch concerns
 * must have been applied to exactly as often as the caches of its monitor
 * read batches, in sum: more is a batch applied twice (F7).
 */
uint64_t mw_cache_test_applied(struct mapwatch_cache *c);
uint64_t mw_cache_test_applied(struct mapwatch_cache *c)
{
	return atomic_load(&c->test_applied);
}

uint64_t mw_cache_test_reads(struct mapwatch_cache *c);
uint64_t mw_cache_test_reads(struct mapwatch_cache *c)
{
	return atomic_load(&c->test_reads);
}
