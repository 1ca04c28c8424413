// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The registration cache.
 *
 * Two indexes over the same entries:
 *  - a hash of the aligned start address split into SHARDS shards, each
 *    with its own rwlock and growing bucket array.  The common hit (same
 *    start as a cached entry) takes one shard's read lock: hits on
 *    different buffers share no lock, hits on one buffer share a read lock;
 *  - an address-ordered tree (a treap keyed by start, every node knowing
 *    the largest end in its subtree) under one rwlock, searched only when
 *    the hash misses, for a larger entry that starts below the request and
 *    covers it.
 * Misses, eviction and events take the cache mutex, then the tree's and a
 * shard's write locks, in that order.  No lock is held while the reg/dereg
 * callbacks run or while the monitor watches or unwatches.
 *
 * An entry holds one reference for being in the cache and one per user; it
 * is unwatched, deregistered and freed when the last one goes.  Lookups take
 * their reference under the read lock of the index they searched, and an
 * entry leaves both indexes under both write locks, so an eviction that
 * sees only the cache's reference knows no lookup can take another.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define SHARDS 64			/* a power of two */
#define MIN_BUCKETS 16
#define MAX_STALE 4			/* changed entries one lookup purges */
#define REG_TRIES 4			/* registrations raced by a change */

struct hnode {
	struct hnode *next;
	uint64_t key;
};

/* A chained hash table that doubles when it holds as many nodes as buckets. */
struct htab {
	struct hnode **b;
	size_t mask, n;
};

struct mapwatch_cache_entry {
	/* Read by every hit: keep together. */
	uintptr_t start, end;
	struct mapwatch_handle wh;
	_Atomic int refs;
	int flags;
	_Atomic bool referenced;		/* CLOCK bit */
	bool cached;				/* under c->lock */
	void *reg;
	struct hnode hs;			/* shard hash, key start */
	struct hnode hc;			/* cookie hash, key cookie */
	struct mapwatch_cache_entry *ring_prev, *ring_next;
	struct mapwatch_cache_entry *t_left, *t_right;
	uintptr_t t_maxend;
	uint32_t t_prio;
	struct mapwatch_cache_entry *dead_next;
};

struct shard {
	pthread_rwlock_t lock;
	struct htab t;
	_Atomic uint64_t hits;
} __attribute__((aligned(64)));

struct mapwatch_cache {
	struct mapwatch *mw;
	struct mapwatch_cache_ops ops;
	struct mapwatch_cache_config cfg;
	uintptr_t align;
	struct shard shards[SHARDS];
	pthread_rwlock_t tree_lock;
	struct mapwatch_cache_entry *root;	/* the address-ordered tree */
	pthread_mutex_t lock;			/* everything below */
	struct htab cookies;
	struct mapwatch_cache_entry *hand;	/* CLOCK ring of cached entries */
	size_t nentries, bytes;
	uint64_t rng;
	_Atomic uint64_t next_cookie;
	_Atomic uint64_t misses, covering_hits, evict_lru, evict_invalid,
		evict_flush, invalidations, registrations, deregistrations;
};

#define entry_of(p, field) \
	((struct mapwatch_cache_entry *)((char *)(p) - \
		offsetof(struct mapwatch_cache_entry, field)))

/* --- hash tables ---------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void htab_grow(struct htab *t)
{
	size_t nb = t->b ? 2 * (t->mask + 1) : MIN_BUCKETS;
	struct hnode **b = calloc(nb, sizeof(*b));

	if (!b)
		return;		/* longer chains, still correct */
	for (size_t i = 0; t->b && i <= t->mask; i++) {
		struct hnode *n = t->b[i], *next;

		for (; n; n = next) {
			size_t j = (mix(n->key) >> 6) & (nb - 1);

			next = n->next;
			n->next = b[j];
			b[j] = n;
		}
	}
	free(t->b);
	t->b = b;
	t->mask = nb - 1;
}

