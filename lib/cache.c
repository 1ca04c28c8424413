// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The registration cache.
 *
 * Three indexes over the same entries:
 *  - a hash of the aligned start address, read without any lock: the
 *    common hit (same start as a cached entry) is a few loads, one
 *    compare-and-swap on the entry's reference count, and the one-load
 *    check of its watch;
 *  - a hash of the power-of-two granules each entry overlaps, also read
 *    without a lock, for a larger entry that starts below the request and
 *    covers it (cache_index.c: one probe per entry size class in use);
 *  - an address-ordered tree (a treap keyed by start, every node knowing
 *    the largest end in its subtree) under a rwlock, for what needs order:
 *    the entries a miss covers, device invalidation, and the covering
 *    lookup when the granule hash finds nothing.
 * Everything that changes the indexes (misses, eviction, events, flush)
 * holds the cache mutex, and the tree's write lock for the tree.  No lock
 * is held while the reg/dereg callbacks run or while the monitor watches
 * or unwatches.
 *
 * Lock-free readers and type-stable entries.  Entries are never returned
 * to malloc while the cache exists: a dead entry goes to a free list and
 * may be reused for another range.  A reader walking a hash chain may thus
 * meet an entry that died, or came back for another range, under it; it
 * takes a reference only with a compare-and-swap that fails on a count of
 * zero (a dead entry), and only then reads the entry's range, flags and
 * state, which cannot change while a reference is held.  Chains are walked
 * with atomic loads and for a bounded number of steps: a reader led astray
 * by a concurrent change merely misses, and the locked path decides.
 * Bucket arrays replaced by a larger one are kept until destroy.
 *
 * References and hits share one 64-bit word: the count in the low half,
 * hits in the high half, so a hit costs one atomic operation to take the
 * reference and one (in put) to drop it.  An entry holds one reference for
 * being in the cache and one per user; eviction claims an idle entry by
 * turning its count from 1 to 0, which no lookup can race with.  The entry
 * is unwatched, deregistered and recycled when the count reaches 0.
 *
 * This file: get, put, eviction, registration and the API.  The indexes
 * are in cache_index.c, the monitor's events in cache_events.c, widening
 * in cache_widen.c; cache_internal.h has what they share.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache_internal.h"

/* The handle of a pass-through entry: never changed. */
static const uint32_t never_changes;

/* --- entries --------------------------------------------------------------- */

static struct mapwatch_cache_entry *entry_alloc(struct mapwatch_cache *c)
{
	struct mapwatch_cache_entry *e;

	pthread_mutex_lock(&c->lock);
	e = c->free;
	if (e)
		c->free = e->dead_next;
	pthread_mutex_unlock(&c->lock);
	if (!e) {
		e = aligned_alloc(64, c->entry_bytes);
		if (e) {
			memset(e, 0, c->entry_bytes);
			e->data = c->cfg.entry_size ? e + 1 : NULL;
		}
	}
	return e;
}

/* Last reference gone: release the registration, recycle the entry. */
void mwc_entry_destroy(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	void (*done)(void *arg);
	void *done_arg;

	/* A child's copy of the parent's registration: not the child's to
	 * release (and the locks may be copies held by the parent's threads). */
	if (mw_forked(c->mw))
		return;
	if (!e->unwatched)
		mapwatch_unwatch(c->mw, &e->wh);
	c->ops.dereg(c->ops.ctx, e->reg);
	atomic_fetch_add(&c->deregistrations, 1);
	pthread_mutex_lock(&c->lock);
	c->retired_uses += USES(atomic_load(&e->refs_uses));
	c->retired_covers += atomic_exchange(&e->covers, 0);
	mwc_loose_del(c, e);
	atomic_store(&e->refs_uses, 0);
	if (e->all_prev)
		e->all_prev->all_next = e->all_next;
	else
		c->all = e->all_next;
	if (e->all_next)
		e->all_next->all_prev = e->all_prev;
	/* mapwatch_cache_invalidate_entry()'s completion: taken before the
	 * entry is recycled, run with no lock held. */
	done = e->done_set ? e->done : NULL;
	done_arg = e->done_arg;
	e->done_set = false;
	e->done = NULL;
	e->done_arg = NULL;
	e->dead_next = c->free;
	c->free = e;
	pthread_mutex_unlock(&c->lock);
	if (done)
		done(done_arg);
}

void mwc_drop_dead(struct mapwatch_cache *c, struct mapwatch_cache_entry *dead)
{
	while (dead) {
		struct mapwatch_cache_entry *next = dead->dead_next;

		/* Still registered: the cache's reference is dropped below. */
		if (dead->invalid && c->ops.invalidate)
			c->ops.invalidate(c->ops.ctx, dead);
		if (dead->claimed)
			mwc_entry_destroy(c, dead);
		else
			entry_unref(c, dead);
		dead = next;
	}
}

/*
 * An entry seen changed before its event was read: read the events first,
 * so that the event takes it out and says why (the invalidate callback and
 * the statistics by reason).  What is still in the cache after that
 * changed for a reason not yet told (the event not queued yet).  No lock
 * held.
 */
static void events_before_stale(struct mapwatch_cache *c)
{
	mw_settle_mon(c->mw);
	if (mapwatch_pending(c->mw))
		mwc_process_events(c);
}

