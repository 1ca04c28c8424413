// SPDX-License-Identifier: GPL-2.0-only
/*
 * Why a region changed (MAPWATCH_POLICY_REASONS, issue 26): a reason (what
 * happened to the mapping), a cause (who or what did it) and
 * MAPWATCH_EVENT_F_PAGES_KEPT, packed as the kdreg2 record's _alignment
 * word, derived from the notifier's event and from the task that runs the
 * callback.
 *
 * The notifier is told only the event type (UNMAP, CLEAR, PROTECTION_*,
 * ...), so the rest comes from the context:
 *  - a kernel thread, by name: kcompactd, kswapd, ksmd, khugepaged, others;
 *  - a task exiting (PF_EXITING);
 *  - the system call the task is in, when it is one of those listed below
 *    and the event is one that call makes (madvise's advice and mremap's
 *    and mprotect's ranges refine it);
 *  - reclaim (PF_MEMALLOC: direct reclaim, direct compaction, memory.high);
 *  - otherwise a fault (copy-on-write, NUMA migration on fault, THP split)
 *    or, for a protection change outside mprotect, NUMA balancing's scan,
 *    which runs as task work on the way back to user space.
 *
 * "In a system call" is not read from orig_ax alone: for an exception,
 * x86's entry code stores the error code there (a user fault always has
 * bit 2 set: 4 to 7 mostly), and task work after a system call still sees
 * that call's number.  The entry code sets ax to -ENOSYS before it calls
 * the system call and stores the result there after, so a task is taken to
 * be inside system call orig_ax only while ax reads -ENOSYS.  x86-64 only;
 * elsewhere, in a compat task and in an io_uring or vhost worker the
 * context cannot be told: the cause reads unknown.  A change made through
 * another process's call (a shared file truncated, a shmem hole punched)
 * reads syscall, never that process's munmap or madvise.
 *
 * Only called when a region is retired or a skipped invalidation counted,
 * never on the no-region path, so unrelated invalidations pay nothing.
 */
#include "mapwatch_priv.h"

#include <linux/mman.h>
#include <linux/sched.h>
#include <linux/sched/task_stack.h>
#include <linux/string.h>
#ifdef CONFIG_X86_64
#include <linux/compat.h>
#include <asm/syscall.h>
#include <asm/unistd.h>
#endif

#include "compat.h"

static const char *const mw_reason_names[] = MAPWATCH_REASON_NAMES;
static const char *const mw_cause_names[] = MAPWATCH_CAUSE_NAMES;

static_assert(ARRAY_SIZE(mw_reason_names) == MAPWATCH_REASON_COUNT);
static_assert(ARRAY_SIZE(mw_cause_names) == MAPWATCH_CAUSE_COUNT);

const char *mw_reason_name(unsigned int reason)
{
	return reason < MAPWATCH_REASON_COUNT ? mw_reason_names[reason] : "?";
}

const char *mw_cause_name(unsigned int cause)
{
	return cause < MAPWATCH_CAUSE_COUNT ? mw_cause_names[cause] : "?";
}

/*
 * The word of a covering record that stands for regions @a and @b: each of
 * reason and cause where they agree, else unknown; PAGES_KEPT if both.
 */
u32 mw_why_merge(u32 a, u32 b)
{
	u32 w = a & b & ~0xffffU;

	if (MW_WHY_REASON(a) == MW_WHY_REASON(b))
		w |= MW_WHY_REASON(a);
	if (MW_WHY_CAUSE(a) == MW_WHY_CAUSE(b))
		w |= MW_WHY_CAUSE(a) << 8;
	return w;
}

static unsigned int mw_kthread_cause(void)
{
	const char *comm = current->comm;

	if (str_has_prefix(comm, "kcompactd"))
		return MAPWATCH_CAUSE_COMPACTION;
	if (str_has_prefix(comm, "kswapd"))
		return MAPWATCH_CAUSE_RECLAIM;
	if (!strcmp(comm, "ksmd"))
		return MAPWATCH_CAUSE_KSM;
	if (!strcmp(comm, "khugepaged"))
		return MAPWATCH_CAUSE_KHUGEPAGED;
	return MAPWATCH_CAUSE_KTHREAD;
}

