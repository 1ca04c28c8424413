// SPDX-License-Identifier: GPL-2.0-only
/*
 * MW_HAVE_MMU_NOTIFIER_GET: one subscription per mm shared through
 * mmu_notifier_get()/mmu_notifier_put() with alloc_notifier/free_notifier
 * callbacks (5.4).  Required: compat.h stops the build without it.
 */
#include <linux/mmu_notifier.h>

static struct mmu_notifier *mw_probe_alloc(struct mm_struct *mm)
{
	return ERR_PTR(-ENOMEM);
}

static void mw_probe_free(struct mmu_notifier *mn)
{
}

static const struct mmu_notifier_ops mw_probe_ops = {
	.alloc_notifier = mw_probe_alloc,
	.free_notifier = mw_probe_free,
};

void mw_probe(struct mm_struct *mm);
void mw_probe(struct mm_struct *mm)
{
	struct mmu_notifier *mn = mmu_notifier_get(&mw_probe_ops, mm);

	if (!IS_ERR(mn))
		mmu_notifier_put(mn);
	mmu_notifier_synchronize();
}