/* Drop the references a lookup took on changed entries, evicting them. */
static void purge_stale(struct mapwatch_cache *c, struct stale *st)
{
	struct mapwatch_cache_entry *dead = NULL;

	events_before_stale(c);
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < st->n; i++)
		if (mwc_detach(c, st->e[i], &dead, false))
			count_invalid(c, st->e[i], 0);
	pthread_mutex_unlock(&c->lock);
	for (int i = 0; i < st->n; i++)
		entry_unref(c, st->e[i]);
	mwc_drop_dead(c, dead);
	st->n = 0;
}

/* --- eviction ------------------------------------------------------------- */

static bool over_limits(const struct mapwatch_cache *c, size_t add_bytes)
{
	return (c->cfg.max_entries && c->nentries + 1 > c->cfg.max_entries) ||
	       (c->cfg.max_bytes && c->bytes + add_bytes > c->cfg.max_bytes);
}

/*
 * CLOCK: sweep from the hand, clearing referenced bits, evicting idle
 * entries whose bit is clear, until one more entry of add_bytes fits (or,
 * with one_more, until one entry left).  With watched_only (one_more: the
 * resource short is one of the monitor's watches), entries that hold no
 * watch (device memory) are passed over: evicting them frees none.
 * Caller holds c->lock.
 */
static bool evict(struct mapwatch_cache *c, size_t add_bytes, bool one_more,
		  bool watched_only, struct mapwatch_cache_entry **dead)
{
	size_t budget = 2 * c->nentries + 2;

	/* One entry for a resource (a watch, a VMA, the NIC's): a bounded
	 * stretch of the ring, where the hand stands.  With every entry
	 * held, a miss would otherwise walk all of them in vain (30,000 on
	 * userfaultfd past its VMA bound) before being served uncached; the
	 * next call goes on from where this one stopped. */
	if (one_more && budget > EVICT_ONE_STEPS)
		budget = EVICT_ONE_STEPS;

	while (c->hand && budget--) {
		struct mapwatch_cache_entry *e = c->hand;

		if (!one_more && !over_limits(c, add_bytes))
			return true;
		c->hand = e->ring_next;
		if (watched_only && e->unwatched)
			continue;		/* frees no watch */
		if (REFS(atomic_load(&e->refs_uses)) != 1)
			continue;		/* in use */
		if (atomic_exchange(&e->referenced, false))
			continue;		/* second chance */
		if (claim_idle(e)) {
			mwc_detach(c, e, dead, true);
			atomic_fetch_add(&c->evict_lru, 1);
			if (one_more)
				return true;
		}
	}
	return !one_more && !over_limits(c, add_bytes);
}

/* Evict one idle entry of c (its registration and its watch go); with
 * watched_only, one that holds a watch. */
static bool evict_one(struct mapwatch_cache *c, bool watched_only)
{
	struct mapwatch_cache_entry *dead = NULL;
	bool ok;

	pthread_mutex_lock(&c->lock);
	ok = evict(c, 0, true, watched_only, &dead);
	pthread_mutex_unlock(&c->lock);
	mwc_drop_dead(c, dead);
	return ok;
}

/*
 * The i-th cache over c's monitor other than c, pinned (its destroy waits
 * until unpin_other()), or NULL past the last.  By position, walked again
 * from the head each time: while no lock is held a cache's share_next may
 * name one destroyed since.  Caches coming and going meanwhile may be
 * passed over or met twice: a candidate fewer or more.
 */
static struct mapwatch_cache *pin_other(struct mapwatch_cache *c, size_t i)
{
	struct mapwatch *mw = c->mw;
	struct mapwatch_cache *t;

	pthread_mutex_lock(&mw->share_lock);
	for (t = mw->caches; t; t = t->share_next)
		if (t != c && !i--)
			break;
	if (t)
		t->pins++;
	pthread_mutex_unlock(&mw->share_lock);
	return t;
}

static void unpin_other(struct mapwatch *mw, struct mapwatch_cache *t)
{
	pthread_mutex_lock(&mw->share_lock);
	if (!--t->pins)
		pthread_cond_broadcast(&mw->share_cond);
	pthread_mutex_unlock(&mw->share_lock);
}

/*
 * Out of a resource idle entries hold: evict one.  With shared, the
 * resource is the monitor's watches, which every cache over the monitor
 * draws on (F14): only an entry holding a watch goes (device memory's
 * hold none), and when c has no idle one, one of another cache's.  The
 * other caches are pinned one at a time, as long as an eviction from it
 * (its dereg callbacks included) takes, and evicted from with no lock but
 * their own: a destroy of any other cache, from such a dereg callback too,
 * does not wait for it.  Without shared (reg failed: the registration
 * resources of c's own ops), any idle entry of c's, and only c's.
 * No lock held on entry.
 */
static bool make_room(struct mapwatch_cache *c, bool shared)
{
	struct mapwatch_cache *t;
	bool ok = false;

	if (evict_one(c, shared))
		return true;
	if (!shared)
		return false;
	for (size_t i = 0; !ok && (t = pin_other(c, i)); i++) {
		ok = evict_one(t, true);
		unpin_other(c->mw, t);
	}
	return ok;
}

/* --- the API -------------------------------------------------------------- */

static _Atomic uint32_t next_cache_id;

