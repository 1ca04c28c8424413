// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The registration cache.
 *
 * Lookups hash the aligned start address into one of SHARDS shards, each
 * with its own rwlock, so hits on different buffers never share a lock and
 * hits on the same buffer share only a read lock.  Everything else (misses,
 * eviction, invalidation) takes the cache mutex, then a shard's write lock.
 * No lock is held while the reg/dereg callbacks or the monitor run.
 *
 * An entry holds one reference for being in the cache and one per user; it
 * is unwatched, deregistered and freed when the last one goes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define SHARDS 64
#define COOKIE_BUCKETS 1024

struct mapwatch_cache_entry {
	uintptr_t start, end;
	int flags;
	void *reg;
	struct mapwatch_handle wh;
	uint64_t cookie;
	_Atomic int refs;
	bool cached;				/* under c->lock */
	_Atomic bool referenced;		/* CLOCK bit */
	struct mapwatch_cache_entry *shard_next;
	struct mapwatch_cache_entry *cookie_next;
	struct mapwatch_cache_entry *ring_prev, *ring_next;
};

struct shard {
	pthread_rwlock_t lock;
	struct mapwatch_cache_entry *head;
} __attribute__((aligned(64)));

struct mapwatch_cache {
	struct mapwatch *mw;
	struct mapwatch_cache_ops ops;
	struct mapwatch_cache_config cfg;
	uintptr_t align;
	struct shard shards[SHARDS];
	pthread_mutex_t lock;
	struct mapwatch_cache_entry *cookies[COOKIE_BUCKETS];
	struct mapwatch_cache_entry *hand;	/* CLOCK ring of cached entries */
	size_t nentries, bytes;
	uint64_t next_cookie;
	_Atomic uint64_t hits, misses, evict_lru, evict_invalid, evict_flush,
		invalidations, registrations, deregistrations;
};

static struct shard *shard_of(struct mapwatch_cache *c, uintptr_t start)
{
	uintptr_t k = start / c->align;

	return &c->shards[(k ^ (k >> 7) ^ (k >> 17)) % SHARDS];
}

struct mapwatch_cache *mapwatch_cache_create(struct mapwatch *mw,
				const struct mapwatch_cache_ops *ops,
				const struct mapwatch_cache_config *cfg)
{
	struct mapwatch_cache *c;

	if (!mw || !ops || !ops->reg || !ops->dereg) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
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
	for (int i = 0; i < SHARDS; i++)
		pthread_rwlock_init(&c->shards[i].lock, NULL);
	pthread_mutex_init(&c->lock, NULL);
	c->next_cookie = 1;
	return c;
}

/* Last reference gone: the entry is out of the cache; release it. */
static void entry_destroy(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	mapwatch_unwatch(c->mw, &e->wh);
	c->ops.dereg(c->ops.ctx, e->reg);
	atomic_fetch_add(&c->deregistrations, 1);
	free(e);
}

static void entry_unref(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	if (atomic_fetch_sub(&e->refs, 1) == 1)
		entry_destroy(c, e);
}

/* Take e out of the index.  Caller holds c->lock; it then drops the
 * cache's reference (outside the lock) through *dead. */
static void detach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
		   struct mapwatch_cache_entry **dead)
{
	struct shard *s = shard_of(c, e->start);
	struct mapwatch_cache_entry **pp;

	if (!e->cached)
		return;
	pthread_rwlock_wrlock(&s->lock);
	for (pp = &s->head; *pp != e; pp = &(*pp)->shard_next)
		;
	*pp = e->shard_next;
	pthread_rwlock_unlock(&s->lock);
	for (pp = &c->cookies[e->cookie % COOKIE_BUCKETS]; *pp != e;
	     pp = &(*pp)->cookie_next)
		;
	*pp = e->cookie_next;
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
	e->shard_next = *dead;		/* reuse the link: it is free now */
	*dead = e;
}

static void drop_dead(struct mapwatch_cache *c, struct mapwatch_cache_entry *dead)
{
	while (dead) {
		struct mapwatch_cache_entry *next = dead->shard_next;

		entry_unref(c, dead);
		dead = next;
	}
}

struct ev_ctx {
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *dead;
};

