// SPDX-License-Identifier: GPL-2.0-only
/*
 * Monitored regions: the two indexes (an interval tree by address range, a
 * hash by cookie), the slot allocator of the state array, and the mmu
 * notifier that retires regions synchronously.
 *
 * Everything here that the notifier can reach runs under ctx->lock and never
 * sleeps or allocates: a region is allocated at MONITOR time and carries its
 * own event record, so retiring it only moves it onto the event queue.
 */
#include "mapwatch_priv.h"
#include "trace.h"

#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>

#include "compat.h"

static struct kmem_cache *mw_region_cache;

int mw_region_cache_init(void)
{
	/* why sits in the padding after slot: the region did not grow. */
	BUILD_BUG_ON(offsetof(struct mw_region, why) !=
		     offsetof(struct mw_region, slot) + sizeof(u32));
	BUILD_BUG_ON(offsetof(struct mw_region, late_node) !=
		     offsetof(struct mw_region, why) + sizeof(u32));
	/* What a region costs: module/README.md, bench/README.md. */
	BUILD_BUG_ON(sizeof(struct mw_region) > 88);
	/* SLAB_ACCOUNT: regions are charged to the caller's memory cgroup. */
	mw_region_cache = KMEM_CACHE(mw_region, SLAB_ACCOUNT);
	return mw_region_cache ? 0 : -ENOMEM;
}

void mw_region_cache_exit(void)
{
	kmem_cache_destroy(mw_region_cache);
}

void mw_region_free(struct mw_region *r)
{
	kmem_cache_free(mw_region_cache, r);
}

/*
 * The cookie index is a hash of singly linked chains.  The user picks the
 * cookies, so the hash is SipHash under a random key per context: nobody
 * can choose cookies that share a bucket, and no chain walked under
 * ctx->lock grows longer than chance makes it.  A quarter as many buckets
 * as slots, a power of two: 2 to 4 regions a chain when every slot is
 * taken, 2 to 4 bytes a slot.  The buckets share one block with the ring
 * of free slots, charged to the user with it.
 */
static size_t mw_nr_buckets(size_t max)
{
	return max < 4 ? 1 : roundup_pow_of_two(max) / 4;
}

static size_t mw_ring_bytes(size_t max)
{
	return ALIGN(max * sizeof(u32), sizeof(struct mw_region *));
}

/* Bytes of the ring of free slots and the cookie hash for @max slots. */
size_t mw_index_bytes(size_t max)
{
	if (!max)
		return 0;
	return mw_ring_bytes(max) +
	       mw_nr_buckets(max) * sizeof(struct mw_region *);
}