/* Bucket bits come from above the shard bits (the low 6) of the hash. */
static struct hnode **htab_bucket(const struct htab *t, uint64_t key)
{
	return &t->b[(mix(key) >> 6) & t->mask];
}

static void htab_insert(struct htab *t, struct hnode *n)
{
	struct hnode **pp;

	if (t->n > t->mask)
		htab_grow(t);
	pp = htab_bucket(t, n->key);
	n->next = *pp;
	*pp = n;
	t->n++;
}

static void htab_remove(struct htab *t, struct hnode *n)
{
	struct hnode **pp = htab_bucket(t, n->key);

	while (*pp != n)
		pp = &(*pp)->next;
	*pp = n->next;
	t->n--;
}

static struct shard *shard_of(struct mapwatch_cache *c, uintptr_t start)
{
	return &c->shards[mix(start) & (SHARDS - 1)];
}

/* --- the address-ordered tree (treap) ------------------------------------ */

static bool t_less(const struct mapwatch_cache_entry *a,
		   const struct mapwatch_cache_entry *b)
{
	return a->start < b->start || (a->start == b->start && a < b);
}

static void t_fix(struct mapwatch_cache_entry *n)
{
	uintptr_t m = n->end;

	if (n->t_left && n->t_left->t_maxend > m)
		m = n->t_left->t_maxend;
	if (n->t_right && n->t_right->t_maxend > m)
		m = n->t_right->t_maxend;
	n->t_maxend = m;
}

static struct mapwatch_cache_entry *t_insert(struct mapwatch_cache_entry *root,
					     struct mapwatch_cache_entry *e)
{
	struct mapwatch_cache_entry *x;

	if (!root) {
		e->t_left = e->t_right = NULL;
		e->t_maxend = e->end;
		return e;
	}
	if (t_less(e, root)) {
		root->t_left = t_insert(root->t_left, e);
		if (root->t_left->t_prio > root->t_prio) {	/* rotate right */
			x = root->t_left;
			root->t_left = x->t_right;
			x->t_right = root;
			t_fix(root);
			root = x;
		}
	} else {
		root->t_right = t_insert(root->t_right, e);
		if (root->t_right->t_prio > root->t_prio) {	/* rotate left */
			x = root->t_right;
			root->t_right = x->t_left;
			x->t_left = root;
			t_fix(root);
			root = x;
		}
	}
	t_fix(root);
	return root;
}

/* Join two treaps, every key of a below every key of b. */
static struct mapwatch_cache_entry *t_join(struct mapwatch_cache_entry *a,
					   struct mapwatch_cache_entry *b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	if (a->t_prio > b->t_prio) {
		a->t_right = t_join(a->t_right, b);
		t_fix(a);
		return a;
	}
	b->t_left = t_join(a, b->t_left);
	t_fix(b);
	return b;
}

static struct mapwatch_cache_entry *t_remove(struct mapwatch_cache_entry *root,
					     struct mapwatch_cache_entry *e)
{
	if (root == e)
		return t_join(e->t_left, e->t_right);
	if (t_less(e, root))
		root->t_left = t_remove(root->t_left, e);
	else
		root->t_right = t_remove(root->t_right, e);
	t_fix(root);
	return root;
}

struct stale {
	struct mapwatch_cache_entry *e[MAX_STALE];
	int n;
};

/* A changed entry met by a lookup: keep it (referenced) for purge_stale. */
static void note_stale(struct stale *st, struct mapwatch_cache_entry *e)
{
	if (st->n < MAX_STALE) {
		atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
		st->e[st->n++] = e;
	}
}

static bool usable(const struct mapwatch_cache_entry *e, uintptr_t end,
		   int flags)
{
	return e->end >= end && (e->flags & flags) == flags;
}

/*
 * An entry with start <= s, end >= end and the flags, unchanged.  Walks
 * left first; prunes subtrees whose largest end is short of the request
 * and everything right of the first start above s.
 */
