// SPDX-License-Identifier: GPL-2.0-only
/*
 * MW_HAVE_NUMA_THP_LEGACY: NUMA balancing migrates a transparent huge page
 * through migrate_misplaced_transhuge_page() (before 5.14).  That path
 * announces the move to mmu notifiers only as the MMU_NOTIFY_PROTECTION_VMA
 * range of the hinting scan that came before it (change_huge_pmd()), then
 * copies the page with no range of its own.  Where it exists, a
 * protection-only range may precede a frame change, so none is skipped.
 */
#include <linux/migrate.h>

void *mw_probe = migrate_misplaced_transhuge_page;