/* What the event alone says. */
static unsigned int mw_event_reason(enum mmu_notifier_event event)
{
	switch (event) {
	case MMU_NOTIFY_UNMAP:
		return MAPWATCH_REASON_UNMAPPED;
	case MMU_NOTIFY_PROTECTION_VMA:
	case MMU_NOTIFY_PROTECTION_PAGE:
	case MMU_NOTIFY_SOFT_DIRTY:
		return MAPWATCH_REASON_PROTECTION;
	case MMU_NOTIFY_RELEASE:
		return MAPWATCH_REASON_EXIT;
	default:
		/*
		 * CLEAR; MIGRATE and EXCLUSIVE (device memory: the page is
		 * replaced by a device's or made the device's alone); any
		 * newer event, the safe side.
		 */
		return MAPWATCH_REASON_REPLACED;
	}
}

/* mw_syscall(): current is not in a system call; it cannot be told. */
#define MW_NO_SYSCALL	(-1)
#define MW_UNTOLD	(-2)

#ifdef CONFIG_X86_64
static bool mw_overlaps(const struct mmu_notifier_range *range,
			unsigned long start, unsigned long len)
{
	return range->start < start + len && range->end > start;
}

static bool mw_within(const struct mmu_notifier_range *range,
		      unsigned long start, unsigned long len)
{
	return range->start >= start && range->end <= start + len;
}

/*
 * The system call current is inside (its arguments in @a), MW_NO_SYSCALL,
 * or MW_UNTOLD: a compat task (other numbers), an io_uring or vhost worker
 * (its registers are a copy with ax 0, not a system call's frame).
 */
static long mw_syscall(unsigned long *a)
{
	struct pt_regs *regs = task_pt_regs(current);

#ifdef PF_IO_WORKER
	if (current->flags & PF_IO_WORKER)
		return MW_UNTOLD;
#endif
#ifdef PF_USER_WORKER
	if (current->flags & PF_USER_WORKER)
		return MW_UNTOLD;
#endif
	if (syscall_get_error(current, regs) != -ENOSYS)
		return MW_NO_SYSCALL;
	/*
	 * Only now: in a fault orig_ax is -1, which in_compat_syscall()
	 * reads as an x32 call.
	 */
	if (in_compat_syscall())
		return MW_UNTOLD;
	syscall_get_arguments(current, regs, a);
	return syscall_get_nr(current, regs);
}

static bool mw_zapping_advice(unsigned long advice)
{
	switch (advice) {
	case MADV_DONTNEED:
	case MADV_FREE:
	case MADV_REMOVE:
#ifdef MADV_DONTNEED_LOCKED
	case MADV_DONTNEED_LOCKED:
#endif
#ifdef MADV_GUARD_INSTALL
	case MADV_GUARD_INSTALL:
#endif
		return true;
	default:
		return false;
	}
}

static bool mw_is_mprotect(long nr)
{
	return nr == __NR_mprotect || nr == __NR_pkey_mprotect;
}

/* madvise's advice, or -1 when @nr is not madvise. */
static long mw_advice(long nr, const unsigned long *a)
{
	if (nr == __NR_madvise)
		return a[2];
#ifdef __NR_process_madvise
	if (nr == __NR_process_madvise)
		return a[3];
#endif
	return -1;
}

/*
 * Reclaim that madvise asks for itself (it runs with PF_MEMALLOC): the
 * cause is madvise, not reclaim.
 */
static bool mw_madvise_reclaims(long nr, const unsigned long *a)
{
	long advice = mw_advice(nr, a);

#ifdef MADV_PAGEOUT
	if (advice == MADV_PAGEOUT)
		return true;
#endif
#ifdef MADV_COLD
	if (advice == MADV_COLD)
		return true;
#endif
	return false;
}

/*
 * Reason and cause when @event is one that system call @nr makes; false
 * when it is not (then the number may be stale or not a system call).
 */
