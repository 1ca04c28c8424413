/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one place where kernel API differences between the supported kernels
 * (Debian's 6.1 and 6.12) are bridged.
 */
#ifndef MAPWATCH_COMPAT_H
#define MAPWATCH_COMPAT_H

#include <linux/mm.h>
#include <linux/version.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
/* vm_flags became read-only with accessors in 6.3. */
static inline void mw_vm_flags_mod(struct vm_area_struct *vma,
				   unsigned long set, unsigned long clear)
{
	vma->vm_flags = (vma->vm_flags | set) & ~clear;
}
#else
static inline void mw_vm_flags_mod(struct vm_area_struct *vma,
				   unsigned long set, unsigned long clear)
{
	vm_flags_mod(vma, set, clear);
}
#endif

#endif /* MAPWATCH_COMPAT_H */
