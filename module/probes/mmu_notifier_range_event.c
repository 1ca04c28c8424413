// SPDX-License-Identifier: GPL-2.0-only
/*
 * MW_HAVE_MMU_NOTIFIER_RANGE_EVENT: invalidate_range_start() gets a const
 * struct mmu_notifier_range with the event that caused it (5.2) and the
 * event types the module skips as protection-only.  Required: without the
 * event the module cannot tell mprotect from munmap, and compat.h stops the
 * build.
 */
#include <linux/mmu_notifier.h>

static int mw_probe_start(struct mmu_notifier *mn,
			  const struct mmu_notifier_range *range)
{
	switch (range->event) {
	case MMU_NOTIFY_PROTECTION_VMA:
	case MMU_NOTIFY_PROTECTION_PAGE:
	case MMU_NOTIFY_SOFT_DIRTY:
		return 0;
	default:
		return range->start < range->end && range->mm ? 0 : -EINVAL;
	}
}

const struct mmu_notifier_ops mw_probe_ops = {
	.invalidate_range_start = mw_probe_start,
};