struct mapwatch_cache *mapwatch_cache_create_sized(struct mapwatch *mw,
			const struct mapwatch_cache_ops *ops, size_t ops_size,
			const struct mapwatch_cache_config *cfg, size_t cfg_size)
{
	struct mapwatch_cache_config kcfg = { 0 };
	struct mapwatch_cache_ops kops;
	struct mapwatch_cache *c;
	struct buckets *a, *b, *g;
	pthread_rwlockattr_t ra;
	int ret;

	ret = ops ? mw_struct_in(&kops, sizeof(kops), ops, ops_size,
				 MW_CACHE_OPS_SIZE_1_0) : -EINVAL;
	if (!ret && cfg)
		ret = mw_struct_in(&kcfg, sizeof(kcfg), cfg, cfg_size,
				   MW_CACHE_CONFIG_SIZE_1_0);
	if (!ret && (!mw || !(kops.reg || kops.reg_ex) || !kops.dereg ||
		     (kcfg.flags & ~MAPWATCH_CACHE_F_PASSTHROUGH) ||
		     kcfg.entry_size > MAPWATCH_CACHE_ENTRY_SIZE_MAX))
		ret = -EINVAL;
	if (ret) {
		errno = -ret;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	a = mwc_buckets_new(MIN_BUCKETS);
	b = mwc_buckets_new(MIN_BUCKETS);
	g = mwc_buckets_new(MIN_BUCKETS);
	if (!c || !a || !b || !g) {
		free(c);
		free(a);
		free(b);
		free(g);
		errno = ENOMEM;
		return NULL;
	}
	c->mw = mw;
	c->ops = kops;
	c->cfg = kcfg;
	c->entry_bytes = sizeof(struct mapwatch_cache_entry) +
			 ((kcfg.entry_size + 63) & ~(size_t)63);
	c->align = c->cfg.align ? c->cfg.align : (uintptr_t)sysconf(_SC_PAGESIZE);
	if (c->align & (c->align - 1)) {
		free(c);
		free(a);
		free(b);
		free(g);
		errno = EINVAL;
		return NULL;
	}
	atomic_init(&c->byaddr.a, a);
	atomic_init(&c->cookies.a, b);
	atomic_init(&c->bygran.a, g);
	/* Writers first: covering hits must not starve the misses and the
	 * event processing that change the tree (glibc prefers readers). */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra,
		PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&c->tree_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->inflight_done, NULL);
	c->rng = 0x9e3779b97f4a7c15ULL ^ (uintptr_t)c;
	c->id = atomic_fetch_add(&next_cache_id, 1) % CACHE_ID_MAX + 1;
	pthread_mutex_lock(&mw->share_lock);
	c->share_next = mw->caches;
	mw->caches = c;
	pthread_mutex_unlock(&mw->share_lock);
	return c;
}

/* How deep this thread is in reg callbacks, of any cache. */
static __thread unsigned int in_reg;

static void *call_reg(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
		      void *arg)
{
	void *addr = (void *)e->start;
	size_t len = e->end - e->start;
	void *r;

	errno = 0;
	if (e->data)
		memset(e->data, 0, c->cfg.entry_size);
	in_reg++;
	if (c->ops.reg_ex)
		r = c->ops.reg_ex(c->ops.ctx, addr, len, e->flags, arg, e->data);
	else
		r = c->ops.reg(c->ops.ctx, addr, len, e->flags);
	in_reg--;
	return r;
}

/* Memory of a device: no watch of the monitor; its word is the entry's
 * own, moved on by mapwatch_cache_invalidate(). */
static struct mapwatch_cache_entry *reg_device(struct mapwatch_cache *c,
					       struct mapwatch_cache_entry *e,
					       void *arg)
{
	e->unwatched = true;
	e->wh = (struct mapwatch_handle){
		.word = (const uint32_t *)&e->own_gen,
		.gen = atomic_load(&e->own_gen),
	};
	e->reg = call_reg(c, e, arg);
	/* As for host memory: out of a resource idle entries hold. */
	while (!e->reg && (errno == ENOMEM || errno == ENOSPC ||
			   errno == EAGAIN) && make_room(c, false))
		e->reg = call_reg(c, e, arg);
	if (!e->reg)
		return NULL;
	atomic_fetch_add(&c->registrations, 1);
	return e;
}

/* Watch, then register, then check the watch: a change at any moment after
 * the watch is placed is seen.  Pass-through: memory the monitor cannot
 * watch is registered unwatched (the caller hands it out uncached). */