/* The ring (every slot free, low numbers first) and an empty hash. */
u32 *mw_index_alloc(size_t max)
{
	size_t i, ring = mw_ring_bytes(max);
	u32 *slots;

	slots = kvmalloc(mw_index_bytes(max),
			 GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
	if (!slots)
		return NULL;
	for (i = 0; i < max; i++)
		slots[i] = i;
	memset((void *)slots + ring, 0, mw_index_bytes(max) - ring);
	return slots;
}

/*
 * Make @slots (from mw_index_alloc(@max), or NULL for 0) the context's.
 * Caller holds ctx->lock, and no region is monitored.
 */
void mw_index_install(struct mw_ctx *ctx, u32 *slots, size_t max)
{
	ctx->free_slots = slots;
	ctx->free_head = 0;
	ctx->nr_free = max;
	ctx->buckets = slots ? (void *)slots + mw_ring_bytes(max) : NULL;
	ctx->hash_mask = max ? mw_nr_buckets(max) - 1 : 0;
}

/* The head of @cookie's chain.  ctx->buckets must be there. */
static struct mw_region **mw_bucket(struct mw_ctx *ctx, u64 cookie)
{
	return &ctx->buckets[siphash_1u64(cookie, &ctx->hash_key) &
			     ctx->hash_mask];
}

/* The link from @link on that holds @cookie's region, or the final NULL. */
static struct mw_region **mw_chain_find(struct mw_region **link, u64 cookie)
{
	while (*link && (*link)->cookie != cookie)
		link = &(*link)->hash_next;
	return link;
}

static struct mw_region **mw_cookie_link(struct mw_ctx *ctx, u64 cookie)
{
	return mw_chain_find(mw_bucket(ctx, cookie), cookie);
}

static struct mw_region *mw_find_cookie(struct mw_ctx *ctx, u64 cookie)
{
	return ctx->nr_regions ? *mw_cookie_link(ctx, cookie) : NULL;
}

/*
 * A slot's state word counts transitions: odd while a region holds it, even
 * while free, from a random start per area.  Every retirement changes it,
 * so params taken before never match again (until 2^32 transitions of that
 * one slot).  Free slots are reused oldest first, so a slot's word moves
 * on as rarely as the context's turnover allows.
 */
static u32 mw_slot_take(struct mw_ctx *ctx)
{
	size_t max = ctx->status->max_regions;
	u32 slot = ctx->free_slots[ctx->free_head];

	ctx->free_head = ctx->free_head + 1 == max ? 0 : ctx->free_head + 1;
	ctx->nr_free--;
	mw_bump_state(&ctx->status->state[slot]);
	return slot;
}

static void mw_slot_release(struct mw_ctx *ctx, u32 slot)
{
	size_t max = ctx->status->max_regions;
	size_t tail = ctx->free_head + ctx->nr_free;

	mw_bump_state(&ctx->status->state[slot]);
	ctx->free_slots[tail >= max ? tail - max : tail] = slot;
	ctx->nr_free++;
}

/*
 * Take @r, held by *@link in its chain, out of both indexes and free its
 * slot.  Caller holds ctx->lock.  The region stays charged to the user
 * until it is freed (its event read).
 */
static void mw_detach_at(struct mw_ctx *ctx, struct mw_region *r,
			 struct mw_region **link)
{
	interval_tree_remove(&r->it, &ctx->ranges);
	*link = r->hash_next;
	mw_slot_release(ctx, r->slot);
	WRITE_ONCE(ctx->nr_regions, ctx->nr_regions - 1);
	if (!list_empty(&r->late_node)) {
		list_del_init(&r->late_node);
		ctx->nr_late--;
	}
}

static void mw_detach(struct mw_ctx *ctx, struct mw_region *r)
{
	mw_detach_at(ctx, r, mw_cookie_link(ctx, r->cookie));
}

/*
 * Events after which no frame can have changed without a later event of its
 * own (module/README.md, "Which events are skipped", per kernel).
 */
static bool mw_changes_translation(enum mmu_notifier_event event)
{
	switch (event) {
	case MMU_NOTIFY_PROTECTION_VMA:		/* mprotect, NUMA hinting */
		/* Before 5.14 a THP moves under this range alone. */
		return mw_numa_thp_legacy;
	case MMU_NOTIFY_PROTECTION_PAGE:	/* write-protect at fork */
	case MMU_NOTIFY_SOFT_DIRTY:		/* clear_refs */
		return false;
	default:
		return true;
	}
}

/* What /sys/kernel/mapwatch/skipped_events lists (stats.c). */
bool mw_event_skipped(enum mmu_notifier_event event)
{
	return !mw_changes_translation(event);
}

/*
 * Retire up to MW_RETIRE_BATCH regions overlapping [start, last] and queue
 * their events; with @late, only those monitored late in the current busy
 * period, found on their own list, so an end pass never walks the regions
 * its start already handled or skipped.  *why is derived from @range when
 * the first region goes (not before: an invalidation that retires nothing
 * costs nothing more).  Caller holds ctx->lock.
 */
static unsigned int mw_retire(struct mw_ctx *ctx,
			      const struct mmu_notifier_range *range,
			      bool late, u32 *why)
{
	unsigned long start = range->start, last = range->end - 1;
	struct interval_tree_node *it, *next;
	struct mw_region *r, *tmp;
	unsigned int fired = 0;

	if (late) {
		list_for_each_entry_safe(r, tmp, &ctx->late, late_node) {
			if (fired == MW_RETIRE_BATCH)
				break;
			if (r->it.start > last || r->it.last < start)
				continue;
			if (*why == MW_WHY_DERIVE)
				*why = mw_why(range);
			mw_detach(ctx, r);
			r->why = *why;
			mw_queue_event(ctx, r);
			fired++;
		}
		return fired;
	}
	for (it = interval_tree_iter_first(&ctx->ranges, start, last);
	     it && fired < MW_RETIRE_BATCH; it = next) {
		r = container_of(it, struct mw_region, it);
		next = interval_tree_iter_next(it, start, last);
		if (*why == MW_WHY_DERIVE)
			*why = mw_why(range);
		mw_detach(ctx, r);
		r->why = *why;
		mw_queue_event(ctx, r);
		fired++;
	}
	return fired;
}

/* Act on one invalidation; returns how many regions it retired. */
static unsigned int mw_handle(struct mw_ctx *ctx,
			      const struct mmu_notifier_range *range, u64 late,
			      u32 *why)
{
	unsigned int fired;

	if (!mw_changes_translation(range->event) &&
	    !(ctx->policy & MAPWATCH_POLICY_ALL_INVALIDATIONS)) {
		if (!late && interval_tree_iter_first(&ctx->ranges,
						      range->start,
						      range->end - 1)) {
			if (*why == MW_WHY_DERIVE)
				*why = mw_why(range);
			ctx->skipped++;
			ctx->skipped_by_cause[MW_WHY_CAUSE(*why)]++;
			mw_publish_counters(ctx);
			trace_mapwatch_invalidate(range->start, range->end,
						  range->event, true, 0, *why);
		}
		return 0;
	}
	fired = mw_retire(ctx, range, late != 0, why);
	if (fired) {
		ctx->by_reason[MW_WHY_REASON(*why)] += fired;
		ctx->by_cause[MW_WHY_CAUSE(*why)] += fired;
		mw_publish_counters(ctx);
		trace_mapwatch_invalidate(range->start, range->end,
					  range->event, false, fired, *why);
	}
	return fired;
}

/*
 * Act on one invalidation of the context's mm: at its start (or at the mm's
 * release) when @late is 0, else at its end, for the regions monitored
 * late, during busy period @late.  @why is what the retired regions'
 * records say, or MW_WHY_DERIVE to derive it from @range and the task
 * (reason.c).  Never waits for a lock other than
 * ctx->lock, held for at most MW_RETIRE_BATCH retirements at a time: the
 * regions retired meanwhile are all in the range, and one monitored in a
 * gap is late, so this same pass (or the end's) retires it too, before the
 * call that made the change returns.
 */
void mw_ctx_invalidate(struct mw_ctx *ctx,
		       const struct mmu_notifier_range *range, u64 late,
		       u32 why)
{
	unsigned int fired, total = 0;
	u64 t0;

	do {
		fired = 0;
		spin_lock(&ctx->lock);
		t0 = ktime_get_ns();
		if (!late ? ctx->nr_regions :
		    ctx->nr_late && ctx->late_epoch == late)
			fired = mw_handle(ctx, range, late, &why);
		if (fired)
			mw_stats_hold(ktime_get_ns() - t0);
		spin_unlock(&ctx->lock);
		total += fired;
		if (fired == MW_RETIRE_BATCH &&
		    mmu_notifier_range_blockable(range))
			cond_resched();
	} while (fired == MW_RETIRE_BATCH);
	if (total)
		wake_up_interruptible_poll(&ctx->wq, EPOLLIN | EPOLLRDNORM);
}

/* Validate a MONITOR request; on success *last is its last byte. */
static int mw_check_range(u64 addr, u64 length, u64 cookie,
			  unsigned long *last)
{
	if (!length || cookie == KDREG2_BAD_COOKIE_VALUE ||
	    check_add_overflow((unsigned long)addr,
			       (unsigned long)length - 1, last) ||
	    *last >= TASK_SIZE)
		return -EINVAL;
	return 0;
}

/*
 * A region monitored while an invalidation of its mm is in flight (busy
 * period @epoch, 0 if none) missed that start: each end of the period
 * checks it.  Regions of an earlier period leave the list first (they were
 * checked by its ends).  Caller holds ctx->lock.
 */
static void mw_mark_late(struct mw_ctx *ctx, struct mw_region *r, u64 epoch)
{
	struct mw_region *old, *tmp;

	INIT_LIST_HEAD(&r->late_node);
	if (!epoch)
		return;
	if (ctx->late_epoch != epoch) {
		list_for_each_entry_safe(old, tmp, &ctx->late, late_node)
			list_del_init(&old->late_node);
		ctx->late_epoch = epoch;
		ctx->nr_late = 0;
	}
	list_add_tail(&r->late_node, &ctx->late);
	ctx->nr_late++;
}

/*
 * Monitor one range under ctx->lock.  *rp is a preallocated region, used
 * (and set to NULL) only when a new region is inserted, and charged to the
 * user's budget then: never ahead, as a charge another fd of the user sees
 * decides whether its MONITOR folds the user's unread events.
 */
static int mw_monitor_locked(struct mw_ctx *ctx, struct mw_region **rp,
			     unsigned long start, unsigned long last,
			     u64 cookie, u32 *slot, u32 *gen)
{
	struct mw_region **bucket, *r;

	/* No CONFIG_DATA yet, or max_regions 0: no slot, no hash. */
	if (!ctx->buckets)
		return -ENOSPC;
	bucket = mw_bucket(ctx, cookie);
	r = *mw_chain_find(bucket, cookie);
	if (r) {
		/* kdreg2: the same region again is fine, another is not. */
		if (r->it.start != start || r->it.last != last)
			return -EBUSY;
	} else {
		if (!ctx->nr_free)
			return -ENOSPC;
		/* The user's budget over all its fds (max_user_regions). */
		if (!mw_user_charge(ctx->user, 1))
			return -ENOSPC;
		r = *rp;
		*rp = NULL;
		r->it.start = start;
		r->it.last = last;
		r->cookie = cookie;
		r->why = 0;
		r->slot = mw_slot_take(ctx);
		/* Inside an invalidation: its end checks this region. */
		mw_mark_late(ctx, r, READ_ONCE(ctx->mwm->busy_epoch));
		interval_tree_insert(&r->it, &ctx->ranges);
		/* First in its chain: an UNMONITOR soon after finds it first. */
		r->hash_next = *bucket;
		*bucket = r;
		WRITE_ONCE(ctx->nr_regions, ctx->nr_regions + 1);
		ctx->nr_monitor++;
	}
	*slot = r->slot;
	*gen = ctx->status->state[r->slot];
	return 0;
}

/* Unmonitor one region under ctx->lock; the caller frees *rp. */
static int mw_unmonitor_locked(struct mw_ctx *ctx, u64 cookie, u64 location,
			       u32 gen, struct mw_region **rp)
{
	struct mw_region **link, *r;

	if (!ctx->status || location >= ctx->status->max_regions)
		return -EINVAL;
	/* max_regions > 0 here: the hash is there. */
	link = mw_cookie_link(ctx, cookie);
	r = *link;
	if (!r)
		return -ESRCH;
	if (r->slot != location || ctx->status->state[r->slot] != gen)
		return -EBADSLT;
	mw_detach_at(ctx, r, link);
	ctx->nr_unmonitor++;
	*rp = r;
	return 0;
}

/*
 * About to monitor @n regions: if they would pass the user's budget, fold
 * the user's unread events first (their records count against it).
 */
static void mw_make_room(struct mw_ctx *ctx, u32 n)
{
	long max = min_t(unsigned long, READ_ONCE(mw_max_user_regions),
			 LONG_MAX);
	struct mw_user *v;

	for (v = ctx->user; v; v = v->parent)
		if (mw_user_regions(v) + n > max) {
			mw_user_fold(ctx->user);
			return;
		}
}

/*
 * Before 5.14 a huge page made PROT_NONE by a NUMA scan before its region
 * was monitored can move later with no notifier range (protnone.c): act on
 * each such block of [start, last] as the scan's range would have.  Called
 * after the region is in the tree, so a scan that comes later is seen by
 * the notifier instead, and before MONITOR returns.
 */
static void mw_settle_protnone(struct mw_ctx *ctx, unsigned long start,
			       unsigned long last)
{
	unsigned long at;

	while (mw_protnone_thp(ctx->mm, start, last, &at)) {
		struct mmu_notifier_range range = {
			.mm = ctx->mm,
			.start = at,
			.end = at + PMD_SIZE,
			.event = MMU_NOTIFY_PROTECTION_VMA,
			.flags = MMU_NOTIFIER_RANGE_BLOCKABLE,
		};

		mw_ctx_invalidate(ctx, &range, 0,
				  MW_WHY(MAPWATCH_REASON_PROTECTION,
					 MAPWATCH_CAUSE_NUMA_SCAN, 0));
		if (at + PMD_SIZE - 1 >= last)
			break;
		start = at + PMD_SIZE;
	}
}

long mw_monitor(struct mw_ctx *ctx, struct kdreg2_ioctl_monitor __user *uarg)
{
	struct kdreg2_ioctl_monitor m;
	struct mw_region *r, *spare;
	unsigned long last;
	u32 slot = 0, gen;
	long ret;

	if (copy_from_user(&m, uarg, sizeof(m)))
		return -EFAULT;
	ret = mw_check_range((unsigned long)m.addr, m.length, m.cookie, &last);
	if (ret)
		return ret;
	mw_make_room(ctx, 1);
	spare = kmem_cache_alloc(mw_region_cache, GFP_KERNEL_ACCOUNT);
	if (!spare)
		return -ENOMEM;
	r = spare;

	spin_lock(&ctx->lock);
	ret = mw_monitor_locked(ctx, &spare, (unsigned long)m.addr, last,
				m.cookie, &slot, &gen);
	if (!ret)
		mw_publish_counters(ctx);
	spin_unlock(&ctx->lock);
	trace_mapwatch_monitor((unsigned long)m.addr, last, m.cookie, slot,
			       ret);
	if (spare)
		mw_region_free(spare);
	if (ret)
		return ret;
	if (!spare)
		mw_settle_protnone(ctx, (unsigned long)m.addr, last);

	m.monitoring_params.location = slot;
	m.monitoring_params.generation = gen;
	if (!copy_to_user(&uarg->monitoring_params, &m.monitoring_params,
			  sizeof(m.monitoring_params)))
		return 0;
	/* Undo a new region, unless an invalidation already retired it. */
	if (!spare) {
		spin_lock(&ctx->lock);
		if (mw_find_cookie(ctx, m.cookie) == r && r->slot == slot &&
		    ctx->status->state[slot] == gen) {
			mw_detach(ctx, r);
			mw_publish_counters(ctx);
		} else {
			r = NULL;
		}
		spin_unlock(&ctx->lock);
		if (r) {
			mw_region_free(r);
			mw_user_uncharge(ctx->user, 1);
		}
	}
	return -EFAULT;
}

long mw_unmonitor(struct mw_ctx *ctx,
		  struct kdreg2_ioctl_unmonitor __user *uarg)
{
	struct kdreg2_ioctl_unmonitor u;
	struct mw_region *r = NULL;
	long ret;

	if (copy_from_user(&u, uarg, sizeof(u)))
		return -EFAULT;
	spin_lock(&ctx->lock);
	ret = mw_unmonitor_locked(ctx, u.cookie, u.monitoring_params.location,
				  u.monitoring_params.generation, &r);
	if (!ret)
		mw_publish_counters(ctx);
	spin_unlock(&ctx->lock);
	trace_mapwatch_unmonitor(u.cookie, u.monitoring_params.location, ret);
	if (r) {
		mw_region_free(r);
		mw_user_uncharge(ctx->user, 1);
	}
	return ret;
}

/* Free the non-NULL regions of @r[0..n); returns how many. */
static u32 mw_free_bulk(struct mw_region **r, u32 n)
{
	u32 i, k = 0;

	for (i = 0; i < n; i++)
		if (r[i])
			r[k++] = r[i];
	if (k)
		kmem_cache_free_bulk(mw_region_cache, k, (void **)r);
	return k;
}

/*
 * MONITOR_BATCH: chunks of MW_CHUNK entries, one lock hold and one pair of
 * user copies per chunk.  Regions are preallocated outside the lock.
 */
#define MW_CHUNK 64

/*
 * The results of a chunk could not be written back: the caller cannot know
 * its new regions, so they go, as a single MONITOR undoes its region (those
 * an invalidation already retired stay retired, with their event).
 */
static void mw_undo_chunk(struct mw_ctx *ctx,
			  const struct mapwatch_monitor_entry *e, u64 inserted)
{
	LIST_HEAD(dead);
	u32 i;

	spin_lock(&ctx->lock);
	for (i = 0; i < MW_CHUNK; i++) {
		struct mw_region *r;

		if (!(inserted & BIT_ULL(i)))
			continue;
		r = mw_find_cookie(ctx, e[i].cookie);
		if (r && r->slot == e[i].location &&
		    ctx->status->state[r->slot] == e[i].generation) {
			mw_detach(ctx, r);
			list_add(&r->event, &dead);
		}
	}
	mw_publish_counters(ctx);
	spin_unlock(&ctx->lock);
	mw_free_records(ctx->user, &dead);
}

long mw_monitor_batch(struct mw_ctx *ctx, const struct mapwatch_batch *b)
{
	struct mapwatch_monitor_entry __user *ue = u64_to_user_ptr(b->entries);
	struct mapwatch_monitor_entry *e;
	struct mw_region *spare[MW_CHUNK];
	u32 done = 0, i, n, used, ok = 0;
	u64 inserted;
	long ret = 0;

	BUILD_BUG_ON(MW_CHUNK > 64);
	e = kmalloc_array(MW_CHUNK, sizeof(*e), GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	while (done < b->count) {
		n = min_t(u32, MW_CHUNK, b->count - done);
		if (copy_from_user(e, ue + done, n * sizeof(*e))) {
			ret = -EFAULT;
			break;
		}
		mw_make_room(ctx, n);
		/* All or nothing; entries past @used get ENOMEM. */
		used = mw_cache_alloc_bulk(mw_region_cache, GFP_KERNEL_ACCOUNT,
					   n, (void **)spare);
		inserted = 0;
		spin_lock(&ctx->lock);
		for (i = 0; i < n; i++) {
			unsigned long last;
			struct mw_region **rp = &spare[i];
			u32 slot = 0, gen = 0;

			e[i].status = mw_check_range(e[i].addr, e[i].length,
						     e[i].cookie, &last);
			if (!e[i].status && i >= used)
				e[i].status = -ENOMEM;
			if (!e[i].status)
				e[i].status = mw_monitor_locked(ctx, rp,
						e[i].addr, last, e[i].cookie,
						&slot, &gen);
			e[i].location = e[i].status ? (u64)-1 : slot;
			e[i].generation = gen;
			ok += !e[i].status;
			if (i < used && !*rp)
				inserted |= BIT_ULL(i);
		}
		mw_publish_counters(ctx);
		spin_unlock(&ctx->lock);
		mw_free_bulk(spare, used);
		for (i = 0; i < n; i++)
			if (inserted & BIT_ULL(i))
				mw_settle_protnone(ctx, e[i].addr,
						   e[i].addr + e[i].length - 1);
		if (copy_to_user(ue + done, e, n * sizeof(*e))) {
			mw_undo_chunk(ctx, e, inserted);
			ret = -EFAULT;
			break;
		}
		done += n;
		cond_resched();
	}
	kfree(e);
	return ret ? ret : ok;
}

long mw_unmonitor_batch(struct mw_ctx *ctx, const struct mapwatch_batch *b)
{
	struct mapwatch_unmonitor_entry __user *ue =
		u64_to_user_ptr(b->entries);
	struct mapwatch_unmonitor_entry *e;
	struct mw_region *dead[MW_CHUNK];
	u32 done = 0, i, n, ok = 0;
	long ret = 0;

	e = kmalloc_array(MW_CHUNK, sizeof(*e), GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	while (done < b->count) {
		n = min_t(u32, MW_CHUNK, b->count - done);
		if (copy_from_user(e, ue + done, n * sizeof(*e))) {
			ret = -EFAULT;
			break;
		}
		spin_lock(&ctx->lock);
		for (i = 0; i < n; i++) {
			dead[i] = NULL;
			e[i].status = mw_unmonitor_locked(ctx, e[i].cookie,
							  e[i].location,
							  e[i].generation,
							  &dead[i]);
			ok += !e[i].status;
		}
		mw_publish_counters(ctx);
		spin_unlock(&ctx->lock);
		mw_user_uncharge(ctx->user, mw_free_bulk(dead, n));
		if (copy_to_user(ue + done, e, n * sizeof(*e))) {
			ret = -EFAULT;
			break;
		}
		done += n;
		cond_resched();
	}
	kfree(e);
	return ret ? ret : ok;
}

/*
 * Retire every region without events, a bounded batch per lock hold so that
 * a notifier spinning on ctx->lock never waits for a million regions.  With
 * @mm_gone (the mm's release) they are counted as gone with it (exit).
 */
void mw_unmonitor_all(struct mw_ctx *ctx, bool mm_gone)
{
	struct rb_node *n;
	LIST_HEAD(dead);
	int batch;

	do {
		spin_lock(&ctx->lock);
		for (batch = 0; batch < MW_RETIRE_BATCH; batch++) {
			struct mw_region *r;

			n = rb_first_cached(&ctx->ranges);
			if (!n)
				break;
			r = rb_entry(n, struct mw_region, it.rb);
			mw_detach(ctx, r);
			ctx->nr_unmonitor++;
			list_add(&r->event, &dead);
		}
		if (mm_gone) {
			ctx->by_reason[MAPWATCH_REASON_EXIT] += batch;
			ctx->by_cause[MAPWATCH_CAUSE_EXIT] += batch;
		}
		mw_publish_counters(ctx);
		spin_unlock(&ctx->lock);
		mw_free_records(ctx->user, &dead);
		cond_resched();
	} while (n);
}
