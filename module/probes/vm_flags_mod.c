// SPDX-License-Identifier: GPL-2.0-only
/*
 * MW_HAVE_VM_FLAGS_MOD: vma->vm_flags is read-only and changed through
 * vm_flags_mod() (6.3).  Without it the module writes vm_flags directly.
 */
#include <linux/mm.h>

void mw_probe(struct vm_area_struct *vma);
void mw_probe(struct vm_area_struct *vma)
{
	vm_flags_mod(vma, VM_DONTEXPAND, VM_MAYWRITE);
}
