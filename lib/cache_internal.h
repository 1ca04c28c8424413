/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The registration cache's private definitions, shared by its files:
 *  - cache.c: get, put, eviction, registration, the API;
 *  - cache_index.c: the lock-free hash tables and the address tree;
 *  - cache_events.c: reading the monitor's events and routing them to the
 *    caches over it;
 *  - cache_widen.c: widening a miss over mapped pages.
 * cache.c's opening comment describes the design.  Functions one file
 * gives another are prefixed mwc_ (hidden from the shared library's
 * exports by -fvisibility=hidden; the prefix keeps them out of an
 * application's way in a static link).
 */
#ifndef MAPWATCH_CACHE_INTERNAL_H
#define MAPWATCH_CACHE_INTERNAL_H

#include <stddef.h>

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
	/* In c->bygran: the one or two granules of 2^gran_level bytes (the
	 * entry's size rounded up to a power of two) it overlaps, node
	 * [index & 1] for granule index. */
	struct hnode by_gran[2];
	uint8_t gran_level;
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
	/* mapwatch_cache_invalidate_entry(): set under c->lock while held,
	 * read by whoever drops the last reference. */
	_Atomic bool revoked;			/* changed, as far as the
						   entry's users are told */
	uint32_t why;				/* MW_INFO of the change that
						   took it out, under c->lock */
	void (*done)(void *arg);		/* run after dereg, once */
	void *done_arg;
	bool done_set;
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
	_Atomic uint64_t test_applied;		/* batches applied here (tests) */
	_Atomic uint64_t test_reads;		/* non-empty batches this
						   cache's progress read (tests) */
	_Atomic uint64_t test_visited;		/* entries a device
						   invalidation looked at (tests) */
	struct mapwatch_cache_ops ops;
	struct mapwatch_cache_config cfg;
	uintptr_t align;
	size_t entry_bytes;			/* entry + storage, 64-aligned */
	struct htab byaddr;
	struct htab bygran;			/* covering lookups */
	_Atomic uint64_t gran_levels;		/* bit L: entries of level L */
	uint32_t gran_count[64];		/* under lock: per level */
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
	_Atomic uint64_t by_reason[MAPWATCH_CHANGE_REASON_SLOTS],
		by_cause[MAPWATCH_CHANGE_CAUSE_SLOTS], pages_kept;
};


/* A cookie no other cache over the monitor uses: the cache's id above
 * bit 40 (events are routed by it), a sequence below. */
#define COOKIE_SEQ_BITS 40
#define CACHE_ID_MAX ((1u << 24) - 2)	/* so a cookie is never ~0 */

static inline uint64_t new_cookie(struct mapwatch_cache *c)
{
	uint64_t seq = atomic_fetch_add(&c->next_seq, 1) &
		       ((1ULL << COOKIE_SEQ_BITS) - 1);

	return (uint64_t)c->id << COOKIE_SEQ_BITS | seq;
}

static inline uint32_t cookie_cache_id(uint64_t cookie)
{
	return (uint32_t)(cookie >> COOKIE_SEQ_BITS);
}

#define entry_of(p, field) \
	((struct mapwatch_cache_entry *)((char *)(p) - \
		offsetof(struct mapwatch_cache_entry, field)))

#define MAX_COVERED 64		/* covered entries one miss takes out */
#define ROUTE_STACK 16		/* caches of one monitor pinned without malloc */

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

struct covered {
	struct mapwatch_cache_entry *e[MAX_COVERED];
	int n;
};

/* The caches pinned by one call: a stack array, or one from malloc when the
 * monitor has more caches. */
struct pinned {
	struct mapwatch_cache **c;
	size_t n;
	struct mapwatch_cache *stack[ROUTE_STACK];
};

/* cache.c */
void mwc_entry_destroy(struct mapwatch_cache *c, struct mapwatch_cache_entry *e);
void mwc_drop_dead(struct mapwatch_cache *c, struct mapwatch_cache_entry *dead);

