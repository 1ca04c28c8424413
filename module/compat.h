/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The one place where kernel API differences are bridged.  No version
 * numbers: each MW_HAVE_* comes from a compile test against the target
 * kernel's headers (module/probes/, run by Kbuild into mw_features.h), so a
 * vendor kernel with backports gets what its headers really offer.
 */
#ifndef MAPWATCH_COMPAT_H
#define MAPWATCH_COMPAT_H

#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/slab.h>

#include "mw_features.h"

#ifndef MW_HAVE_MMU_NOTIFIER_GET
#error "mapwatch needs mmu_notifier_get()/mmu_notifier_put() (Linux 5.4 or a backport)"
#endif
#ifndef MW_HAVE_MMU_NOTIFIER_RANGE_EVENT
#error "mapwatch needs the event in struct mmu_notifier_range (Linux 5.2 or a backport)"
#endif

static inline void mw_vm_flags_mod(struct vm_area_struct *vma,
				   unsigned long set, unsigned long clear)
{
#ifdef MW_HAVE_VM_FLAGS_MOD
	vm_flags_mod(vma, set, clear);
#else
	vma->vm_flags = (vma->vm_flags | set) & ~clear;
#endif
}

#ifndef MW_HAVE_VMA_LOOKUP
static inline struct vm_area_struct *vma_lookup(struct mm_struct *mm,
						unsigned long addr)
{
	struct vm_area_struct *vma = find_vma(mm, addr);

	return vma && addr >= vma->vm_start ? vma : NULL;
}
#endif

#ifndef MW_HAVE_MMAP_LOCK
static inline void mmap_read_lock(struct mm_struct *mm)
{
	down_read(&mm->mmap_sem);
}

static inline void mmap_read_unlock(struct mm_struct *mm)
{
	up_read(&mm->mmap_sem);
}

static inline int mmap_write_lock_killable(struct mm_struct *mm)
{
	return down_write_killable(&mm->mmap_sem);
}

static inline void mmap_write_unlock(struct mm_struct *mm)
{
	up_write(&mm->mmap_sem);
}
#endif

/*
 * Memory that user space maps (the status area): charged to the caller's
 * memory cgroup, except where a charged page carries a page type in its
 * _mapcount (probes/kmemcg_page_type.c), which a user mapping corrupts.
 */
#ifdef MW_HAVE_KMEMCG_PAGE_TYPE
#define MW_GFP_USER_MAPPED	GFP_KERNEL
#else
#define MW_GFP_USER_MAPPED	GFP_KERNEL_ACCOUNT
#endif

/*
 * kmem_cache_alloc_bulk() fills all @n or none: it returns the count up to
 * 6.x and true from 7.x on.  Either way, how many objects there are now.
 */
static inline u32 mw_cache_alloc_bulk(struct kmem_cache *s, gfp_t gfp, u32 n,
				      void **p)
{
	return kmem_cache_alloc_bulk(s, gfp, n, p) ? n : 0;
}

/* probes/numa_thp_legacy.c: a THP migrates announced as a protection range. */
#ifdef MW_HAVE_NUMA_THP_LEGACY
#define mw_numa_thp_legacy	true
#else
#define mw_numa_thp_legacy	false
#endif

/*
 * protnone.c: a THP that may still move with no notifier range of its own
 * (before 5.14), searched for in a new region's range.
 */
#if defined(MW_HAVE_NUMA_THP_LEGACY) && defined(CONFIG_NUMA_BALANCING) && \
	defined(CONFIG_TRANSPARENT_HUGEPAGE) && defined(CONFIG_X86_64)
#define MW_PROTNONE_SEARCH
bool mw_protnone_thp(struct mm_struct *mm, unsigned long start,
		     unsigned long last, unsigned long *at);
#else
static inline bool mw_protnone_thp(struct mm_struct *mm, unsigned long start,
				   unsigned long last, unsigned long *at)
{
	return false;
}
#endif

/*
 * Notifier events newer than the floor (probes/mmu_notify_*.c): a kernel
 * without one never sends it.
 */
static inline bool mw_event_is_migrate(enum mmu_notifier_event event)
{
#ifdef MW_HAVE_MMU_NOTIFY_MIGRATE
	return event == MMU_NOTIFY_MIGRATE;
#else
	return false;
#endif
}

static inline bool mw_event_is_exclusive(enum mmu_notifier_event event)
{
#ifdef MW_HAVE_MMU_NOTIFY_EXCLUSIVE
	return event == MMU_NOTIFY_EXCLUSIVE;
#else
	return false;
#endif
}

/* vm_operations_struct's veto on splitting a VMA: its name. */
#ifdef MW_HAVE_VM_OPS_MAY_SPLIT
#define MW_VM_OPS_MAY_SPLIT may_split
#else
#define MW_VM_OPS_MAY_SPLIT split
#endif

#endif /* MAPWATCH_COMPAT_H */
