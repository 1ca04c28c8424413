// SPDX-License-Identifier: GPL-2.0-only
/*
 * MW_HAVE_VMA_LOOKUP: vma_lookup() returns the VMA that contains an address
 * or NULL (5.14).  Without it the module uses find_vma() and checks
 * vm_start itself.
 */
#include <linux/mm.h>

struct vm_area_struct *mw_probe(struct mm_struct *mm, unsigned long addr);
struct vm_area_struct *mw_probe(struct mm_struct *mm, unsigned long addr)
{
	return vma_lookup(mm, addr);
}