static struct mapwatch_cache_entry *reg_new(struct mapwatch_cache *c,
					    const struct key *k, void *arg)
{
	struct mapwatch_cache_entry *e = entry_alloc(c);
	uintptr_t s = k->s, end = k->end;
	uint64_t cookie;
	int ret, err;

	if (!e) {
		errno = ENOMEM;
		return NULL;
	}
	/* A recycled entry may still be looked at by lock-free readers: its
	 * count is 0, so they read nothing but the atomics. */
	e->start = s;
	e->end = end;
	e->flags = k->flags;
	e->mem_type = k->mem_type;
	e->device = k->device;
	e->claimed = false;
	e->invalid = false;
	e->why = 0;
	e->unwatched = false;
	e->passthrough = false;
	atomic_store_explicit(&e->revoked, false, memory_order_relaxed);
	atomic_store_explicit(&e->referenced, false, memory_order_relaxed);
	if (k->mem_type != MAPWATCH_MEM_HOST) {
		if (reg_device(c, e, arg))
			return e;
		err = errno ? errno : EIO;
		goto fail;
	}
	for (int tries = 0;; tries++) {
		/* Unique among the caches of this monitor: an event left over
		 * from an earlier watch never names a new one. */
		cookie = new_cookie(c);
		ret = mapwatch_watch(c->mw, (void *)s, end - s, cookie, &e->wh);
		while (ret == -ENOSPC && make_room(c, true))
			ret = mapwatch_watch(c->mw, (void *)s, end - s,
					     cookie, &e->wh);
		/* userfaultfd: a watch splits VMAs, and past vm.max_map_count
		 * the split fails (ENOMEM).  Giving one watch back may merge
		 * two VMAs again: once. */
		if (ret == -ENOMEM && make_room(c, true))
			ret = mapwatch_watch(c->mw, (void *)s, end - s,
					     cookie, &e->wh);
		/*
		 * No watch to be had: every watch of the monitor is held
		 * (ENOSPC), or the backend cannot place one more (ENOMEM).
		 * Register for this get alone, uncached and unwatched, as
		 * pass-through memory is (libfabric registers uncached in
		 * the same case): the registration is made now, so it names
		 * the pages mapped now, and nobody else will ever hit it.
		 * EINVAL is memory the monitor can never watch: that only
		 * when the caller asked for pass-through.
		 */
		if (ret == -ENOSPC || ret == -ENOMEM ||
		    (ret == -EINVAL && (c->cfg.flags & MAPWATCH_CACHE_F_PASSTHROUGH))) {
			e->unwatched = true;
			e->passthrough = true;
			e->wh = (struct mapwatch_handle){ .word = &never_changes };
			e->reg = call_reg(c, e, arg);
			if (e->reg) {
				atomic_fetch_add(&c->registrations, 1);
				return e;
			}
			err = errno ? errno : EIO;
			break;
		}
		if (ret) {
			err = -ret;
			break;
		}
		e->reg = call_reg(c, e, arg);
		/* Out of a resource idle entries hold (RLIMIT_MEMLOCK, the
		 * NIC's MR limit): give one back and try again. */
		while (!e->reg && (errno == ENOMEM || errno == ENOSPC ||
				   errno == EAGAIN) && make_room(c, false))
			e->reg = call_reg(c, e, arg);
		if (!e->reg) {
			err = errno ? errno : EIO;
			mapwatch_unwatch(c->mw, &e->wh);
			break;
		}
		atomic_fetch_add(&c->registrations, 1);
		mw_settle_mon(c->mw);
		if (!mapwatch_changed(&e->wh)) {
			atomic_store_explicit(&e->by_cookie.key, cookie, memory_order_relaxed);
			return e;
		}
		/* Changed while being registered: the registration may name
		 * the old pages.  Try again with a fresh watch. */
		c->ops.dereg(c->ops.ctx, e->reg);
		atomic_fetch_add(&c->deregistrations, 1);
		mapwatch_unwatch(c->mw, &e->wh);
		if (tries + 1 == REG_TRIES) {
			err = EAGAIN;
			break;
		}
	}
fail:
	pthread_mutex_lock(&c->lock);
	e->dead_next = c->free;
	c->free = e;
	pthread_mutex_unlock(&c->lock);
	errno = err;
	return NULL;
}

/* A new entry never attached: its registration and watch go, the entry
 * is recycled.  No lock held. */
static void discard_new(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	if (!e->unwatched)
		mapwatch_unwatch(c->mw, &e->wh);
	c->ops.dereg(c->ops.ctx, e->reg);
	atomic_fetch_add(&c->deregistrations, 1);
	pthread_mutex_lock(&c->lock);
	e->dead_next = c->free;
	c->free = e;
	pthread_mutex_unlock(&c->lock);
}

/*
 * After a miss: returns with c->lock held and false when nobody else is
 * registering a range that would serve request k and no entry came in
 * since the lookup began (attached was seen); otherwise waits for that
 * registration to end and returns true (unlocked: look up again).  A thread
 * never waits inside a reg callback (see below).
 */
static bool wait_inflight(struct mapwatch_cache *c, const struct key *k,
			  uint64_t seen)
{
	struct inflight *f;
	bool waited = false;

	pthread_mutex_lock(&c->lock);
	if (atomic_load_explicit(&c->attached, memory_order_relaxed) != seen) {
		pthread_mutex_unlock(&c->lock);
		return true;
	}
	/*
	 * A get from inside a reg callback (of this cache or another) never
	 * waits: the registration it would wait for may be another thread's
	 * whose own reg waits for this thread's (F9: T1's reg of R1 gets
	 * R2 while T2's reg of R2 gets R1).  It registers the range itself,
	 * a duplicate at worst.
	 */
	for (; !in_reg;) {
		for (f = c->inflight; f; f = f->next)
			if (f->start <= k->s && f->end >= k->end &&
			    (f->flags & k->flags) == k->flags &&
			    f->mem_type == k->mem_type &&
			    f->device == k->device &&
			    !pthread_equal(f->owner, pthread_self()))
				break;
		if (!f)
			break;
		pthread_cond_wait(&c->inflight_done, &c->lock);
		waited = true;
	}
	if (waited)
		pthread_mutex_unlock(&c->lock);
	return waited;
}

/* Under c->lock. */
static void inflight_remove(struct mapwatch_cache *c, struct inflight *me)
{
	for (struct inflight **pp = &c->inflight; *pp; pp = &(*pp)->next) {
		if (*pp == me) {
			*pp = me->next;
			break;
		}
	}
	pthread_cond_broadcast(&c->inflight_done);
}

static void alive_attach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
			 struct mapwatch_cache_entry **dead);

