// SPDX-License-Identifier: GPL-2.0-only
/*
 * mapwatch's extension ioctls (numbers 16 and up): probe, batched
 * monitor/unmonitor, per-fd policy.  Arguments are size-versioned: they are
 * read with copy_struct_from_user(), which accepts a larger struct from newer
 * user space when its extra bytes are zero.
 */
#include "mapwatch_priv.h"

#include <linux/overflow.h>
#include <linux/uaccess.h>

#define MW_FEATURES (MAPWATCH_FEATURE_STATUS_EXT | MAPWATCH_FEATURE_BATCH | \
		     MAPWATCH_FEATURE_POLICY | MAPWATCH_FEATURE_INVALIDATE | \
		     MAPWATCH_FEATURE_REASONS)

/* Read a size-prefixed argument; its first u32 is its size. */
static int mw_get_arg(void *karg, size_t ksize, void __user *uarg)
{
	u32 usize;
	int ret;

	if (get_user(usize, (u32 __user *)uarg))
		return -EFAULT;
	if (usize < ksize)
		return -EINVAL;
	/* Newer structs grow by a few fields, not by pages of zeroes. */
	if (usize > PAGE_SIZE)
		return -E2BIG;
	ret = copy_struct_from_user(karg, ksize, uarg, usize);
	return ret;
}

static long mw_probe(void __user *uarg)
{
	struct mapwatch_probe p;
	int ret;

	ret = mw_get_arg(&p, sizeof(p), uarg);
	if (ret)
		return ret;
	p.abi_version = MAPWATCH_ABI_VERSION;
	p.features = MW_FEATURES;
	p.max_regions_limit = READ_ONCE(mw_max_regions_limit);
	p.max_pending_events = READ_ONCE(mw_max_pending_events);
	if (copy_to_user(uarg, &p, sizeof(p)))
		return -EFAULT;
	return 0;
}

static long mw_batch(struct mw_ctx *ctx, unsigned int nr, void __user *uarg)
{
	bool monitor = nr == _IOC_NR(MAPWATCH_IOCTL_MONITOR_BATCH);
	struct mapwatch_batch b;
	size_t esize;
	int ret;

	ret = mw_get_arg(&b, sizeof(b), uarg);
	if (ret)
		return ret;
	esize = monitor ? sizeof(struct mapwatch_monitor_entry) :
			  sizeof(struct mapwatch_unmonitor_entry);
	if (b.flags || b.entry_size != esize || b.count > MAPWATCH_BATCH_MAX)
		return -EINVAL;
	return monitor ? mw_monitor_batch(ctx, &b) : mw_unmonitor_batch(ctx, &b);
}

static long mw_set_policy(struct mw_ctx *ctx, void __user *uarg)
{
	struct mapwatch_policy p;
	int ret;

	ret = mw_get_arg(&p, sizeof(p), uarg);
	if (ret)
		return ret;
	if (p.flags & ~MAPWATCH_POLICY_MASK)
		return -EINVAL;
	spin_lock(&ctx->lock);
	ctx->policy = p.flags;
	spin_unlock(&ctx->lock);
	return 0;
}

/* A change user space reports: retire as a munmap of the range would. */
static long mw_invalidate_ioctl(struct mw_ctx *ctx, void __user *uarg)
{
	struct mapwatch_invalidate a;
	struct mmu_notifier_range r = {
		.mm = ctx->mm,
		.event = MMU_NOTIFY_UNMAP,
		.flags = MMU_NOTIFIER_RANGE_BLOCKABLE,
	};
	unsigned long end;
	int ret;

	ret = mw_get_arg(&a, sizeof(a), uarg);
	if (ret)
		return ret;
	if (a.flags || !a.length ||
	    check_add_overflow((unsigned long)a.addr,
			       (unsigned long)a.length, &end))
		return -EINVAL;
	r.start = a.addr;
	r.end = end;
	mw_ctx_invalidate(ctx, &r, 0,
			  MW_WHY(MAPWATCH_REASON_USER, MAPWATCH_CAUSE_IOCTL, 0));
	return 0;
}

long mw_ext_ioctl(struct mw_ctx *ctx, unsigned int cmd, void __user *uarg)
{
	unsigned int nr = _IOC_NR(cmd);

	if (_IOC_TYPE(cmd) != KDREG2_IOC_MAGIC)
		return -ENOTTY;
	switch (nr) {
	case _IOC_NR(MAPWATCH_IOCTL_PROBE):
		return mw_probe(uarg);
	case _IOC_NR(MAPWATCH_IOCTL_MONITOR_BATCH):
	case _IOC_NR(MAPWATCH_IOCTL_UNMONITOR_BATCH):
		return mw_batch(ctx, nr, uarg);
	case _IOC_NR(MAPWATCH_IOCTL_SET_POLICY):
		return mw_set_policy(ctx, uarg);
	case _IOC_NR(MAPWATCH_IOCTL_INVALIDATE):
		return mw_invalidate_ioctl(ctx, uarg);
	default:
		return -ENOTTY;
	}
}