static bool mw_syscall_why(long nr, const unsigned long *a,
			   const struct mmu_notifier_range *range,
			   unsigned int *reason, unsigned int *cause)
{
	enum mmu_notifier_event event = range->event;
	bool unmap = event == MMU_NOTIFY_UNMAP;
	bool clear = event == MMU_NOTIFY_CLEAR;
	long advice = mw_advice(nr, a);

	if (advice >= 0) {
		/* A split before the zap, a collapse, a page-out: CLEAR. */
		if (!clear)
			return false;
		*cause = MAPWATCH_CAUSE_MADVISE;
		*reason = MAPWATCH_REASON_REPLACED;
		/*
		 * A zap inside the advice's range unmaps; a THP split at its
		 * edge (the whole PMD) keeps the pages past it.  process_
		 * madvise's ranges are in an iovec: its zaps read unmapped.
		 */
		if (mw_zapping_advice(advice) &&
		    (nr != __NR_madvise ||
		     mw_within(range, a[0], PAGE_ALIGN(a[1]))))
			*reason = MAPWATCH_REASON_UNMAPPED;
		return true;
	}
	switch (nr) {
	case __NR_munmap:
		*cause = MAPWATCH_CAUSE_MUNMAP;
		break;
	case __NR_mmap:
		*cause = MAPWATCH_CAUSE_MMAP;
		break;
	case __NR_brk:
		*cause = MAPWATCH_CAUSE_BRK;
		break;
	case __NR_shmdt:
		*cause = MAPWATCH_CAUSE_SHMDT;
		break;
	case __NR_mremap:
		if (!unmap && !clear)
			return false;
		*cause = MAPWATCH_CAUSE_MREMAP;
		*reason = mw_event_reason(event);
		/*
		 * The pages that move are the old range's first new_len
		 * bytes; a shrink unmaps the tail past them, and a move to a
		 * fixed address unmaps what was there first.
		 */
		if (unmap && mw_overlaps(range, a[0],
					 min(PAGE_ALIGN(a[1]),
					     PAGE_ALIGN(a[2]))))
			*reason = MAPWATCH_REASON_MOVED;
		/* hugetlb moves its page tables under CLEAR (5.16 on). */
		if (clear && mw_within(range, a[0],
				       min(PAGE_ALIGN(a[1]),
					   PAGE_ALIGN(a[2]))))
			*reason = MAPWATCH_REASON_MOVED;
		return true;
	case __NR_mprotect:
	case __NR_pkey_mprotect:
		/*
		 * Overlap rather than inclusion: hugetlb's range may be
		 * widened to a shared PMD.
		 */
		if (event == MMU_NOTIFY_PROTECTION_VMA &&
		    !mw_overlaps(range, a[0], PAGE_ALIGN(a[1])))
			return false;
		if (!clear && event != MMU_NOTIFY_PROTECTION_VMA)
			return false;
		*cause = MAPWATCH_CAUSE_MPROTECT;
		*reason = mw_event_reason(event);
		return true;
	case __NR_fork:
	case __NR_vfork:
	case __NR_clone:
#ifdef __NR_clone3
	case __NR_clone3:
#endif
		/* The parent's write-protect; a pinned page's split: CLEAR. */
		if (!clear && event != MMU_NOTIFY_PROTECTION_PAGE)
			return false;
		*cause = MAPWATCH_CAUSE_FORK;
		*reason = mw_event_reason(event);
		return true;
	case __NR_move_pages:
	case __NR_migrate_pages:
	case __NR_mbind:
		/* try_to_migrate() announces CLEAR; migrate_vma MIGRATE. */
		if (!clear && !mw_event_is_migrate(event))
			return false;
		*cause = MAPWATCH_CAUSE_MIGRATE;
		*reason = MAPWATCH_REASON_REPLACED;
		return true;
	default:
		return false;
	}
	/* The unmapping calls: UNMAP, or CLEAR for a THP split at an edge. */
	if (!unmap && !clear)
		return false;
	*reason = mw_event_reason(event);
	return true;
}
/* The calls that act on another process's memory. */
static bool mw_remote_call(long nr)
{
	switch (nr) {
	case __NR_move_pages:
	case __NR_migrate_pages:
#ifdef __NR_process_madvise
	case __NR_process_madvise:
#endif
		return true;
	default:
		return false;
	}
}
#else
static long mw_syscall(unsigned long *a)
{
	return MW_UNTOLD;
}

