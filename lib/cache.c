// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The registration cache.
 *
 * Two indexes over the same entries:
 *  - a hash of the aligned start address, read without any lock: the
 *    common hit (same start as a cached entry) is a few loads, one
 *    compare-and-swap on the entry's reference count, and the one-load
 *    check of its watch;
 *  - an address-ordered tree (a treap keyed by start, every node knowing
 *    the largest end in its subtree) under a rwlock, searched only when the
 *    hash misses, for a larger entry that starts below the request and
 *    covers it.
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
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define MIN_BUCKETS 64
#define MAX_STEPS 32			/* chain links a lock-free reader follows */
#define MAX_STALE 4			/* changed entries one lookup purges */
#define REG_TRIES 4			/* registrations raced by a change */
#define EVICT_ONE_STEPS 512		/* ring steps to free one resource */

#define REF_ONE ((uint64_t)1)
#define REFS_MAX 0x7fffffffu		/* ref_get refuses beyond: no carry */
#define USE_ONE ((uint64_t)1 << 32)
#define REFS(v) ((uint32_t)(v))
#define USES(v) ((v) >> 32)
#define USE_FOLD ((uint64_t)1 << 31)	/* hits moved to the cache's total */

struct hnode {
	struct hnode *_Atomic next;
	_Atomic uint64_t key;
};

/* A hash table's array of buckets. */
struct buckets {
	size_t mask;
	struct buckets *older;		/* replaced arrays, freed at destroy */
	struct hnode *_Atomic b[];
};

/* A chained hash table; changed under c->lock, read without it. */
struct htab {
	struct buckets *_Atomic a;
	size_t n;
};

struct mapwatch_cache_entry {
	/* What a hit reads, in the first cache line. */
	_Atomic uint64_t refs_uses;		/* references | hits << 32 */
	_Atomic uint64_t covers;		/* covering hits (same line) */
	struct hnode by_start;			/* by start */
	uintptr_t start, end;
	int flags;
	_Atomic bool cached;			/* in the indexes */
	_Atomic bool referenced;		/* CLOCK bit */
	bool claimed;				/* count taken to 0 by eviction */
	bool invalid;				/* taken out as changed */
	bool unwatched;				/* no watch of the monitor */
	bool passthrough;			/* uncached: memory the monitor
						   cannot watch */
	uint32_t mem_type;			/* MAPWATCH_MEM_*, or the caller's */
	uint64_t device;
	_Atomic uint32_t own_gen;		/* device memory's "watch" word:
						   mapwatch_cache_invalidate() */
	struct mapwatch_handle wh;		/* word and gen in line 1 */
	void *reg;
	struct hnode by_cookie;			/* in c->cookies */
	/* Under c->lock: */
	struct mapwatch_cache_entry *ring_prev, *ring_next;	/* CLOCK */
	struct mapwatch_cache_entry *all_prev, *all_next;	/* alive */
	struct mapwatch_cache_entry *t_left, *t_right;		/* tree */
	uintptr_t t_maxend;
	uint32_t t_prio;
	struct mapwatch_cache_entry *dead_next;
	struct mapwatch_cache_entry *loose_prev, *loose_next;	/* alive,
						   not cached */
	bool loose;
	void *data;				/* cfg.entry_size bytes, or NULL */
} __attribute__((aligned(64)));

/* A registration in progress (on the registering thread's stack), so that
 * threads missing on the same range wait for it instead of registering
 * the range again. */
struct inflight {
	uintptr_t start, end;
	int flags;
	uint32_t mem_type;
	uint64_t device;
	pthread_t owner;
	bool invalidated;		/* device memory: mapwatch_cache_
					   invalidate() of it meanwhile */
	struct inflight *next;
};

