// SPDX-License-Identifier: GPL-2.0-only
/*
 * One mmu notifier subscription per mm, shared by every context opened in
 * that mm (mmu_notifier_get/put).  Only the first context of a process pays
 * mmu_notifier_register()'s mm_take_all_locks(); no close waits for an SRCU
 * grace period: the subscription is freed after the last one, later.
 *
 * A context attaches at its first CONFIG_DATA, not at open: registering
 * takes the mm's mmap_lock for writing, and open runs under the kernel's
 * global misc_mtx, so a process whose own mmap_lock is stalled would stall
 * every misc device open on the node.  No region exists before
 * CONFIG_DATA, so nothing can be missed before the attach.
 *
 * mwm->lock guards the list of contexts and the busy period.  A callback
 * pins each context in turn (mn_users) and handles it without mwm->lock,
 * dropping the context's own lock every MW_RETIRE_BATCH regions, so no
 * spinlock is held across a million retirements; a closing context is
 * skipped, and its close waits until no callback holds it.
 */
#include "mapwatch_priv.h"

#include <linux/slab.h>
#include <linux/wait_bit.h>

#include "compat.h"

static struct mmu_notifier *mw_mn_alloc(struct mm_struct *mm)
{
	struct mw_mm *mwm = kzalloc(sizeof(*mwm), GFP_KERNEL_ACCOUNT);

	if (!mwm)
		return ERR_PTR(-ENOMEM);
	spin_lock_init(&mwm->lock);
	INIT_LIST_HEAD(&mwm->ctxs);
	return &mwm->mn;
}

/* Called from an SRCU callback after the last mmu_notifier_put(). */
static void mw_mn_free(struct mmu_notifier *mn)
{
	kfree(container_of(mn, struct mw_mm, mn));
}

/* Hand @range to every context of @mwm; caller holds mwm->lock. */
static void mw_mm_each_ctx(struct mw_mm *mwm,
			   const struct mmu_notifier_range *range, u64 late)
{
	struct mw_ctx *ctx;

	list_for_each_entry(ctx, &mwm->ctxs, mm_node) {
		if (ctx->detaching)
			continue;
		ctx->mn_users++;
		spin_unlock(&mwm->lock);
		if (range)
			mw_ctx_invalidate(ctx, range, late, MW_WHY_DERIVE);
		else
			mw_ctx_mm_gone(ctx);
		spin_lock(&mwm->lock);
		/* Still on the list: its close waits for mn_users == 0. */
		if (!--ctx->mn_users && ctx->detaching) {
			/* Pairs with the barrier in wait_var_event(). */
			smp_mb();
			wake_up_var(&ctx->mn_users);
		}
	}
}

/*
 * Before the translation changes, in the context of whoever changes it,
 * possibly unable to sleep: spinlocks, no allocation, no deferral.
 */
static int mw_mn_invalidate_start(struct mmu_notifier *mn,
				  const struct mmu_notifier_range *range)
{
	struct mw_mm *mwm = container_of(mn, struct mw_mm, mn);

	spin_lock(&mwm->lock);
	if (!mwm->inflight++)
		WRITE_ONCE(mwm->busy_epoch, ++mwm->epoch);
	mw_mm_each_ctx(mwm, range, 0);
	spin_unlock(&mwm->lock);
	return 0;
}

/*
 * The change is done.  Regions monitored after the start above (so they
 * missed it) may cover pages the change went on to zap: retire them now,
 * before the call that made the change returns.
 */
static void mw_mn_invalidate_end(struct mmu_notifier *mn,
				 const struct mmu_notifier_range *range)
{
	struct mw_mm *mwm = container_of(mn, struct mw_mm, mn);

	spin_lock(&mwm->lock);
	/* The busy period cannot end while this invalidation is in it. */
	mw_mm_each_ctx(mwm, range, mwm->epoch);
	/* An end without its start (none expected): keep the count sane. */
	if (mwm->inflight && !--mwm->inflight)
		WRITE_ONCE(mwm->busy_epoch, 0);
	spin_unlock(&mwm->lock);
}

/*
 * The mm is going away (exit_mmap: no task uses it any more): every region's
 * translation is gone with it.  Nobody can read an event of this mm again,
 * though an inherited fd may keep the context open for long, so no event
 * is queued and those queued go: the regions are freed, their state words
 * moved on (for a mapping of the area inherited by fork).  May sleep.
 */
static void mw_mn_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct mw_mm *mwm = container_of(mn, struct mw_mm, mn);

	spin_lock(&mwm->lock);
	mw_mm_each_ctx(mwm, NULL, 0);
	spin_unlock(&mwm->lock);
}

static const struct mmu_notifier_ops mw_mn_ops = {
	.release = mw_mn_release,
	.invalidate_range_start = mw_mn_invalidate_start,
	.invalidate_range_end = mw_mn_invalidate_end,
	.alloc_notifier = mw_mn_alloc,
	.free_notifier = mw_mn_free,
};

/*
 * Attach @ctx to the subscription of the caller's mm (made if needed).
 * Caller holds ctx->mutex and is a task of ctx->mm; only its own mm's lock
 * is waited for, killably.
 */
int mw_mm_attach(struct mw_ctx *ctx)
{
	struct mmu_notifier *mn;

	if (ctx->mwm)
		return 0;
	if (mmap_write_lock_killable(ctx->mm))
		return -EINTR;
	mn = mmu_notifier_get_locked(&mw_mn_ops, ctx->mm);
	mmap_write_unlock(ctx->mm);
	if (IS_ERR(mn))
		return PTR_ERR(mn);
	ctx->mwm = container_of(mn, struct mw_mm, mn);
	spin_lock(&ctx->mwm->lock);
	list_add_tail(&ctx->mm_node, &ctx->mwm->ctxs);
	spin_unlock(&ctx->mwm->lock);
	return 0;
}

/* No callback sees @ctx after this returns; no event is made for it. */
void mw_mm_detach(struct mw_ctx *ctx)
{
	struct mw_mm *mwm = ctx->mwm;

	if (!mwm)
		return;
	spin_lock(&mwm->lock);
	ctx->detaching = true;
	spin_unlock(&mwm->lock);
	wait_var_event(&ctx->mn_users, !READ_ONCE(ctx->mn_users));
	spin_lock(&mwm->lock);
	list_del(&ctx->mm_node);
	spin_unlock(&mwm->lock);
	mmu_notifier_put(&mwm->mn);
}

/* Module exit: wait for the last subscriptions to be freed. */
void mw_mm_exit(void)
{
	mmu_notifier_synchronize();
}
