// SPDX-License-Identifier: GPL-2.0-only
/*
 * MW_HAVE_VM_OPS_MREMAP_FLAGS: vm_operations_struct.mremap takes the
 * mremap flags as a second argument (5.11 and 5.12 only; a vendor kernel
 * may carry it longer).
 */
#pragma GCC diagnostic error "-Wincompatible-pointer-types"
#include <linux/mm.h>

static int mw_probe_mremap(struct vm_area_struct *vma, unsigned long flags)
{
	return -EINVAL;
}

const struct vm_operations_struct mw_probe_ops = {
	.mremap = mw_probe_mremap,
};
