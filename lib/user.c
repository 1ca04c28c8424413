// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Watches kept in user memory, for the backends without a kernel module:
 * a slot table with one generation word per slot (the same one-load check
 * as the kernel's), and a ring of events.  Changes are matched by scanning
 * the live slots: O(watches) per change, fine for the fallback backends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

#define RING_SIZE 4096

int mw_user_init(struct mapwatch *mw)
{
	struct mw_user *u = &mw->u;

	u->efd = -1;
	if (mw->max >= UINT32_MAX)	/* slots are 32-bit */
		return -EINVAL;
	u->gens = calloc(mw->max + 1, sizeof(*u->gens));
	u->slots = calloc(mw->max + 1, sizeof(*u->slots));
	u->free_slots = calloc(mw->max + 1, sizeof(*u->free_slots));
	u->ring = calloc(RING_SIZE, sizeof(*u->ring));
	u->ring_info = calloc(RING_SIZE, sizeof(*u->ring_info));
	u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!u->gens || !u->slots || !u->free_slots || !u->ring ||
	    !u->ring_info || u->efd < 0) {
		mw_user_fini(mw);
		return -ENOMEM;
	}
	u->ring_size = RING_SIZE;
	for (size_t i = 0; i < mw->max; i++)
		u->free_slots[u->nfree++] = mw->max - 1 - i;
	pthread_mutex_init(&u->ev_lock, NULL);
	mw->fd = u->efd;
	return 0;
}

void mw_user_fini(struct mapwatch *mw)
{
	struct mw_user *u = &mw->u;

	if (u->efd >= 0)
		close(u->efd);
	free(u->gens);
	free(u->slots);
	free(u->free_slots);
	free(u->ring);
	free(u->ring_info);
	while (u->old_gens) {
		struct mw_old_gens *o = u->old_gens;

		u->old_gens = o->next;
		free(o->gens);
		free(o);
	}
	u->efd = -1;
}

/*
 * New tables for max watches, while every slot is free and no event is
 * pending (-EBUSY otherwise).  The old generation words stay until close:
 * a handle of a watch unwatched before may still be read (changed).
 *
 * In three steps, so that nothing is allocated or freed under a lock the
 * userfaultfd reader needs: free() may trim the heap, a trim is a munmap
 * or madvise, and over watched memory that waits for the reader to read
 * the event -- which it cannot while it waits for us to apply the one
 * before (the reader holds an event while it takes the monitors' locks).
 */