struct mapwatch_cache {
	struct mapwatch *mw;
	uint32_t id;				/* cookies' top bits: events of a
						   shared monitor find their cache */
	_Atomic uint64_t next_seq;		/* cookies' low bits */
	/* Under mw->share_lock: */
	struct mapwatch_cache *share_next;	/* the monitor's caches */
	unsigned int pins;			/* routers applying events here */
	_Atomic uint64_t test_reapplied;	/* one router applied one batch
						   here twice (tests) */
	_Atomic uint64_t test_visited;		/* entries a device
						   invalidation looked at (tests) */
	struct mapwatch_cache_ops ops;
	struct mapwatch_cache_config cfg;
	uintptr_t align;
	size_t entry_bytes;			/* entry + storage, 64-aligned */
	struct htab byaddr;
	pthread_rwlock_t tree_lock;
	struct mapwatch_cache_entry *root;	/* the address-ordered tree */
	pthread_mutex_t lock;			/* everything below */
	struct htab cookies;
	struct mapwatch_cache_entry *hand;	/* CLOCK ring of cached entries */
	struct mapwatch_cache_entry *all;	/* every entry alive */
	struct mapwatch_cache_entry *free;	/* dead, for reuse */
	struct mapwatch_cache_entry *loose;	/* alive, out of the indexes
						   (held, or handed out
						   uncached) */
	struct buckets *old_arrays;
	struct inflight *inflight;		/* registrations under way */
	_Atomic uint64_t attached;		/* attach() calls, ever */
	pthread_cond_t inflight_done;
	size_t nentries, bytes;
	uint64_t rng, retired_uses, retired_covers;
	_Atomic uint64_t folded_uses;
	_Atomic uint64_t misses, evict_lru, evict_invalid,
		evict_flush, invalidations, registrations, deregistrations,
		uncached, passthrough;
};

/* The handle of a pass-through entry: never changed. */
static const uint32_t never_changes;

/* A cookie no other cache over the monitor uses: the cache's id above
 * bit 40 (events are routed by it), a sequence below. */
#define COOKIE_SEQ_BITS 40
#define CACHE_ID_MAX ((1u << 24) - 2)	/* so a cookie is never ~0 */

static uint64_t new_cookie(struct mapwatch_cache *c)
{
	uint64_t seq = atomic_fetch_add(&c->next_seq, 1) &
		       ((1ULL << COOKIE_SEQ_BITS) - 1);

	return (uint64_t)c->id << COOKIE_SEQ_BITS | seq;
}

static uint32_t cookie_cache_id(uint64_t cookie)
{
	return (uint32_t)(cookie >> COOKIE_SEQ_BITS);
}

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

static struct buckets *buckets_new(size_t nb)
{
	struct buckets *a = calloc(1, sizeof(*a) + nb * sizeof(a->b[0]));

	if (a)
		a->mask = nb - 1;
	return a;
}

/* Caller holds c->lock.  Readers may be walking the old chains: they get
 * lost at worst (a miss), never loop (relinked nodes point only to nodes
 * already relinked). */
static void htab_grow(struct mapwatch_cache *c, struct htab *t)
{
	struct buckets *old = atomic_load_explicit(&t->a, memory_order_relaxed);
	struct buckets *a = buckets_new(2 * (old->mask + 1));

	if (!a)
		return;		/* longer chains, still correct */
	for (size_t i = 0; i <= old->mask; i++) {
		struct hnode *n = atomic_load_explicit(&old->b[i], memory_order_relaxed);

		while (n) {
			struct hnode *next = atomic_load_explicit(&n->next, memory_order_relaxed);
			struct hnode *_Atomic *head = &a->b[mix(atomic_load_explicit(
				&n->key, memory_order_relaxed)) & a->mask];

			atomic_store_explicit(&n->next, atomic_load_explicit(head,
					      memory_order_relaxed), memory_order_release);
			atomic_store_explicit(head, n, memory_order_release);
			n = next;
		}
	}
	atomic_store_explicit(&t->a, a, memory_order_release);
	old->older = c->old_arrays;
	c->old_arrays = old;
}