static bool mw_remote_call(long nr)
{
	return false;
}

static bool mw_is_mprotect(long nr)
{
	return false;
}

static bool mw_madvise_reclaims(long nr, const unsigned long *a)
{
	return false;
}

static bool mw_syscall_why(long nr, const unsigned long *a,
			   const struct mmu_notifier_range *range,
			   unsigned int *reason, unsigned int *cause)
{
	return false;
}
#endif

/* The word for an invalidation of @range made by current, now. */
u32 mw_why(const struct mmu_notifier_range *range)
{
	enum mmu_notifier_event event = range->event;
	unsigned int reason = mw_event_reason(event);
	unsigned int cause = MAPWATCH_CAUSE_UNKNOWN;
	unsigned long a[6] = { 0 };
	u32 flags = 0;
	long nr;

	if (event == MMU_NOTIFY_SOFT_DIRTY)
		return MW_WHY(MAPWATCH_REASON_PROTECTION,
			      MAPWATCH_CAUSE_SOFT_DIRTY,
			      MAPWATCH_EVENT_F_PAGES_KEPT);
	if (event == MMU_NOTIFY_RELEASE)
		return MW_WHY(MAPWATCH_REASON_EXIT, MAPWATCH_CAUSE_EXIT, 0);

	if (current->flags & PF_KTHREAD) {
		cause = mw_kthread_cause();
		goto out;
	}
	if (current->flags & PF_EXITING) {
		cause = MAPWATCH_CAUSE_EXIT;
		goto out;
	}
	nr = mw_syscall(a);
	if (current->mm != range->mm && !mw_remote_call(nr)) {
		/*
		 * Another process's call reached these pages through the
		 * file or shmem they share (its truncate, hole punch or
		 * madvise): not this process's munmap or madvise.
		 */
		if (nr >= 0)
			cause = MAPWATCH_CAUSE_SYSCALL;
		goto out;
	}
	if ((current->flags & PF_MEMALLOC) && !mw_madvise_reclaims(nr, a)) {
		cause = MAPWATCH_CAUSE_RECLAIM;
		goto out;
	}
	if (nr >= 0 && mw_syscall_why(nr, a, range, &reason, &cause))
		goto out;
	if (nr == MW_UNTOLD)
		goto out;
	if (event == MMU_NOTIFY_PROTECTION_VMA &&
	    (nr < 0 || mw_is_mprotect(nr))) {
		/* Not mprotect's own range: the NUMA hinting scan. */
		if (IS_ENABLED(CONFIG_NUMA_BALANCING))
			cause = MAPWATCH_CAUSE_NUMA_SCAN;
	} else if (nr >= 0) {
		cause = MAPWATCH_CAUSE_SYSCALL;
	} else if (reason == MAPWATCH_REASON_REPLACED &&
		   !mw_event_is_exclusive(event)) {
		/*
		 * Copy-on-write, NUMA migration on fault, a THP split (a
		 * device-exclusive entry is a driver's doing, not a fault).
		 */
		cause = MAPWATCH_CAUSE_FAULT;
	}
out:
	/*
	 * Frames kept: protection changes, except where a THP may migrate
	 * under a NUMA scan's range alone (probes/numa_thp_legacy.c): there
	 * no PROTECTION_VMA says so, as a scan can run where the cause reads
	 * mprotect (task work at a traced mprotect's entry stop).
	 */
	if (reason == MAPWATCH_REASON_PROTECTION &&
	    (event != MMU_NOTIFY_PROTECTION_VMA || !mw_numa_thp_legacy))
		flags = MAPWATCH_EVENT_F_PAGES_KEPT;
	return MW_WHY(reason, cause, flags);
}