/*
 * The hit path of get and find: events first, then an unchanged entry
 * starting at w's start (where the widest registration would), at k's,
 * or covering k.  *seen: the attach count before the lookup began.
 */
static struct mapwatch_cache_entry *lookup(struct mapwatch_cache *c,
					   const struct key *w,
					   const struct key *k, uint64_t *seen)
{
	struct mapwatch_cache_entry *e;
	struct stale st;

	/* A change whose call returned before this get shows now (the
	 * userfaultfd reader may still be applying it). */
	mw_settle_mon(c->mw);
	if (mapwatch_pending(c->mw))
		mwc_process_events(c);
	*seen = atomic_load_explicit(&c->attached, memory_order_acquire);
	st.n = 0;
	e = mwc_lookup_exact(c, w, &st);
	if (!e && w->s != k->s)
		e = mwc_lookup_exact(c, k, &st);
	if (!e)
		e = mwc_lookup_cover(c, k, &st);
	if (st.n)	/* changed entries met on the way, hit or miss */
		purge_stale(c, &st);
	return e;
}

/*
 * The request's pages at the cache's alignment (or the page, if smaller),
 * as get and find look them up: 0, or EINVAL for a range that wraps once
 * rounded, EIO in a child after fork.
 */
static int request_key(struct mapwatch_cache *c, uintptr_t addr, size_t len,
		       int flags, uint32_t mem_type, uint64_t device,
		       struct key *k)
{
	uintptr_t n = c->align < mwc_page_size() ? c->align : mwc_page_size();

	*k = (struct key){
		.s = addr & ~(n - 1), .end = (addr + len + n - 1) & ~(n - 1),
		.flags = flags, .mem_type = mem_type, .device = device,
	};
	if (k->end <= k->s)
		return EINVAL;
	if (mw_forked(c->mw))
		return EIO;
	return 0;
}

/*
 * Every get.  The request's pages (units of the cache's align, at most a
 * page: never past memory the caller named) are what a hit must cover; a
 * miss registers them widened to the request's align (cfg.align, the
 * request's own, a huge page) where that adds only mapped pages, and
 * falls back to them alone when reg refuses the widened range.
 */
static struct mapwatch_cache_entry *cache_get(struct mapwatch_cache *c,
					      const struct mapwatch_cache_req *r)
{
	uintptr_t addr = (uintptr_t)r->addr, a, n;
	struct mapwatch_cache_entry *e, *dead = NULL;
	/* k: the request's pages; w: the exact lookup, then the range being
	 * registered; span: the request widened, what a miss registers. */
	struct key k, w, w0, span;
	struct inflight me;
	uint64_t seen;
	int rounds = 0, dev_tries = 0, err;
	bool widened = false;

	if (!c || !r->len || addr + r->len < addr ||
	    (r->align & (r->align - 1)) ||
	    (r->req_flags & ~(uint64_t)MAPWATCH_CACHE_REQ_HUGE)) {
		errno = EINVAL;
		return NULL;
	}
	n = c->align < mwc_page_size() ? c->align : mwc_page_size();
	a = c->align > r->align ? c->align : r->align;
	if ((r->req_flags & MAPWATCH_CACHE_REQ_HUGE) && mwc_huge_size() > a)
		a = mwc_huge_size();
	err = request_key(c, addr, r->len, r->flags, r->mem_type, r->device, &k);
	if (err) {
		errno = err;
		return NULL;
	}
	/* The exact lookup where the widest registration would start. */
	w = k;
	w.s = addr & ~(a - 1);
	w0 = w;
again:
	e = lookup(c, &w, &k, &seen);
	if (e)
		return e;
	if (!widened) {
		/* Device memory is not the CPU's to probe: the caller's
		 * align as it is. */
		span = k;
		if (a > n && r->mem_type == MAPWATCH_MEM_HOST) {
			mwc_widen(&span, a, n);
		} else if (a > n) {
			span.s = k.s & ~(a - 1);
			span.end = (k.end + a - 1) & ~(a - 1);
			if (span.end < k.end)
				span.end = k.end;
		}
		widened = true;
	}
	/* After a few rounds of other entries coming in, register anyway:
	 * a duplicate at worst, never a livelock. */
	if (wait_inflight(c, &k, ++rounds > 8 ? atomic_load(&c->attached) : seen))
		goto again;
	w = span;
	me = (struct inflight){
		.start = w.s, .end = w.end, .flags = k.flags,
		.mem_type = k.mem_type, .device = k.device,
		.owner = pthread_self(), .next = c->inflight,
	};
	c->inflight = &me;
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&c->misses, 1);

	e = reg_new(c, &w, r->arg);
	/* A widened range reg refuses (a page the caller's access flags do
	 * not allow, device memory that ends sooner): the request alone. */
	if (!e && (w.s != k.s || w.end != k.end) &&
	    (errno == EFAULT || errno == EINVAL || errno == EACCES ||
	     errno == EPERM))
		e = reg_new(c, &k, r->arg);
	pthread_mutex_lock(&c->lock);
	inflight_remove(c, &me);
	if (!e) {
		pthread_mutex_unlock(&c->lock);
		return NULL;
	}
	if (me.invalidated) {
		/*
		 * Device memory invalidated while being registered (F4):
		 * the registration may name the memory that was freed.
		 * Device memory has no watch to say so afterwards, so the
		 * mark on the in-flight record, read under the same lock
		 * that attaches the entry, is the only witness.  Drop the
		 * registration and start over, as reg_new does for host
		 * memory that changed.
		 */
		pthread_mutex_unlock(&c->lock);
		discard_new(c, e);
		if (++dev_tries == REG_TRIES) {
			errno = EAGAIN;
			return NULL;
		}
		w = w0;
		widened = false;
		goto again;
	}
	alive_attach(c, e, &dead);
	pthread_mutex_unlock(&c->lock);
	mwc_drop_dead(c, dead);
	return e;
}