static void htab_insert(struct mapwatch_cache *c, struct htab *t,
			struct hnode *n, uint64_t key)
{
	struct buckets *a;
	struct hnode *_Atomic *head;

	if (t->n > atomic_load_explicit(&t->a, memory_order_relaxed)->mask)
		htab_grow(c, t);
	a = atomic_load_explicit(&t->a, memory_order_relaxed);
	head = &a->b[mix(key) & a->mask];
	atomic_store_explicit(&n->key, key, memory_order_relaxed);
	atomic_store_explicit(&n->next, atomic_load_explicit(head, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(head, n, memory_order_release);	/* publish */
	t->n++;
}

/* The node keeps its next pointer, so a reader standing on it goes on. */
static void htab_remove(struct htab *t, struct hnode *n)
{
	struct buckets *a = atomic_load_explicit(&t->a, memory_order_relaxed);
	struct hnode *_Atomic *pp = &a->b[mix(atomic_load_explicit(&n->key,
				memory_order_relaxed)) & a->mask];
	struct hnode *x;

	while ((x = atomic_load_explicit(pp, memory_order_relaxed)) != n)
		pp = &x->next;
	atomic_store_explicit(pp, atomic_load_explicit(&n->next, memory_order_relaxed),
			      memory_order_release);
	t->n--;
}

/* Under c->lock: the node with this key (the cookie table). */
static struct hnode *htab_find(struct htab *t, uint64_t key)
{
	struct buckets *a = atomic_load_explicit(&t->a, memory_order_relaxed);
	struct hnode *n = atomic_load_explicit(&a->b[mix(key) & a->mask],
					       memory_order_relaxed);

	while (n && atomic_load_explicit(&n->key, memory_order_relaxed) != key)
		n = atomic_load_explicit(&n->next, memory_order_relaxed);
	return n;
}

/* --- references ------------------------------------------------------------ */

static void entry_destroy(struct mapwatch_cache *c, struct mapwatch_cache_entry *e);

/* A reference (and a hit) on an entry that is alive; false if it is dead. */
static bool ref_get(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	uint64_t v = atomic_load_explicit(&e->refs_uses, memory_order_relaxed);

	do {
		/* Dead, or held REFS_MAX times (a miss then, never a carry
		 * into the hit count). */
		if (!REFS(v) || REFS(v) >= REFS_MAX)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&e->refs_uses, &v,
			v + REF_ONE + USE_ONE, memory_order_acquire,
			memory_order_relaxed));
	if (USES(v) >= USE_FOLD) {	/* keep the hit count from wrapping */
		uint64_t w = v + REF_ONE + USE_ONE;

		while (USES(w) >= USE_FOLD) {
			if (atomic_compare_exchange_weak(&e->refs_uses, &w,
							 w - (USE_FOLD << 32))) {
				atomic_fetch_add(&c->folded_uses, USE_FOLD);
				break;
			}
		}
	}
	return true;
}

static void entry_unref_n(struct mapwatch_cache *c,
			  struct mapwatch_cache_entry *e, uint64_t n)
{
	if (REFS(atomic_fetch_sub_explicit(&e->refs_uses, n, memory_order_acq_rel)) == 1)
		entry_destroy(c, e);
}

static void entry_unref(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	entry_unref_n(c, e, REF_ONE);
}

/* A reference taken by ref_get that turned out not to be a hit. */
static void ref_not_a_hit(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	entry_unref_n(c, e, REF_ONE + USE_ONE);
}

/* The cache's reference of an idle entry, taken back: no lookup can get a
 * reference any more.  Caller holds c->lock. */
static bool claim_idle(struct mapwatch_cache_entry *e)
{
	uint64_t v = atomic_load(&e->refs_uses);

	return REFS(v) == 1 &&
	       atomic_compare_exchange_strong(&e->refs_uses, &v, v - REF_ONE);
}

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

/* Under c->lock: the entries alive but in no index, for a device
 * invalidation to reach them without walking every entry (F25). */
static void loose_add(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	if (e->loose)
		return;
	e->loose = true;
	e->loose_prev = NULL;
	e->loose_next = c->loose;
	if (c->loose)
		c->loose->loose_prev = e;
	c->loose = e;
}

static void loose_del(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	if (!e->loose)
		return;
	e->loose = false;
	if (e->loose_prev)
		e->loose_prev->loose_next = e->loose_next;
	else
		c->loose = e->loose_next;
	if (e->loose_next)
		e->loose_next->loose_prev = e->loose_prev;
}

/* Last reference gone: release the registration, recycle the entry. */
static void entry_destroy(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
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
	loose_del(c, e);
	atomic_store(&e->refs_uses, 0);
	if (e->all_prev)
		e->all_prev->all_next = e->all_next;
	else
		c->all = e->all_next;
	if (e->all_next)
		e->all_next->all_prev = e->all_prev;
	e->dead_next = c->free;
	c->free = e;
	pthread_mutex_unlock(&c->lock);
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

/* What a request looks for: [s, end) with the flags, of this memory. */
struct key {
	uintptr_t s, end;
	int flags;
	uint32_t mem_type;
	uint64_t device;
};

static bool usable(const struct mapwatch_cache_entry *e, const struct key *k)
{
	return e->end >= k->end && (e->flags & k->flags) == k->flags &&
	       e->mem_type == k->mem_type && e->device == k->device;
}

/*
 * Under a reference: a hit if still cached, usable and unchanged.  A
 * changed entry is kept (referenced, not counted as a hit) for
 * purge_stale; anything else is let go.
 */
static bool take_hit(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
		     const struct key *k, bool exact, struct stale *st)
{
	if (!atomic_load_explicit(&e->cached, memory_order_acquire) ||
	    (exact ? e->start != k->s : e->start > k->s) || !usable(e, k)) {
		ref_not_a_hit(c, e);
		return false;
	}
	if (mapwatch_changed(&e->wh)) {
		if (st->n < MAX_STALE) {
			atomic_fetch_sub(&e->refs_uses, USE_ONE);
			st->e[st->n++] = e;
		} else {
			ref_not_a_hit(c, e);
		}
		return false;
	}
	if (!atomic_load_explicit(&e->referenced, memory_order_relaxed))
		atomic_store_explicit(&e->referenced, true, memory_order_relaxed);
	return true;
}

/*
 * Under the tree's read lock: an entry with start <= s, end >= end and the
 * flags, unchanged, referenced.  Letting go of a reference here never
 * destroys the entry (no callback, no lock under the read lock): an entry
 * in the tree keeps the cache's reference until it has left the tree.  Walks left first; prunes subtrees whose
 * largest end is short of the request and everything right of the first
 * start above s.
 */
static struct mapwatch_cache_entry *t_cover(struct mapwatch_cache *c,
					    struct mapwatch_cache_entry *n,
					    const struct key *k, struct stale *st)
{
	struct mapwatch_cache_entry *r;

	while (n && n->t_maxend >= k->end) {
		r = t_cover(c, n->t_left, k, st);
		if (r)
			return r;
		if (n->start > k->s)
			return NULL;
		if (usable(n, k) && ref_get(c, n) &&
		    take_hit(c, n, k, false, st))
			return n;
		n = n->t_right;
	}
	return NULL;
}

/* --- the indexes ------------------------------------------------------------ */

/*
 * Take e out of the cache (caller holds c->lock) and queue it on *dead:
 * its cache reference is dropped (or, when claimed, the entry destroyed)
 * once every lock is released.  Returns whether it was in the cache.
 */
static bool detach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
		   struct mapwatch_cache_entry **dead, bool claimed)
{
	if (!atomic_load_explicit(&e->cached, memory_order_relaxed))
		return false;
	atomic_store_explicit(&e->cached, false, memory_order_release);
	htab_remove(&c->byaddr, &e->by_start);
	pthread_rwlock_wrlock(&c->tree_lock);
	c->root = t_remove(c->root, e);
	pthread_rwlock_unlock(&c->tree_lock);
	htab_remove(&c->cookies, &e->by_cookie);
	if (e->ring_next == e) {
		c->hand = NULL;
	} else {
		e->ring_prev->ring_next = e->ring_next;
		e->ring_next->ring_prev = e->ring_prev;
		if (c->hand == e)
			c->hand = e->ring_next;
	}
	c->nentries--;
	c->bytes -= e->end - e->start;
	if (!claimed)		/* alive until its last reference goes */
		loose_add(c, e);
	e->claimed = claimed;
	e->dead_next = *dead;
	*dead = e;
	return true;
}

static void attach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	e->t_prio = (uint32_t)(c->rng >> 16);
	atomic_store_explicit(&e->cached, true, memory_order_relaxed);
	pthread_rwlock_wrlock(&c->tree_lock);
	c->root = t_insert(c->root, e);
	pthread_rwlock_unlock(&c->tree_lock);
	htab_insert(c, &c->byaddr, &e->by_start, e->start);	/* publishes e */
	htab_insert(c, &c->cookies, &e->by_cookie, e->by_cookie.key);
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
	c->nentries++;
	c->bytes += e->end - e->start;
	atomic_fetch_add_explicit(&c->attached, 1, memory_order_release);
}

