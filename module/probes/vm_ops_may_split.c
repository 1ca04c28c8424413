// SPDX-License-Identifier: GPL-2.0-only
/*
 * MW_HAVE_VM_OPS_MAY_SPLIT: vm_operations_struct's veto on splitting a VMA
 * is called may_split (5.11); before, the same callback was named split.
 */
#include <linux/mm.h>

static int mw_probe_split(struct vm_area_struct *vma, unsigned long addr)
{
	return -EINVAL;
}

const struct vm_operations_struct mw_probe_ops = {
	.may_split = mw_probe_split,
};
