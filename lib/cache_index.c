// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The registration cache's indexes: a chained hash of entries' start
 * addresses (and one of their cookies), read without a lock; a chained
 * hash of the granules each entry overlaps, for covering hits without a
 * lock; and an address-ordered treap whose nodes know the largest end
 * below them, under the tree's rwlock.  Writers hold c->lock (see
 * cache.c).
 *
 * The granule hash: an entry of size S has level L, the smallest power of
 * two 2^L >= S (at least a page), and overlaps one or two granules
 * [i << L, (i + 1) << L), each keyed (L, i).  An entry covering a request
 * contains its first byte s and is at least as long: it is in granule
 * (L, s >> L) of its own level L >= log2(request length).  A covering
 * lookup probes that granule at each level in use (c->gran_levels), a few
 * cache lines each instead of a walk down the tree; the tree stays for
 * the lookups that need order (what a miss covers, device invalidation)
 * and as the covering lookup's fallback when the hash finds nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"

static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

struct buckets *mwc_buckets_new(size_t nb)
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
	struct buckets *a = mwc_buckets_new(2 * (old->mask + 1));

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

/* The smallest l >= 12 (a page) with 2^l >= len: one instruction, as
 * every covering lookup asks it. */
static unsigned int gran_level(uintptr_t len)
{
	unsigned int l;

	if (len <= (uintptr_t)1 << 12)
		return 12;
	l = 64 - (unsigned int)__builtin_clzll((unsigned long long)len - 1);
	return l < 63 ? l : 63;
}

static uint64_t gran_key(unsigned int level, uintptr_t index)
{
	return (uint64_t)level << 56 | (uint64_t)index;
}

/* Under c->lock. */
static void gran_insert(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	unsigned int l = gran_level(e->end - e->start);
	uintptr_t first = e->start >> l, last = (e->end - 1) >> l;

	e->gran_level = (uint8_t)l;
	for (uintptr_t i = first; i <= last; i++)
		htab_insert(c, &c->bygran, &e->by_gran[i & 1], gran_key(l, i));
	if (!c->gran_count[l]++)
		atomic_fetch_or_explicit(&c->gran_levels, (uint64_t)1 << l,
					 memory_order_release);
}

static void gran_remove(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	unsigned int l = e->gran_level;
	uintptr_t first = e->start >> l, last = (e->end - 1) >> l;

	for (uintptr_t i = first; i <= last; i++)
		htab_remove(&c->bygran, &e->by_gran[i & 1]);
	if (!--c->gran_count[l])
		atomic_fetch_and_explicit(&c->gran_levels, ~((uint64_t)1 << l),
					  memory_order_relaxed);
}

/* Under c->lock: the node with this key (the cookie table). */
struct hnode *mwc_htab_find(struct htab *t, uint64_t key)
{
	struct buckets *a = atomic_load_explicit(&t->a, memory_order_relaxed);
	struct hnode *n = atomic_load_explicit(&a->b[mix(key) & a->mask],
					       memory_order_relaxed);

	while (n && atomic_load_explicit(&n->key, memory_order_relaxed) != key)
		n = atomic_load_explicit(&n->next, memory_order_relaxed);
	return n;
}

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

/* The hit path: an unchanged entry starting at s.  No lock. */
struct mapwatch_cache_entry *mwc_lookup_exact(struct mapwatch_cache *c,
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

/* The covering hit through the granule hash.  No lock. */
static struct mapwatch_cache_entry *gran_cover(struct mapwatch_cache *c,
					       const struct key *k,
					       struct stale *st)
{
	uint64_t levels = atomic_load_explicit(&c->gran_levels, memory_order_acquire);
	struct buckets *a = atomic_load_explicit(&c->bygran.a, memory_order_acquire);

	/* Only levels whose entries can be as long as the request. */
	levels &= ~(((uint64_t)1 << gran_level(k->end - k->s)) - 1);
	while (levels) {
		unsigned int l = (unsigned int)__builtin_ctzll(levels);
		uintptr_t i = k->s >> l;
		uint64_t key = gran_key(l, i);
		struct hnode *n = atomic_load_explicit(&a->b[mix(key) & a->mask],
						       memory_order_acquire);

		levels &= levels - 1;
		for (int steps = 0; n && steps < MAX_STEPS; steps++) {
			if (atomic_load_explicit(&n->key, memory_order_relaxed) == key) {
				struct mapwatch_cache_entry *e = i & 1 ?
					entry_of(n, by_gran[1]) :
					entry_of(n, by_gran[0]);

				/* take_hit checks the start and the end. */
				if (ref_get(c, e) && take_hit(c, e, k, false, st))
					return e;
			}
			n = atomic_load_explicit(&n->next, memory_order_acquire);
		}
	}
	return NULL;
}

struct mapwatch_cache_entry *mwc_lookup_cover(struct mapwatch_cache *c,
						 const struct key *k,
						 struct stale *st)
{
	struct mapwatch_cache_entry *e = gran_cover(c, k, st);

	if (!e) {
		pthread_rwlock_rdlock(&c->tree_lock);
		e = t_cover(c, c->root, k, st);
		pthread_rwlock_unlock(&c->tree_lock);
	}
	if (e)	/* on the entry's line, written by the hit already */
		atomic_fetch_add_explicit(&e->covers, 1, memory_order_relaxed);
	return e;
}

/* Under c->lock (the tree's writers hold it too): cached entries of the
 * tree below n inside [e->start, e->end) that e serves in their place. */
void mwc_t_covered(struct mapwatch_cache_entry *n,
		      const struct mapwatch_cache_entry *e, struct covered *out)
{
	while (n && out->n < MAX_COVERED && n->t_maxend > e->start) {
		if (n->start >= e->start)
			mwc_t_covered(n->t_left, e, out);
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
void mwc_t_overlap(struct mapwatch_cache_entry *n, uintptr_t lo, uintptr_t hi,
		      uint32_t mem_type, uint64_t device, struct covered *out,
		      uint64_t *visited)
{
	while (n && out->n < MAX_COVERED && n->t_maxend > lo) {
		(*visited)++;
		mwc_t_overlap(n->t_left, lo, hi, mem_type, device, out, visited);
		if (n->start >= hi || out->n == MAX_COVERED)
			return;
		if (n->end > lo && n->mem_type == mem_type &&
		    n->device == device && !mapwatch_changed(&n->wh))
			out->e[out->n++] = n;
		n = n->t_right;
	}
}

/* Under c->lock: the entries alive but in no index, for a device
 * invalidation to reach them without walking every entry (F25). */
void mwc_loose_add(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
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

void mwc_loose_del(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
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

/*
 * Take e out of the cache (caller holds c->lock) and queue it on *dead:
 * its cache reference is dropped (or, when claimed, the entry destroyed)
 * once every lock is released.  Returns whether it was in the cache.
 */
bool mwc_detach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
		   struct mapwatch_cache_entry **dead, bool claimed)
{
	if (!atomic_load_explicit(&e->cached, memory_order_relaxed))
		return false;
	atomic_store_explicit(&e->cached, false, memory_order_release);
	htab_remove(&c->byaddr, &e->by_start);
	gran_remove(c, e);
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
		mwc_loose_add(c, e);
	e->claimed = claimed;
	e->dead_next = *dead;
	*dead = e;
	return true;
}

void mwc_attach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
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
	gran_insert(c, e);
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
