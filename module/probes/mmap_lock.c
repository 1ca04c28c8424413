// SPDX-License-Identifier: GPL-2.0-only
/*
 * MW_HAVE_MMAP_LOCK: the mmap_read_lock() family (5.8, with mm->mmap_sem
 * renamed mmap_lock).  Without it the module takes mm->mmap_sem itself.
 */
#include <linux/mm.h>
#include <linux/mmap_lock.h>

void mw_probe(struct mm_struct *mm);
void mw_probe(struct mm_struct *mm)
{
	mmap_read_lock(mm);
	mmap_read_unlock(mm);
}