static void drop_dead(struct mapwatch_cache *c, struct mapwatch_cache_entry *dead)
{
	while (dead) {
		struct mapwatch_cache_entry *next = dead->dead_next;

		/* Still registered: the cache's reference is dropped below. */
		if (dead->invalid && c->ops.invalidate)
			c->ops.invalidate(c->ops.ctx, dead);
		if (dead->claimed)
			entry_destroy(c, dead);
		else
			entry_unref(c, dead);
		dead = next;
	}
}

static void count_invalid(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	e->invalid = true;
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
		struct hnode *n = htab_find(&c->cookies, ev->cookie);

		/* Unknown: an entry already gone, or not the cache's watch.
		 * An entry whose watch has not changed is not the one the
		 * event is about (an event of an earlier user of the
		 * monitor): it stays. */
		e = n ? entry_of(n, by_cookie) : NULL;
		if (e && mapwatch_changed(&e->wh) && detach(c, e, &x->dead, false))
			count_invalid(c, e);
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
			count_invalid(c, e);
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
			 const struct mapwatch_event *ev, int n)
{
	struct ev_ctx x = { t, NULL };

	pthread_mutex_lock(&t->lock);
	for (int i = 0; i < n; i++)
		if (for_cache(t, &ev[i]))
			on_event(&x, &ev[i]);
	pthread_mutex_unlock(&t->lock);
	drop_dead(t, x.dead);
}