int mw_user_resize_prepare(size_t max, struct mw_user_tables *t)
{
	memset(t, 0, sizeof(*t));
	if (max >= UINT32_MAX)
		return -EINVAL;
	t->gens = calloc(max + 1, sizeof(*t->gens));
	t->slots = calloc(max + 1, sizeof(*t->slots));
	t->free_slots = calloc(max + 1, sizeof(*t->free_slots));
	t->old = malloc(sizeof(*t->old));
	if (!t->gens || !t->slots || !t->free_slots || !t->old) {
		mw_user_resize_free(t);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Swap t's tables in.  On success t holds the old slot tables (the old
 * generation words move to old_gens), for mw_user_resize_free() after the
 * caller's locks; on -EBUSY it still holds the new ones.  Caller holds
 * whatever keeps other threads out of u->slots (the userfaultfd backend:
 * its process lock and the monitor list's).
 */
int mw_user_resize_swap(struct mapwatch *mw, size_t max,
			struct mw_user_tables *t)
{
	struct mw_user *u = &mw->u;
	int ret = 0;

	pthread_mutex_lock(&mw->lock);
	pthread_mutex_lock(&u->ev_lock);
	if (u->nfree != mw->max || u->ring_count || u->ovf) {
		ret = -EBUSY;
	} else {
		struct mw_slot *old_slots = u->slots;
		uint32_t *old_free = u->free_slots;

		t->old->gens = u->gens;
		t->old->next = u->old_gens;
		u->old_gens = t->old;
		u->gens = t->gens;
		u->slots = t->slots;
		u->free_slots = t->free_slots;
		u->nfree = 0;
		for (size_t i = 0; i < max; i++)
			u->free_slots[u->nfree++] = max - 1 - i;
		atomic_store(&u->hw, 0);
		mw->max = max;
		*t = (struct mw_user_tables){ .slots = old_slots,
					      .free_slots = old_free };
	}
	pthread_mutex_unlock(&u->ev_lock);
	pthread_mutex_unlock(&mw->lock);
	if (ret == -EBUSY)
		mw_seterr(mw, "resize: watches active or events pending");
	return ret;
}

void mw_user_resize_free(struct mw_user_tables *t)
{
	free(t->gens);
	free(t->slots);
	free(t->free_slots);
	free(t->old);
	memset(t, 0, sizeof(*t));
}

/* The manual backend has no reader: its own locks are enough. */
int mw_user_resize(struct mapwatch *mw, size_t max)
{
	struct mw_user_tables t;
	int ret = mw_user_resize_prepare(max, &t);

	if (ret)
		return ret;
	ret = mw_user_resize_swap(mw, max, &t);
	mw_user_resize_free(&t);
	return ret;
}

int mw_user_invalidate_op(struct mapwatch *mw, uintptr_t start, uintptr_t end)
{
	mw_user_invalidate_ex(mw, start, end, false, MW_INFO_USER);
	return 0;
}

static void bump(uint32_t *word)
{
	__atomic_store_n(word, *word + 1, __ATOMIC_RELEASE);
}

int mw_user_watch(struct mapwatch *mw, uintptr_t addr, size_t len,
		  uint64_t cookie, struct mapwatch_handle *h)
{
	struct mw_user *u = &mw->u;
	struct mw_slot *s;
	uint32_t slot, gen;

	pthread_mutex_lock(&mw->lock);
	if (!u->nfree) {
		pthread_mutex_unlock(&mw->lock);
		mw_seterr(mw, "watch: all %zu watches in use", mw->max);
		return -ENOSPC;
	}
	slot = u->free_slots[--u->nfree];
	if (slot >= atomic_load_explicit(&u->hw, memory_order_relaxed))
		atomic_store(&u->hw, slot + 1);	/* before the slot goes live */
	s = &u->slots[slot];
	s->cookie = cookie;
	atomic_store(&s->unmapped, false);
	atomic_store(&s->start, addr);
	atomic_store(&s->last, addr + len - 1);
	/* Odd: in use.  Taken before the slot goes live: from then on an
	 * invalidation may move it on at any moment. */
	gen = u->gens[slot] + 1;
	__atomic_store_n(&u->gens[slot], gen, __ATOMIC_RELEASE);
	atomic_store(&s->state, SLOT_LIVE);
	atomic_fetch_add(&u->live, 1);
	pthread_mutex_unlock(&mw->lock);
	h->word = &u->gens[slot];
	h->gen = gen;
	h->slot = slot;
	h->cookie = cookie;
	return 0;
}

int mw_user_unwatch(struct mapwatch *mw, const struct mapwatch_handle *h)
{
	bool freed;

	return mw_user_unwatch_freed(mw, h, &freed);
}

int mw_user_unwatch_freed(struct mapwatch *mw, const struct mapwatch_handle *h,
			  bool *freed)
{
	struct mw_user *u = &mw->u;
	struct mw_slot *s;
	uint32_t gen;
	int state;

	*freed = false;
	if (h->slot >= mw->max || h->word != &u->gens[h->slot]) {
		mw_seterr(mw, "unwatch: not a handle of this monitor");
		return -EINVAL;
	}
	s = &u->slots[h->slot];
	pthread_mutex_lock(&mw->lock);
	pthread_mutex_lock(&u->ev_lock);
	state = atomic_load(&s->state);
	gen = u->gens[h->slot];
	/* LIVE -> FREE; a CHANGED slot (already retired) just frees.  The
	 * generation tells this watch from a later one in the same slot. */
	if (s->cookie == h->cookie &&
	    ((state == SLOT_LIVE && gen == h->gen) ||
	     (state == SLOT_CHANGED && gen == h->gen + 1))) {
		atomic_store(&s->state, SLOT_FREE);
		if (state == SLOT_LIVE) {
			bump(&u->gens[h->slot]);
			atomic_fetch_sub(&u->live, 1);
		}
		pthread_mutex_unlock(&u->ev_lock);
		u->free_slots[u->nfree++] = h->slot;
		pthread_mutex_unlock(&mw->lock);
		*freed = true;
		return 0;
	}
	pthread_mutex_unlock(&u->ev_lock);
	pthread_mutex_unlock(&mw->lock);
	/* Unwatched before (and maybe reused since): already gone. */
	if (gen != h->gen)
		return 0;
	mw_seterr(mw, "unwatch: no such watch");
	return -ESRCH;
}

static void push_event(struct mw_user *u, uintptr_t start, uintptr_t last,
		       uint64_t cookie, uint32_t info)
{
	/* Under ev_lock; ring_count and ovf are also read without it
	 * (mw_user_pending), hence the atomic stores. */
	atomic_fetch_add(&u->events, 1);
	if (u->ring_count < u->ring_size) {
		size_t i = (u->ring_head + u->ring_count) % u->ring_size;

		u->ring[i] = (struct mapwatch_event){ start, last - start + 1,
						      cookie };
		u->ring_info[i] = info;
		__atomic_store_n(&u->ring_count, u->ring_count + 1,
				 __ATOMIC_RELEASE);
		return;
	}
	atomic_fetch_add(&u->overflows, 1);
	if (!u->ovf) {
		u->ovf_start = start;
		u->ovf_last = last;
		u->ovf_info = info;
		__atomic_store_n(&u->ovf, true, __ATOMIC_RELEASE);
	} else {
		u->ovf_start = start < u->ovf_start ? start : u->ovf_start;
		u->ovf_last = last > u->ovf_last ? last : u->ovf_last;
		u->ovf_info = mw_info_merge(u->ovf_info, info);
	}
}

/* Retire every live watch overlapping [start, end), for no reason told.
 * Never blocks. */
void mw_user_invalidate(struct mapwatch *mw, uintptr_t start, uintptr_t end)
{
	mw_user_invalidate_ex(mw, start, end, false, 0);
}

/* With unmapped, also mark every watch in use there as unmapped: its
 * memory (and with it the userfaultfd registration) is gone.  info: why
 * (MW_INFO), carried by each event. */
void mw_user_invalidate_ex(struct mapwatch *mw, uintptr_t start, uintptr_t end,
			   bool unmapped, uint32_t info)
{
	struct mw_user *u = &mw->u;
	uint64_t one = 1;
	size_t hw;
	bool any = false;

	pthread_mutex_lock(&u->ev_lock);
	hw = atomic_load(&u->hw);	/* under ev_lock: resize swaps tables */
	for (size_t i = 0; i < hw; i++) {
		struct mw_slot *s = &u->slots[i];
		int live = SLOT_LIVE, state = atomic_load(&s->state);

		if (state == SLOT_FREE || atomic_load(&s->last) < start ||
		    atomic_load(&s->start) >= end)
			continue;
		if (unmapped)
			atomic_store(&s->unmapped, true);
		if (state != SLOT_LIVE)
			continue;
		if (!atomic_compare_exchange_strong(&s->state, &live,
						    SLOT_CHANGED))
			continue;
		bump(&u->gens[i]);
		atomic_fetch_sub(&u->live, 1);
		push_event(u, atomic_load(&s->start), atomic_load(&s->last),
			   s->cookie, info);
		any = true;
	}
	pthread_mutex_unlock(&u->ev_lock);
	if (any && write(u->efd, &one, sizeof(one)) < 0)
		return;	/* the counter is saturated: already readable */
}

int mw_user_read(struct mapwatch *mw, struct mapwatch_event *ev,
		 uint32_t *info, size_t max)
{
	struct mw_user *u = &mw->u;
	size_t n = 0;
	uint64_t junk;

	pthread_mutex_lock(&u->ev_lock);
	while (n < max && u->ring_count) {
		if (info)
			info[n] = u->ring_info[u->ring_head];
		ev[n++] = u->ring[u->ring_head];
		u->ring_head = (u->ring_head + 1) % u->ring_size;
		__atomic_store_n(&u->ring_count, u->ring_count - 1,
				 __ATOMIC_RELAXED);
	}
	if (n < max && u->ovf) {
		if (info)
			info[n] = u->ovf_info;
		ev[n++] = (struct mapwatch_event){ u->ovf_start,
			u->ovf_last - u->ovf_start + 1, MAPWATCH_COOKIE_RANGE };
		__atomic_store_n(&u->ovf, false, __ATOMIC_RELAXED);
	}
	if (!u->ring_count && !u->ovf && read(u->efd, &junk, sizeof(junk)) < 0)
		junk = 0;	/* EAGAIN: nothing was signalled */
	pthread_mutex_unlock(&u->ev_lock);
	return n;
}

bool mw_user_pending(const struct mapwatch *mw)
{
	const struct mw_user *u = &mw->u;

	return __atomic_load_n(&u->ring_count, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&u->ovf, __ATOMIC_ACQUIRE);
}

void mw_user_stats(const struct mapwatch *mw, struct mapwatch_stats *s)
{
	const struct mw_user *u = &mw->u;

	s->watched = atomic_load(&((struct mw_user *)u)->live);
	s->events = atomic_load(&((struct mw_user *)u)->events);
	s->overflows = atomic_load(&((struct mw_user *)u)->overflows);
}

/* The manual backend: only mapwatch_invalidate() reports changes. */
static void manual_close(struct mapwatch *mw)
{
	mw_user_fini(mw);
}

static const struct mw_ops manual_ops = {
	.watch = mw_user_watch,
	.unwatch = mw_user_unwatch,
	.read = mw_user_read,
	.invalidate = mw_user_invalidate_op,
	.resize = mw_user_resize,
	.pending = mw_user_pending,
	.stats = mw_user_stats,
	.close = manual_close,
};

int mw_manual_open(struct mapwatch *mw, const char **why)
{
	int ret = mw_user_init(mw);

	if (ret) {
		if (why)
			*why = ret == -EINVAL ? "manual backend: max_watches too large" :
			       "manual backend: out of memory";
		return ret;
	}
	mw->backend = MAPWATCH_BACKEND_MANUAL;
	mw->features = MAPWATCH_F_SYNC;	/* mapwatch_invalidate() is */
	mw->ops = &manual_ops;
	return 0;
}