/* Called with c->lock held: the monitor takes none of the cache's locks. */
static void on_event(void *arg, const struct mapwatch_event *ev)
{
	struct ev_ctx *x = arg;
	struct mapwatch_cache *c = x->c;
	struct mapwatch_cache_entry *e, *next;

	if (ev->cookie != MAPWATCH_COOKIE_RANGE) {
		for (e = c->cookies[ev->cookie % COOKIE_BUCKETS]; e; e = e->cookie_next)
			if (e->cookie == ev->cookie)
				break;
		if (e) {
			atomic_fetch_add(&c->invalidations, 1);
			atomic_fetch_add(&c->evict_invalid, 1);
			detach(c, e, &x->dead);
		}
		return;
	}
	/* A range event (the monitor overflowed): everything overlapping. */
	size_t n = c->nentries;

	e = c->hand;
	for (size_t i = 0; i < n && e; i++) {
		next = e->ring_next;
		if (e->start < ev->addr + ev->len && ev->addr < e->end) {
			atomic_fetch_add(&c->invalidations, 1);
			atomic_fetch_add(&c->evict_invalid, 1);
			detach(c, e, &x->dead);
		}
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

/* CLOCK: evict idle, not recently used entries until under the limits.
 * Caller holds c->lock. */
static void evict(struct mapwatch_cache *c, size_t add_bytes,
		  struct mapwatch_cache_entry **dead)
{
	size_t budget = 2 * c->nentries + 2;

	while (c->hand && budget--) {
		bool over = (c->cfg.max_entries && c->nentries + 1 > c->cfg.max_entries) ||
			    (c->cfg.max_bytes && c->bytes + add_bytes > c->cfg.max_bytes);
		struct mapwatch_cache_entry *e = c->hand;

		if (!over)
			return;
		c->hand = e->ring_next;
		if (atomic_load(&e->refs) != 1)
			continue;		/* in use */
		if (atomic_exchange(&e->referenced, false))
			continue;		/* second chance */
		atomic_fetch_add(&c->evict_lru, 1);
		detach(c, e, dead);
	}
}

static struct mapwatch_cache_entry *lookup(struct mapwatch_cache *c,
					   uintptr_t s, uintptr_t end, int flags,
					   bool *stale)
{
	struct shard *sh = shard_of(c, s);
	struct mapwatch_cache_entry *e;

	pthread_rwlock_rdlock(&sh->lock);
	for (e = sh->head; e; e = e->shard_next) {
		if (e->start != s || e->end < end || (e->flags & flags) != flags)
			continue;
		if (mapwatch_changed(&e->wh)) {
			*stale = true;
			continue;
		}
		atomic_fetch_add(&e->refs, 1);
		atomic_store_explicit(&e->referenced, true, memory_order_relaxed);
		break;
	}
	pthread_rwlock_unlock(&sh->lock);
	return e;
}

/* Remove every changed entry of the shard holding s. */
static void purge_stale(struct mapwatch_cache *c, uintptr_t s)
{
	struct mapwatch_cache_entry *dead = NULL, *e, *next;
	struct shard *sh = shard_of(c, s);

	pthread_mutex_lock(&c->lock);
	for (e = sh->head; e; e = next) {
		next = e->shard_next;
		if (mapwatch_changed(&e->wh)) {
			atomic_fetch_add(&c->invalidations, 1);
			atomic_fetch_add(&c->evict_invalid, 1);
			detach(c, e, &dead);
		}
	}
	pthread_mutex_unlock(&c->lock);
	drop_dead(c, dead);
}

struct mapwatch_cache_entry *mapwatch_cache_get(struct mapwatch_cache *c,
						void *addr, size_t len,
						int flags)
{
	uintptr_t s = (uintptr_t)addr & ~(c->align - 1);
	uintptr_t end = ((uintptr_t)addr + len + c->align - 1) & ~(c->align - 1);
	struct mapwatch_cache_entry *e, *dead = NULL;
	bool stale = false;
	int ret;

	if (!len || end <= s) {
		errno = EINVAL;
		return NULL;
	}
	if (mapwatch_pending(c->mw))
		process_events(c);
	e = lookup(c, s, end, flags, &stale);
	if (e) {
		atomic_fetch_add(&c->hits, 1);
		return e;
	}
	atomic_fetch_add(&c->misses, 1);
	if (stale)
		purge_stale(c, s);

	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->start = s;
	e->end = end;
	e->flags = flags;
	e->reg = c->ops.reg(c->ops.ctx, (void *)s, end - s, flags);
	if (!e->reg) {
		int err = errno ? errno : EIO;

		free(e);
		errno = err;
		return NULL;
	}
	atomic_fetch_add(&c->registrations, 1);
	pthread_mutex_lock(&c->lock);
	e->cookie = c->next_cookie++;
	pthread_mutex_unlock(&c->lock);
	ret = mapwatch_watch(c->mw, (void *)s, end - s, e->cookie, &e->wh);
	if (ret == -ENOSPC) {		/* make room among idle entries */
		pthread_mutex_lock(&c->lock);
		size_t keep = c->cfg.max_entries;

		c->cfg.max_entries = c->nentries ? c->nentries : 1;
		evict(c, 0, &dead);
		c->cfg.max_entries = keep;
		pthread_mutex_unlock(&c->lock);
		drop_dead(c, dead);
		dead = NULL;
		ret = mapwatch_watch(c->mw, (void *)s, end - s, e->cookie, &e->wh);
	}
	if (ret) {
		c->ops.dereg(c->ops.ctx, e->reg);
		atomic_fetch_add(&c->deregistrations, 1);
		free(e);
		errno = -ret;
		return NULL;
	}
	atomic_store(&e->refs, 2);	/* the cache's and the caller's */
	pthread_mutex_lock(&c->lock);
	evict(c, end - s, &dead);
	{
		struct shard *sh = shard_of(c, s);

		pthread_rwlock_wrlock(&sh->lock);
		e->shard_next = sh->head;
		sh->head = e;
		pthread_rwlock_unlock(&sh->lock);
	}
	e->cookie_next = c->cookies[e->cookie % COOKIE_BUCKETS];
	c->cookies[e->cookie % COOKIE_BUCKETS] = e;
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
	c->bytes += end - s;
	pthread_mutex_unlock(&c->lock);
	drop_dead(c, dead);
	return e;
}

void mapwatch_cache_put(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	if (e)
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

void mapwatch_cache_flush(struct mapwatch_cache *c)
{
	struct mapwatch_cache_entry *dead = NULL;

	pthread_mutex_lock(&c->lock);
	while (c->hand) {
		atomic_fetch_add(&c->evict_flush, 1);
		detach(c, c->hand, &dead);
	}
	pthread_mutex_unlock(&c->lock);
	drop_dead(c, dead);
}

void mapwatch_cache_get_stats(struct mapwatch_cache *c,
			      struct mapwatch_cache_stats *s)
{
	s->hits = atomic_load(&c->hits);
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
	for (int i = 0; i < SHARDS; i++)
		pthread_rwlock_destroy(&c->shards[i].lock);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