/*
 * A new entry e covers idle entries it can serve in their place (same
 * memory, at least their flags): a growing prefix, MPI sending 8 KiB then
 * 1 MiB of one buffer.  Kept, they would pin the same pages twice (memlock,
 * the NIC's translations) until the CLOCK reached them (F16); libfabric
 * purges such overlaps on a miss too.  Held ones stay: they go when idle
 * and evicted.  Under c->lock; the registrations go with *dead.
 */
static void purge_covered(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
			  struct mapwatch_cache_entry **dead)
{
	struct covered cv = { .n = 0 };

	mwc_t_covered(c->root, e, &cv);
	for (int i = 0; i < cv.n; i++)
		if (claim_idle(cv.e[i]))
			mwc_detach(c, cv.e[i], dead, true);
}

/* A new entry, alive from now on (counted in the stats); cached unless it
 * is pass-through or every other entry is held.  Under c->lock. */
static void alive_attach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
			 struct mapwatch_cache_entry **dead)
{
	e->all_prev = NULL;
	e->all_next = c->all;
	if (c->all)
		c->all->all_prev = e;
	c->all = e;
	e->loose = false;
	if (e->passthrough) {
		mwc_loose_add(c, e);
		atomic_store_explicit(&e->refs_uses, REF_ONE, memory_order_release);
		atomic_fetch_add(&c->uncached, 1);
		atomic_fetch_add(&c->passthrough, 1);
		return;
	}
	purge_covered(c, e, dead);
	if (evict(c, e->end - e->start, false, false, dead)) {
		/* The cache's reference and the caller's. */
		atomic_store_explicit(&e->refs_uses, 2 * REF_ONE, memory_order_release);
		mwc_attach(c, e);
		return;
	}
	/* Every other entry is held: hand this one out uncached rather than
	 * break the limits; it goes when put. */
	mwc_loose_add(c, e);
	atomic_store_explicit(&e->refs_uses, REF_ONE, memory_order_release);
	atomic_fetch_add(&c->uncached, 1);
}

struct mapwatch_cache_entry *mapwatch_cache_get(struct mapwatch_cache *c,
						void *addr, size_t len,
						int flags)
{
	struct mapwatch_cache_req r = { .addr = addr, .len = len, .flags = flags };

	return cache_get(c, &r);
}

struct mapwatch_cache_entry *mapwatch_cache_get_arg(struct mapwatch_cache *c,
						    void *addr, size_t len,
						    int flags, void *arg)
{
	struct mapwatch_cache_req r = {
		.addr = addr, .len = len, .flags = flags, .arg = arg,
	};

	return cache_get(c, &r);
}

struct mapwatch_cache_entry *
mapwatch_cache_get_req_sized(struct mapwatch_cache *c,
			     const struct mapwatch_cache_req *req, size_t size)
{
	struct mapwatch_cache_req r;
	int ret = req ? mw_struct_in(&r, sizeof(r), req, size,
				     MW_CACHE_REQ_SIZE_1_2) : -EINVAL;

	if (ret) {
		errno = -ret;
		return NULL;
	}
	return cache_get(c, &r);
}

/* Lookup only, never a registration (libfabric's ofi_mr_cache_find()):
 * get's hit path over host memory at the cache's alignment. */
struct mapwatch_cache_entry *mapwatch_cache_find(struct mapwatch_cache *c,
						 const void *addr, size_t len,
						 int flags)
{
	uintptr_t a = (uintptr_t)addr;
	struct mapwatch_cache_entry *e;
	struct key k, w;
	uint64_t seen;
	int err;

	if (!c || !len || a + len < a) {
		errno = EINVAL;
		return NULL;
	}
	err = request_key(c, a, len, flags, MAPWATCH_MEM_HOST, 0, &k);
	if (err) {
		errno = err;
		return NULL;
	}
	w = k;
	w.s = a & ~(c->align - 1);
	e = lookup(c, &w, &k, &seen);
	if (!e)
		errno = ENOENT;
	return e;
}

/* A changed entry nobody else may use: take it out now, so that its
 * registration goes with its last reference. */
static void put_changed(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	struct mapwatch_cache_entry *dead = NULL;

	if (!e->unwatched)
		events_before_stale(c);
	pthread_mutex_lock(&c->lock);
	if (mwc_detach(c, e, &dead, false))
		count_invalid(c, e, 0);
	pthread_mutex_unlock(&c->lock);
	entry_unref(c, e);
	mwc_drop_dead(c, dead);
}

void mapwatch_cache_put(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	if (!c || !e)
		return;
	/* In a child after fork the locks may be the parent's, held. */
	if (mapwatch_changed(&e->wh) && !mw_forked(c->mw))
		put_changed(c, e);
	else
		entry_unref(c, e);
}

/* The getters answer "nothing" for a NULL entry (a failed get): no
 * registration, and changed, so that it is never used. */
void *mapwatch_cache_entry_reg(const struct mapwatch_cache_entry *e)
{
	return e ? e->reg : NULL;
}

