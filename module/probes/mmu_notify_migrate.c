// SPDX-License-Identifier: GPL-2.0-only
/*
 * MW_HAVE_MMU_NOTIFY_MIGRATE: the MMU_NOTIFY_MIGRATE event (5.9,
 * migrate_vma_collect() of device memory migration).  reason.c names it a
 * migration; without it no event is one.
 */
#include <linux/mmu_notifier.h>

int mw_probe = MMU_NOTIFY_MIGRATE;