/* cache_index.c: the hash tables and the address tree */
struct buckets *mwc_buckets_new(size_t nb);
struct hnode *mwc_htab_find(struct htab *t, uint64_t key);
struct mapwatch_cache_entry *mwc_lookup_exact(struct mapwatch_cache *c,
					      const struct key *k,
					      struct stale *st);
struct mapwatch_cache_entry *mwc_lookup_cover(struct mapwatch_cache *c,
					      const struct key *k,
					      struct stale *st);
void mwc_t_covered(struct mapwatch_cache_entry *n,
		   const struct mapwatch_cache_entry *e, struct covered *out);
void mwc_t_overlap(struct mapwatch_cache_entry *n, uintptr_t lo, uintptr_t hi,
		   uint32_t mem_type, uint64_t device, struct covered *out,
		   uint64_t *visited);
void mwc_loose_add(struct mapwatch_cache *c, struct mapwatch_cache_entry *e);
void mwc_loose_del(struct mapwatch_cache *c, struct mapwatch_cache_entry *e);
bool mwc_detach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
		struct mapwatch_cache_entry **dead, bool claimed);
void mwc_attach(struct mapwatch_cache *c, struct mapwatch_cache_entry *e);

/* cache_events.c: reading the monitor's events, routing them */
void mwc_pin_caches(struct mapwatch_cache *c, const struct mapwatch_event *ev,
		    int n, struct pinned *p);
void mwc_unpin_caches(struct mapwatch *mw, struct pinned *p);
int mwc_process_events(struct mapwatch_cache *c);

/* cache_widen.c: widening a miss over mapped pages */
uintptr_t mwc_page_size(void);
uintptr_t mwc_huge_size(void);
void mwc_widen(struct key *k, uintptr_t a, uintptr_t n);

/* --- references (hot: inline) -------------------------------------------- */

/* A reference (and a hit) on an entry that is alive; false if it is dead. */
static inline bool ref_get(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
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

static inline void entry_unref_n(struct mapwatch_cache *c,
			  struct mapwatch_cache_entry *e, uint64_t n)
{
	if (REFS(atomic_fetch_sub_explicit(&e->refs_uses, n, memory_order_acq_rel)) == 1)
		mwc_entry_destroy(c, e);
}

static inline void entry_unref(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	entry_unref_n(c, e, REF_ONE);
}

/* A reference taken by ref_get that turned out not to be a hit. */
static inline void ref_not_a_hit(struct mapwatch_cache *c, struct mapwatch_cache_entry *e)
{
	entry_unref_n(c, e, REF_ONE + USE_ONE);
}

/* The cache's reference of an idle entry, taken back: no lookup can get a
 * reference any more.  Caller holds c->lock. */
static inline bool claim_idle(struct mapwatch_cache_entry *e)
{
	uint64_t v = atomic_load(&e->refs_uses);

	return REFS(v) == 1 &&
	       atomic_compare_exchange_strong(&e->refs_uses, &v, v - REF_ONE);
}

static inline bool usable(const struct mapwatch_cache_entry *e, const struct key *k)
{
	return e->end >= k->end && (e->flags & k->flags) == k->flags &&
	       e->mem_type == k->mem_type && e->device == k->device;
}

/* e was taken out as changed, for the reason info (MW_INFO; 0: not told). */
static inline void count_invalid(struct mapwatch_cache *c, struct mapwatch_cache_entry *e,
				 uint32_t info)
{
	uint32_t r = MW_INFO_REASON(info), k = MW_INFO_CAUSE(info);

	e->invalid = true;
	e->why = info;
	atomic_fetch_add(&c->invalidations, 1);
	atomic_fetch_add(&c->evict_invalid, 1);
	atomic_fetch_add(&c->by_reason[r < MAPWATCH_CHANGE_REASON_SLOTS ? r : 0], 1);
	atomic_fetch_add(&c->by_cause[k < MAPWATCH_CHANGE_CAUSE_SLOTS ? k : 0], 1);
	if (info & MAPWATCH_EVENT_F_PAGES_KEPT)
		atomic_fetch_add(&c->pages_kept, 1);
}

#endif /* MAPWATCH_CACHE_INTERNAL_H */