void *mapwatch_cache_entry_addr(const struct mapwatch_cache_entry *e)
{
	return e ? (void *)e->start : NULL;
}

size_t mapwatch_cache_entry_len(const struct mapwatch_cache_entry *e)
{
	return e ? e->end - e->start : 0;
}

bool mapwatch_cache_entry_changed(const struct mapwatch_cache_entry *e)
{
	if (!e || atomic_load_explicit(&e->revoked, memory_order_acquire))
		return true;
	mw_settle();
	return mapwatch_changed(&e->wh);
}

void *mapwatch_cache_entry_data(const struct mapwatch_cache_entry *e)
{
	return e ? e->data : NULL;
}

/* Set under c->lock before the invalidate callback, in the thread that
 * runs it. */
uint32_t mapwatch_cache_entry_reason(const struct mapwatch_cache_entry *e)
{
	return e && e->invalid ? MW_INFO_REASON(e->why) : MAPWATCH_CHANGE_UNKNOWN;
}

uint32_t mapwatch_cache_entry_cause(const struct mapwatch_cache_entry *e)
{
	return e && e->invalid ? MW_INFO_CAUSE(e->why) : MAPWATCH_BY_UNKNOWN;
}

/* Tests only (not exported): n more references on a held entry, to reach
 * REFS_MAX without 2^31 gets; mw_cache_test_refs(e, 0) reads the count. */
uint32_t mw_cache_test_refs(struct mapwatch_cache_entry *e, int64_t n)
{
	/* Two's complement: a negative n borrows nothing from the hits. */
	return REFS(atomic_fetch_add(&e->refs_uses, (uint64_t)n) + (uint64_t)n);
}

/* Tests only (not exported): entries device invalidations looked at. */
uint64_t mw_cache_test_visited(struct mapwatch_cache *c);
uint64_t mw_cache_test_visited(struct mapwatch_cache *c)
{
	return atomic_load(&c->test_visited);
}

void mapwatch_cache_hold(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	/* The caller's reference keeps the count above 0: no CAS needed. */
	if (c && e)
		atomic_fetch_add_explicit(&e->refs_uses, REF_ONE, memory_order_relaxed);
}

int mapwatch_cache_progress(struct mapwatch_cache *c)
{
	if (!c)
		return -EINVAL;
	if (mw_forked(c->mw))
		return -EIO;
	mw_settle_mon(c->mw);
	return mwc_process_events(c);
}

int mapwatch_cache_fd(const struct mapwatch_cache *c)
{
	return c ? mapwatch_fd(c->mw) : -EINVAL;
}

int mapwatch_cache_invalidate(struct mapwatch_cache *c, uint32_t mem_type,
			      uint64_t device, const void *addr, size_t len)
{
	struct mapwatch_cache_entry *dead = NULL;
	uintptr_t s = (uintptr_t)addr;
	int ret;

	if (!c || (len && s + len < s))
		return -EINVAL;
	if (mw_forked(c->mw))
		return -EIO;
	if (!len)
		return 0;
	if (mem_type == MAPWATCH_MEM_HOST) {
		/* Through the monitor: every watch of the range changes (in
		 * every cache over it, and the application's own), and the
		 * events take the entries out now. */
		ret = mapwatch_invalidate(c->mw, addr, len);
		if (ret)
			return ret;
		mw_settle_mon(c->mw);
		ret = mwc_process_events(c);
		/* -ENOMSG: records of unknown type read, the invalidation
		 * itself done. */
		return ret < 0 && ret != -ENOMSG ? ret : 0;
	}
	/* Device memory: the entries' own words, held ones included (the
	 * ones handed out uncached too: every entry alive), and the
	 * registrations under way, which are in no list yet: their get
	 * sees the mark and registers again (F4). */
	pthread_mutex_lock(&c->lock);
	for (struct inflight *f = c->inflight; f; f = f->next)
		if (f->mem_type == mem_type && f->device == device &&
		    f->start < s + len && s < f->end)
			f->invalidated = true;
	/* Cached entries through the address tree (F25: this used to walk
	 * every entry alive, under the mutex, on every cudaFree hook): a
	 * batch at a time, as detaching them changes the tree. */
	for (;;) {
		struct covered found = { .n = 0 };
		uint64_t visited = 0;

		mwc_t_overlap(c->root, s, s + len, mem_type, device, &found, &visited);
		atomic_fetch_add_explicit(&c->test_visited, visited,
					  memory_order_relaxed);
		for (int i = 0; i < found.n; i++) {
			struct mapwatch_cache_entry *e = found.e[i];

			atomic_fetch_add_explicit(&e->own_gen, 1, memory_order_release);
			if (mwc_detach(c, e, &dead, false))
				count_invalid(c, e, MW_INFO_USER);
		}
		if (found.n < MAX_COVERED)
			break;
	}
	/* The rest alive: held out of the cache, or handed out uncached. */
	for (struct mapwatch_cache_entry *e = c->loose; e; e = e->loose_next) {
		atomic_fetch_add_explicit(&c->test_visited, 1, memory_order_relaxed);
		if (e->mem_type != mem_type || e->device != device ||
		    e->end <= s || e->start >= s + len ||
		    mapwatch_changed(&e->wh))
			continue;
		atomic_fetch_add_explicit(&e->own_gen, 1, memory_order_release);
	}
	pthread_mutex_unlock(&c->lock);
	mwc_drop_dead(c, dead);
	return 0;
}

