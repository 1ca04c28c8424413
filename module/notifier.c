// SPDX-License-Identifier: GPL-2.0-only
/*
 * One mmu notifier subscription per mm, shared by every context opened in
 * that mm (mmu_notifier_get/put).  Only the first open of a process pays
 * mmu_notifier_register()'s mm_take_all_locks(); no close waits for an SRCU
 * grace period: the subscription is freed after the last one, later.
 *
 * mm->lock guards the list of contexts and the busy period: the notifier
 * walks the list under it, taking each context's lock in turn, so a context
 * taken off the list is never touched by a callback again.
 */
#include "mapwatch.h"

#include <linux/slab.h>

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

/*
 * Before the translation changes, in the context of whoever changes it,
 * possibly unable to sleep: spinlocks, no allocation, no deferral.
 */
static int mw_mn_invalidate_start(struct mmu_notifier *mn,
				  const struct mmu_notifier_range *range)
{
	struct mw_mm *mwm = container_of(mn, struct mw_mm, mn);
	struct mw_ctx *ctx;

	spin_lock(&mwm->lock);
	if (!mwm->inflight++) {
		mwm->epoch = mwm->epoch + 1 ? : 1;
		WRITE_ONCE(mwm->busy_epoch, mwm->epoch);
	}
	list_for_each_entry(ctx, &mwm->ctxs, mm_node)
		mw_ctx_invalidate(ctx, range, 0);
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
	struct mw_ctx *ctx;

	spin_lock(&mwm->lock);
	list_for_each_entry(ctx, &mwm->ctxs, mm_node)
		mw_ctx_invalidate(ctx, range, mwm->epoch);
	/* An end without its start (none expected): keep the count sane. */
	if (mwm->inflight && !--mwm->inflight)
		WRITE_ONCE(mwm->busy_epoch, 0);
	spin_unlock(&mwm->lock);
}

/* The mm is going away: every region's translation is gone with it. */
static void mw_mn_release(struct mmu_notifier *mn, struct mm_struct *mm)
{
	struct mw_mm *mwm = container_of(mn, struct mw_mm, mn);
	struct mmu_notifier_range all = {
		.start = 0,
		.end = ULONG_MAX,
		.event = MMU_NOTIFY_RELEASE,
		.mm = mm,
	};
	struct mw_ctx *ctx;

	spin_lock(&mwm->lock);
	list_for_each_entry(ctx, &mwm->ctxs, mm_node)
		mw_ctx_invalidate(ctx, &all, 0);
	spin_unlock(&mwm->lock);
}

static const struct mmu_notifier_ops mw_mn_ops = {
	.release = mw_mn_release,
	.invalidate_range_start = mw_mn_invalidate_start,
	.invalidate_range_end = mw_mn_invalidate_end,
	.alloc_notifier = mw_mn_alloc,
	.free_notifier = mw_mn_free,
};

/* Attach @ctx to the subscription of the caller's mm (made if needed). */
int mw_mm_attach(struct mw_ctx *ctx)
{
	struct mmu_notifier *mn = mmu_notifier_get(&mw_mn_ops, ctx->mm);

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
	spin_lock(&ctx->mwm->lock);
	list_del(&ctx->mm_node);
	spin_unlock(&ctx->mwm->lock);
	mmu_notifier_put(&ctx->mwm->mn);
}

/* Module exit: wait for the last subscriptions to be freed. */
void mw_mm_exit(void)
{
	mmu_notifier_synchronize();
}