#define ROUTE_STACK 16		/* caches of one monitor pinned without malloc */

/* The caches pinned by one call: a stack array, or one from malloc when the
 * monitor has more caches. */
struct pinned {
	struct mapwatch_cache **c;
	size_t n;
	struct mapwatch_cache *stack[ROUTE_STACK];
};

/*
 * Pin the other caches over c's monitor that the events ev[0..n) concern
 * (every other cache when ev is NULL), under the monitor's share_lock: a
 * pinned cache's destroy waits until unpin_caches().  Should the list not
 * fit and malloc fail, the caches beyond the first ROUTE_STACK are left
 * out: for events, their changed entries still fail every hit (the watch
 * word) and leave at their next lookup or put; for room, fewer candidates.
 */
static void pin_caches(struct mapwatch_cache *c, const struct mapwatch_event *ev,
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

static void unpin_caches(struct mapwatch *mw, struct pinned *p)
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
static int process_events(struct mapwatch_cache *c)
{
	struct mapwatch *mw = c->mw;
	struct mapwatch_event ev[64];
	struct pinned p;
	int n, total = 0;

	while ((n = mapwatch_read_events(mw, ev, 64)) > 0) {
		total += n;
		apply_events(c, ev, n);
		pin_caches(c, ev, n, &p);
		for (size_t i = 0; i < p.n; i++) {
			/* Tests: a cache listed twice would be served twice. */
			for (size_t j = 0; j < i; j++)
				if (p.c[j] == p.c[i])
					atomic_fetch_add(&p.c[i]->test_reapplied, 1);
			apply_events(p.c[i], ev, n);
		}
		unpin_caches(mw, &p);
	}
	return n < 0 ? n : total;
}

/* Drop the references a lookup took on changed entries, evicting them. */
static void purge_stale(struct mapwatch_cache *c, struct stale *st)
{
	struct mapwatch_cache_entry *dead = NULL;

	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < st->n; i++)
		if (detach(c, st->e[i], &dead, false))
			count_invalid(c, st->e[i]);
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
		if (REFS(atomic_load(&e->refs_uses)) != 1)
			continue;		/* in use */
		if (atomic_exchange(&e->referenced, false))
			continue;		/* second chance */
		if (claim_idle(e)) {
			detach(c, e, dead, true);
			atomic_fetch_add(&c->evict_lru, 1);
			if (one_more)
				return true;
		}
	}
	return !one_more && !over_limits(c, add_bytes);
}

