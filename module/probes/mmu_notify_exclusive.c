// SPDX-License-Identifier: GPL-2.0-only
/*
 * MW_HAVE_MMU_NOTIFY_EXCLUSIVE: the MMU_NOTIFY_EXCLUSIVE event (5.14,
 * make_device_exclusive_range()).  reason.c names it a replacement made by
 * a device's driver; without it no event is one.
 */
#include <linux/mmu_notifier.h>

int mw_probe = MMU_NOTIFY_EXCLUSIVE;