static struct mapwatch_cache_entry *t_cover(struct mapwatch_cache_entry *n,
					    uintptr_t s, uintptr_t end,
					    int flags, struct stale *st)
{
	struct mapwatch_cache_entry *r;

	while (n && n->t_maxend >= end) {
		r = t_cover(n->t_left, s, end, flags, st);
		if (r)
			return r;
		if (n->start > s)
			return NULL;
		if (usable(n, end, flags)) {
			if (!mapwatch_changed(&n->wh))
				return n;
			note_stale(st, n);
		}
		n = n->t_right;
	}
	return NULL;
}

/* --- references and the indexes ------------------------------------------ */

static void entry_destroy(struct mapwatch_cache *c,
			  struct mapwatch_cache_entry *e)
{
	mapwatch_unwatch(c->mw, &e->wh);
	c->ops.dereg(c->ops.ctx, e->reg);
	atomic_fetch_add(&c->deregistrations, 1);
	free(e);
}

static void entry_unref(struct mapwatch_cache *c,
			struct mapwatch_cache_entry *e)
{
	if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
		entry_destroy(c, e);
}

/*
 * Take e out of the cache (caller holds c->lock) and queue the cache's
 * reference on *dead, to be dropped once every lock is released.  With
 * idle_only, an entry someone holds stays.  Returns whether it left.
 */
static bool detach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
		   struct mapwatch_cache_entry **dead, bool idle_only)
{
	struct shard *sh = shard_of(c, e->start);

	if (!e->cached)
		return false;
	pthread_rwlock_wrlock(&c->tree_lock);
	pthread_rwlock_wrlock(&sh->lock);
	if (idle_only && atomic_load(&e->refs) != 1) {
		pthread_rwlock_unlock(&sh->lock);
		pthread_rwlock_unlock(&c->tree_lock);
		return false;
	}
	htab_remove(&sh->t, &e->hs);
	c->root = t_remove(c->root, e);
	pthread_rwlock_unlock(&sh->lock);
	pthread_rwlock_unlock(&c->tree_lock);
	htab_remove(&c->cookies, &e->hc);
	if (e->ring_next == e) {
		c->hand = NULL;
	} else {
		e->ring_prev->ring_next = e->ring_next;
		e->ring_next->ring_prev = e->ring_prev;
		if (c->hand == e)
			c->hand = e->ring_next;
	}
	e->cached = false;
	c->nentries--;
	c->bytes -= e->end - e->start;
	e->dead_next = *dead;
	*dead = e;
	return true;
}

static void attach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	struct shard *sh = shard_of(c, e->start);

	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	e->t_prio = (uint32_t)(c->rng >> 16);
	pthread_rwlock_wrlock(&c->tree_lock);
	pthread_rwlock_wrlock(&sh->lock);
	htab_insert(&sh->t, &e->hs);
	c->root = t_insert(c->root, e);
	pthread_rwlock_unlock(&sh->lock);
	pthread_rwlock_unlock(&c->tree_lock);
	htab_insert(&c->cookies, &e->hc);
	/* Behind the hand: the last the CLOCK sweep reaches. */
	if (c->hand) {
		e->ring_next = c->hand;
		e->ring_prev = c->hand->ring_prev;
		e->ring_prev->ring_next = e;
		c->hand->ring_prev = e;
	} else {
		e->ring_next = e->ring_prev = e;
		c->hand = e;
	}
	e->cached = true;
	c->nentries++;
	c->bytes += e->end - e->start;
}

static void drop_dead(struct mapwatch_cache *c, struct mapwatch_cache_entry *dead)
{
	while (dead) {
		struct mapwatch_cache_entry *next = dead->dead_next;

		entry_unref(c, dead);
		dead = next;
	}
}

static void count_invalid(struct mapwatch_cache *c)
{
	atomic_fetch_add(&c->invalidations, 1);
	atomic_fetch_add(&c->evict_invalid, 1);
}

/* --- events --------------------------------------------------------------- */

struct ev_ctx {
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *dead;
};