/* Evict one idle entry of c (its registration and its watch go). */
static bool evict_one(struct mapwatch_cache *c)
{
	struct mapwatch_cache_entry *dead = NULL;
	bool ok;

	pthread_mutex_lock(&c->lock);
	ok = evict(c, 0, true, &dead);
	pthread_mutex_unlock(&c->lock);
	drop_dead(c, dead);
	return ok;
}

/*
 * Out of a resource idle entries hold: evict one.  With shared, the
 * resource is the monitor's watches, which every cache over the monitor
 * draws on (F14): when c has no idle entry, one of another cache's goes.
 * The other caches are pinned under share_lock as the event router pins
 * them, and evicted from with no lock but their own.  Without shared (reg
 * failed: the registration resources of c's own ops), only c's entries.
 * No lock held on entry.
 */
static bool make_room(struct mapwatch_cache *c, bool shared)
{
	struct pinned p;
	bool ok = false;

	if (evict_one(c))
		return true;
	if (!shared)
		return false;
	pin_caches(c, NULL, 0, &p);
	for (size_t i = 0; i < p.n && !ok; i++)
		ok = evict_one(p.c[i]);
	unpin_caches(c->mw, &p);
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
	struct buckets *a, *b;
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
	a = buckets_new(MIN_BUCKETS);
	b = buckets_new(MIN_BUCKETS);
	if (!c || !a || !b) {
		free(c);
		free(a);
		free(b);
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
		errno = EINVAL;
		return NULL;
	}
	atomic_init(&c->byaddr.a, a);
	atomic_init(&c->cookies.a, b);
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

/* The hit path: an unchanged entry starting at s.  No lock. */
static struct mapwatch_cache_entry *lookup_exact(struct mapwatch_cache *c,
						 const struct key *k,
						 struct stale *st)
{
	struct buckets *a = atomic_load_explicit(&c->byaddr.a, memory_order_acquire);
	struct hnode *n = atomic_load_explicit(&a->b[mix(k->s) & a->mask],
					       memory_order_acquire);

	for (int steps = 0; n && steps < MAX_STEPS; steps++) {
		if (atomic_load_explicit(&n->key, memory_order_relaxed) == k->s) {
			struct mapwatch_cache_entry *e = entry_of(n, by_start);

			if (ref_get(c, e) && take_hit(c, e, k, true, st))
				return e;
		}
		n = atomic_load_explicit(&n->next, memory_order_acquire);
	}
	return NULL;
}

static struct mapwatch_cache_entry *lookup_cover(struct mapwatch_cache *c,
						 const struct key *k,
						 struct stale *st)
{
	struct mapwatch_cache_entry *e;

	pthread_rwlock_rdlock(&c->tree_lock);
	e = t_cover(c, c->root, k, st);
	pthread_rwlock_unlock(&c->tree_lock);
	if (e)	/* on the entry's line, written by the hit already */
		atomic_fetch_add_explicit(&e->covers, 1, memory_order_relaxed);
	return e;
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
	e->unwatched = false;
	e->passthrough = false;
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
		mw_settle();
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

/* --- widening --------------------------------------------------------------- */

static uintptr_t page_size(void)
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
static uintptr_t huge_size(void)
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
	uintptr_t pg = page_size();

	a &= ~(pg - 1);
	b = (b + pg - 1) & ~(pg - 1);
	return a >= b || !msync((void *)a, b - a, MS_ASYNC);
}

/* Widen [k->s, k->end) (aligned to n) towards units of a, each side only
 * as far as every page it adds is mapped: halve the unit until it is. */
static void widen(struct key *k, uintptr_t a, uintptr_t n)
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

static void alive_attach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
			 struct mapwatch_cache_entry **dead);

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
	struct stale st;
	uint64_t seen;
	int rounds = 0, dev_tries = 0;
	bool widened = false;

	if (!c || !r->len || addr + r->len < addr ||
	    (r->align & (r->align - 1)) ||
	    (r->req_flags & ~(uint64_t)MAPWATCH_CACHE_REQ_HUGE)) {
		errno = EINVAL;
		return NULL;
	}
	n = c->align < page_size() ? c->align : page_size();
	a = c->align > r->align ? c->align : r->align;
	if ((r->req_flags & MAPWATCH_CACHE_REQ_HUGE) && huge_size() > a)
		a = huge_size();
	k = (struct key){
		.s = addr & ~(n - 1), .end = (addr + r->len + n - 1) & ~(n - 1),
		.flags = r->flags, .mem_type = r->mem_type, .device = r->device,
	};
	if (k.end <= k.s) {
		errno = EINVAL;
		return NULL;
	}
	if (mw_forked(c->mw)) {
		errno = EIO;
		return NULL;
	}
	/* The exact lookup where the widest registration would start. */
	w = k;
	w.s = addr & ~(a - 1);
	w0 = w;