/*
 * One entry, as UCX's ucs_rcache_region_invalidate(): out of the cache
 * now (invalidate callback; no later lookup returns it), deregistered at
 * its last put, then done(arg).  The caller holds e, so the entry cannot
 * die under this call, and its own put (or a later holder's) is the last.
 */
int mapwatch_cache_invalidate_entry(struct mapwatch_cache *c,
				    struct mapwatch_cache_entry *e,
				    void (*done)(void *arg), void *arg)
{
	struct mapwatch_cache_entry *dead = NULL;

	if (!c || !e)
		return -EINVAL;
	if (mw_forked(c->mw))
		return -EIO;
	pthread_mutex_lock(&c->lock);
	if (e->done_set) {
		pthread_mutex_unlock(&c->lock);
		return -EBUSY;
	}
	if (done) {
		e->done = done;
		e->done_arg = arg;
		e->done_set = true;
	}
	atomic_store_explicit(&e->revoked, true, memory_order_release);
	if (mwc_detach(c, e, &dead, false))
		count_invalid(c, e, MW_INFO_USER);
	pthread_mutex_unlock(&c->lock);
	mwc_drop_dead(c, dead);
	return 0;
}

void mapwatch_cache_flush(struct mapwatch_cache *c)
{
	struct mapwatch_cache_entry *dead = NULL;

	/* In a child after fork the entries are the parent's, and the lock
	 * may be a copy a parent thread held at fork: leave both alone. */
	if (!c || mw_forked(c->mw))
		return;
	pthread_mutex_lock(&c->lock);
	while (c->hand) {
		mwc_detach(c, c->hand, &dead, false);
		atomic_fetch_add(&c->evict_flush, 1);
	}
	pthread_mutex_unlock(&c->lock);
	mwc_drop_dead(c, dead);
}

int mapwatch_cache_get_stats_sized(struct mapwatch_cache *c,
				   struct mapwatch_cache_stats *out, size_t size)
{
	struct mapwatch_cache_stats k = { 0 }, *s = &k;
	bool child;

	if (!c || !out)
		return -EINVAL;
	child = mw_forked(c->mw);
	s->misses = atomic_load(&c->misses);
	s->evict_lru = atomic_load(&c->evict_lru);
	s->evict_invalid = atomic_load(&c->evict_invalid);
	s->evict_flush = atomic_load(&c->evict_flush);
	s->invalidations = atomic_load(&c->invalidations);
	s->registrations = atomic_load(&c->registrations);
	s->deregistrations = atomic_load(&c->deregistrations);
	s->uncached = atomic_load(&c->uncached);
	s->passthrough = atomic_load(&c->passthrough);
	for (int i = 0; i < MAPWATCH_CHANGE_REASON_SLOTS; i++)
		s->by_reason[i] = atomic_load(&c->by_reason[i]);
	for (int i = 0; i < MAPWATCH_CHANGE_CAUSE_SLOTS; i++)
		s->by_cause[i] = atomic_load(&c->by_cause[i]);
	s->pages_kept = atomic_load(&c->pages_kept);
	/* In a child after fork, the lock may be a copy a parent thread
	 * held at fork; no other thread of the child uses this copy. */
	if (!child)
		pthread_mutex_lock(&c->lock);
	s->hits = c->retired_uses + atomic_load(&c->folded_uses);
	s->covering_hits = c->retired_covers;
	for (struct mapwatch_cache_entry *e = c->all; e; e = e->all_next) {
		s->hits += USES(atomic_load_explicit(&e->refs_uses, memory_order_relaxed));
		s->covering_hits += atomic_load_explicit(&e->covers,
							 memory_order_relaxed);
	}
	s->entries = c->nentries;
	s->bytes_registered = c->bytes;
	if (!child)
		pthread_mutex_unlock(&c->lock);
	mw_struct_out(out, size, &k, sizeof(k));
	return 0;
}

void mapwatch_cache_destroy(struct mapwatch_cache *c)
{
	if (!c)
		return;
	if (mw_forked(c->mw)) {
		/* The child's copy: free it, call nothing, take no lock. */
		while (c->all) {
			struct mapwatch_cache_entry *e = c->all;

			c->all = e->all_next;
			free(e);
		}
	} else {
		struct mapwatch *mw = c->mw;

		/* Out of the monitor's list first, then wait for a router
		 * applying events here. */
		pthread_mutex_lock(&mw->share_lock);
		for (struct mapwatch_cache **pp = &mw->caches; *pp;
		     pp = &(*pp)->share_next) {
			if (*pp == c) {
				*pp = c->share_next;
				break;
			}
		}
		while (c->pins)
			pthread_cond_wait(&mw->share_cond, &mw->share_lock);
		pthread_mutex_unlock(&mw->share_lock);
		mapwatch_cache_flush(c);
		if (c->ops.release)
			c->ops.release(c->ops.ctx);
	}
	while (c->free) {
		struct mapwatch_cache_entry *e = c->free;

		c->free = e->dead_next;
		free(e);
	}
	while (c->old_arrays) {
		struct buckets *a = c->old_arrays;

		c->old_arrays = a->older;
		free(a);
	}
	free(atomic_load(&c->byaddr.a));
	free(atomic_load(&c->cookies.a));
	free(atomic_load(&c->bygran.a));
	pthread_rwlock_destroy(&c->tree_lock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->inflight_done);
	free(c);
}