/* Called with c->lock held; the monitor holds none of its own locks. */
static void on_event(void *arg, const struct mapwatch_event *ev)
{
	struct ev_ctx *x = arg;
	struct mapwatch_cache *c = x->c;
	struct mapwatch_cache_entry *e, *next;

	if (ev->cookie != MAPWATCH_COOKIE_RANGE) {
		struct hnode *n;

		for (n = *htab_bucket(&c->cookies, ev->cookie); n; n = n->next)
			if (n->key == ev->cookie)
				break;
		/* Unknown: an entry already gone, or not the cache's watch. */
		if (n && detach(c, entry_of(n, hc), &x->dead, false))
			count_invalid(c);
		return;
	}
	/* Events were folded into a range: every overlapping entry that
	 * changed goes (its watch says so). */
	size_t n = c->nentries;

	e = c->hand;
	for (size_t i = 0; i < n && e; i++) {
		next = e->ring_next;
		if (e->start < ev->addr + ev->len && ev->addr < e->end &&
		    mapwatch_changed(&e->wh) && detach(c, e, &x->dead, false))
			count_invalid(c);
		e = next;
	}
}

static void process_events(struct mapwatch_cache *c)
{
	struct ev_ctx x = { c, NULL };

	pthread_mutex_lock(&c->lock);
	mapwatch_drain(c->mw, on_event, &x);
	pthread_mutex_unlock(&c->lock);
	drop_dead(c, x.dead);
}

/* Drop the references a lookup took on changed entries, evicting them. */
static void purge_stale(struct mapwatch_cache *c, struct stale *st)
{
	struct mapwatch_cache_entry *dead = NULL;

	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < st->n; i++)
		if (detach(c, st->e[i], &dead, false))
			count_invalid(c);
	pthread_mutex_unlock(&c->lock);
	for (int i = 0; i < st->n; i++)
		entry_unref(c, st->e[i]);
	drop_dead(c, dead);
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
 * with one_more, until one entry left).  Caller holds c->lock.
 */
static bool evict(struct mapwatch_cache *c, size_t add_bytes, bool one_more,
		  struct mapwatch_cache_entry **dead)
{
	size_t budget = 2 * c->nentries + 2;

	while (c->hand && budget--) {
		struct mapwatch_cache_entry *e = c->hand;

		if (!one_more && !over_limits(c, add_bytes))
			return true;
		c->hand = e->ring_next;
		if (atomic_load(&e->refs) != 1)
			continue;		/* in use */
		if (atomic_exchange(&e->referenced, false))
			continue;		/* second chance */
		if (detach(c, e, dead, true)) {
			atomic_fetch_add(&c->evict_lru, 1);
			if (one_more)
				return true;
		}
	}
	return !one_more && !over_limits(c, add_bytes);
}

/* The monitor is full: evict one idle entry to free its watch. */
static bool make_room(struct mapwatch_cache *c)
{
	struct mapwatch_cache_entry *dead = NULL;
	bool ok;

	pthread_mutex_lock(&c->lock);
	ok = evict(c, 0, true, &dead);
	pthread_mutex_unlock(&c->lock);
	drop_dead(c, dead);
	return ok;
}

/* --- the API -------------------------------------------------------------- */