again:
	/* A change whose call returned before this get shows now (the
	 * userfaultfd reader may still be applying it). */
	mw_settle();
	if (mapwatch_pending(c->mw))
		process_events(c);
	seen = atomic_load_explicit(&c->attached, memory_order_acquire);
	st.n = 0;
	e = lookup_exact(c, &w, &st);
	if (!e && w.s != k.s)
		e = lookup_exact(c, &k, &st);
	if (!e)
		e = lookup_cover(c, &k, &st);
	if (st.n)	/* changed entries met on the way, hit or miss */
		purge_stale(c, &st);
	if (e)
		return e;
	if (!widened) {
		/* Device memory is not the CPU's to probe: the caller's
		 * align as it is. */
		span = k;
		if (a > n && r->mem_type == MAPWATCH_MEM_HOST) {
			widen(&span, a, n);
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
	drop_dead(c, dead);
	return e;
}

#define MAX_COVERED 64		/* covered entries one miss takes out */

struct covered {
	struct mapwatch_cache_entry *e[MAX_COVERED];
	int n;
};

/* Under c->lock (the tree's writers hold it too): cached entries of the
 * tree below n inside [e->start, e->end) that e serves in their place. */
static void t_covered(struct mapwatch_cache_entry *n,
		      const struct mapwatch_cache_entry *e, struct covered *out)
{
	while (n && out->n < MAX_COVERED && n->t_maxend > e->start) {
		if (n->start >= e->start)
			t_covered(n->t_left, e, out);
		if (n->start >= e->end)
			return;
		if (n != e && n->start >= e->start && n->end <= e->end &&
		    n->mem_type == e->mem_type && n->device == e->device &&
		    (n->flags & e->flags) == n->flags && out->n < MAX_COVERED)
			out->e[out->n++] = n;
		n = n->t_right;
	}
}

/* Under c->lock: cached, unchanged entries of this memory overlapping
 * [lo, hi), at most MAX_COVERED; *visited counts the nodes looked at. */
static void t_overlap(struct mapwatch_cache_entry *n, uintptr_t lo, uintptr_t hi,
		      uint32_t mem_type, uint64_t device, struct covered *out,
		      uint64_t *visited)
{
	while (n && out->n < MAX_COVERED && n->t_maxend > lo) {
		(*visited)++;
		t_overlap(n->t_left, lo, hi, mem_type, device, out, visited);
		if (n->start >= hi || out->n == MAX_COVERED)
			return;
		if (n->end > lo && n->mem_type == mem_type &&
		    n->device == device && !mapwatch_changed(&n->wh))
			out->e[out->n++] = n;
		n = n->t_right;
	}
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

	t_covered(c->root, e, &cv);
	for (int i = 0; i < cv.n; i++)
		if (claim_idle(cv.e[i]))
			detach(c, cv.e[i], dead, true);
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
		loose_add(c, e);
		atomic_store_explicit(&e->refs_uses, REF_ONE, memory_order_release);
		atomic_fetch_add(&c->uncached, 1);
		atomic_fetch_add(&c->passthrough, 1);
		return;
	}
	purge_covered(c, e, dead);
	if (evict(c, e->end - e->start, false, dead)) {
		/* The cache's reference and the caller's. */
		atomic_store_explicit(&e->refs_uses, 2 * REF_ONE, memory_order_release);
		attach(c, e);
		return;
	}
	/* Every other entry is held: hand this one out uncached rather than
	 * break the limits; it goes when put. */
	loose_add(c, e);
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

/* A changed entry nobody else may use: take it out now, so that its
 * registration goes with its last reference. */
static void put_changed(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	struct mapwatch_cache_entry *dead = NULL;

	pthread_mutex_lock(&c->lock);
	if (detach(c, e, &dead, false))
		count_invalid(c, e);
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
	if (!e)
		return true;
	mw_settle();
	return mapwatch_changed(&e->wh);
}

void *mapwatch_cache_entry_data(const struct mapwatch_cache_entry *e)
{
	return e ? e->data : NULL;
}

/* Tests only (not exported): n more references on a held entry, to reach
 * REFS_MAX without 2^31 gets; mw_cache_test_refs(e, 0) reads the count. */
uint32_t mw_cache_test_refs(struct mapwatch_cache_entry *e, int64_t n)
{
	/* Two's complement: a negative n borrows nothing from the hits. */
	return REFS(atomic_fetch_add(&e->refs_uses, (uint64_t)n) + (uint64_t)n);
}

/* Tests only (not exported): how often one router applied one batch of
 * events to this cache more than once. */
uint64_t mw_cache_test_reapplied(struct mapwatch_cache *c);
uint64_t mw_cache_test_reapplied(struct mapwatch_cache *c)
{
	return atomic_load(&c->test_reapplied);
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
	mw_settle();
	return process_events(c);
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
		mw_settle();
		ret = process_events(c);
		return ret < 0 ? ret : 0;
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

		t_overlap(c->root, s, s + len, mem_type, device, &found, &visited);
		atomic_fetch_add_explicit(&c->test_visited, visited,
					  memory_order_relaxed);
		for (int i = 0; i < found.n; i++) {
			struct mapwatch_cache_entry *e = found.e[i];

			atomic_fetch_add_explicit(&e->own_gen, 1, memory_order_release);
			if (detach(c, e, &dead, false))
				count_invalid(c, e);
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
	drop_dead(c, dead);
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
		detach(c, c->hand, &dead, false);
		atomic_fetch_add(&c->evict_flush, 1);
	}
	pthread_mutex_unlock(&c->lock);
	drop_dead(c, dead);
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
	pthread_rwlock_destroy(&c->tree_lock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->inflight_done);
	free(c);
}