struct mapwatch_cache *mapwatch_cache_create(struct mapwatch *mw,
				const struct mapwatch_cache_ops *ops,
				const struct mapwatch_cache_config *cfg)
{
	struct mapwatch_cache *c;

	if (!mw || !ops || !ops->reg || !ops->dereg) {
		errno = EINVAL;
		return NULL;
	}
	c = aligned_alloc(64, sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	memset(c, 0, sizeof(*c));
	c->mw = mw;
	c->ops = *ops;
	if (cfg)
		c->cfg = *cfg;
	c->align = c->cfg.align ? c->cfg.align : (uintptr_t)sysconf(_SC_PAGESIZE);
	if (c->align & (c->align - 1)) {
		free(c);
		errno = EINVAL;
		return NULL;
	}
	htab_grow(&c->cookies);
	for (int i = 0; i < SHARDS; i++)
		htab_grow(&c->shards[i].t);
	for (int i = 0; i < SHARDS; i++) {
		if (!c->shards[i].t.b || !c->cookies.b) {
			for (int j = 0; j < SHARDS; j++)
				free(c->shards[j].t.b);
			free(c->cookies.b);
			free(c);
			errno = ENOMEM;
			return NULL;
		}
	}
	for (int i = 0; i < SHARDS; i++)
		pthread_rwlock_init(&c->shards[i].lock, NULL);
	pthread_rwlock_init(&c->tree_lock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	c->next_cookie = 1;
	c->rng = 0x9e3779b97f4a7c15ULL ^ (uintptr_t)c;
	return c;
}

/* The hit path: an unchanged entry starting at s. */
static struct mapwatch_cache_entry *lookup_exact(struct mapwatch_cache *c,
						 uintptr_t s, uintptr_t end,
						 int flags, struct stale *st)
{
	struct shard *sh = shard_of(c, s);
	struct mapwatch_cache_entry *e, *found = NULL;
	struct hnode *n;

	pthread_rwlock_rdlock(&sh->lock);
	for (n = *htab_bucket(&sh->t, s); n; n = n->next) {
		if (n->key != s)
			continue;
		e = entry_of(n, hs);
		if (!usable(e, end, flags))
			continue;
		if (mapwatch_changed(&e->wh)) {
			note_stale(st, e);
			continue;
		}
		atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
		if (!atomic_load_explicit(&e->referenced, memory_order_relaxed))
			atomic_store_explicit(&e->referenced, true,
					      memory_order_relaxed);
		found = e;
		break;
	}
	pthread_rwlock_unlock(&sh->lock);
	if (found)
		atomic_fetch_add_explicit(&sh->hits, 1, memory_order_relaxed);
	return found;
}

static struct mapwatch_cache_entry *lookup_cover(struct mapwatch_cache *c,
						 uintptr_t s, uintptr_t end,
						 int flags, struct stale *st)
{
	struct mapwatch_cache_entry *e;

	pthread_rwlock_rdlock(&c->tree_lock);
	e = t_cover(c->root, s, end, flags, st);
	if (e) {
		atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
		atomic_store_explicit(&e->referenced, true, memory_order_relaxed);
	}
	pthread_rwlock_unlock(&c->tree_lock);
	if (e)
		atomic_fetch_add(&c->covering_hits, 1);
	return e;
}

/* Watch, then register, then check the watch: a change at any moment after
 * the watch is placed is seen. */
static struct mapwatch_cache_entry *reg_new(struct mapwatch_cache *c,
					    uintptr_t s, uintptr_t end,
					    int flags)
{
	struct mapwatch_cache_entry *e = calloc(1, sizeof(*e));
	int ret, err;

	if (!e) {
		errno = ENOMEM;
		return NULL;
	}
	e->start = s;
	e->end = end;
	e->flags = flags;
	e->hs.key = s;
	for (int tries = 0;; tries++) {
		e->hc.key = atomic_fetch_add(&c->next_cookie, 1);
		ret = mapwatch_watch(c->mw, (void *)s, end - s, e->hc.key, &e->wh);
		while (ret == -ENOSPC && make_room(c))
			ret = mapwatch_watch(c->mw, (void *)s, end - s,
					     e->hc.key, &e->wh);
		if (ret) {
			err = -ret;
			break;
		}
		errno = 0;
		e->reg = c->ops.reg(c->ops.ctx, (void *)s, end - s, flags);
		if (!e->reg) {
			err = errno ? errno : EIO;
			mapwatch_unwatch(c->mw, &e->wh);
			break;
		}
		atomic_fetch_add(&c->registrations, 1);
		if (!mapwatch_changed(&e->wh))
			return e;
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
	free(e);
	errno = err;
	return NULL;
}

struct mapwatch_cache_entry *mapwatch_cache_get(struct mapwatch_cache *c,
						void *addr, size_t len,
						int flags)
{
	uintptr_t s, end;
	struct mapwatch_cache_entry *e, *dead = NULL;
	struct stale st = { .n = 0 };

	if (!c || !len || (uintptr_t)addr + len < (uintptr_t)addr) {
		errno = EINVAL;
		return NULL;
	}
	s = (uintptr_t)addr & ~(c->align - 1);
	end = ((uintptr_t)addr + len + c->align - 1) & ~(c->align - 1);
	if (end <= s) {
		errno = EINVAL;
		return NULL;
	}
	if (mw_forked(c->mw)) {
		errno = EIO;
		return NULL;
	}
	if (mapwatch_pending(c->mw))
		process_events(c);
	e = lookup_exact(c, s, end, flags, &st);
	if (!e)
		e = lookup_cover(c, s, end, flags, &st);
	if (st.n)
		purge_stale(c, &st);
	if (e)
		return e;
	atomic_fetch_add(&c->misses, 1);

	e = reg_new(c, s, end, flags);
	if (!e)
		return NULL;
	atomic_store(&e->refs, 2);	/* the cache's and the caller's */
	pthread_mutex_lock(&c->lock);
	if (evict(c, end - s, false, &dead)) {
		attach(c, e);
	} else {
		/* Every other entry is held: hand this one out uncached
		 * rather than break the limits; it goes when put. */
		atomic_store(&e->refs, 1);
	}
	pthread_mutex_unlock(&c->lock);
	drop_dead(c, dead);
	return e;
}

/* A changed entry nobody else may use: take it out now, so that its
 * registration goes with its last reference. */
static void put_changed(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	struct mapwatch_cache_entry *dead = NULL;

	pthread_mutex_lock(&c->lock);
	if (detach(c, e, &dead, false))
		count_invalid(c);
	pthread_mutex_unlock(&c->lock);
	entry_unref(c, e);
	drop_dead(c, dead);
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

void *mapwatch_cache_entry_reg(const struct mapwatch_cache_entry *e)
{
	return e->reg;
}

void *mapwatch_cache_entry_addr(const struct mapwatch_cache_entry *e)
{
	return (void *)e->start;
}

size_t mapwatch_cache_entry_len(const struct mapwatch_cache_entry *e)
{
	return e->end - e->start;
}

bool mapwatch_cache_entry_changed(const struct mapwatch_cache_entry *e)
{
	return mapwatch_changed(&e->wh);
}

void mapwatch_cache_flush(struct mapwatch_cache *c)
{
	struct mapwatch_cache_entry *dead = NULL;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	while (c->hand) {
		detach(c, c->hand, &dead, false);
		atomic_fetch_add(&c->evict_flush, 1);
	}
	pthread_mutex_unlock(&c->lock);
	drop_dead(c, dead);
}

void mapwatch_cache_get_stats(struct mapwatch_cache *c,
			      struct mapwatch_cache_stats *s)
{
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < SHARDS; i++)
		s->hits += atomic_load(&c->shards[i].hits);
	s->covering_hits = atomic_load(&c->covering_hits);
	s->hits += s->covering_hits;
	s->misses = atomic_load(&c->misses);
	s->evict_lru = atomic_load(&c->evict_lru);
	s->evict_invalid = atomic_load(&c->evict_invalid);
	s->evict_flush = atomic_load(&c->evict_flush);
	s->invalidations = atomic_load(&c->invalidations);
	s->registrations = atomic_load(&c->registrations);
	s->deregistrations = atomic_load(&c->deregistrations);
	pthread_mutex_lock(&c->lock);
	s->entries = c->nentries;
	s->bytes_registered = c->bytes;
	pthread_mutex_unlock(&c->lock);
}

void mapwatch_cache_destroy(struct mapwatch_cache *c)
{
	if (!c)
		return;
	mapwatch_cache_flush(c);
	if (c->ops.release)
		c->ops.release(c->ops.ctx);
	for (int i = 0; i < SHARDS; i++) {
		pthread_rwlock_destroy(&c->shards[i].lock);
		free(c->shards[i].t.b);
	}
	free(c->cookies.b);
	pthread_rwlock_destroy(&c->tree_lock);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
