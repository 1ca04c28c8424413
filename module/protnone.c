// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernels before 5.14 (probes/numa_thp_legacy.c) move a NUMA-misplaced
 * transparent huge page in two steps: the hinting scan makes its PMD
 * PROT_NONE inside an MMU_NOTIFY_PROTECTION_VMA range, and a later fault
 * copies the page to the faulting node and installs the new PMD with no
 * notifier range at all (migrate_misplaced_transhuge_page()).  A region
 * monitored between the two steps missed the only announcement the move
 * ever gets.  So a new region's range is searched for such PMDs, and the
 * module acts on each one as the scan's range would have: the region is
 * retired (reason protection, cause numa_scan).  Whether the fault will
 * move the page is not known yet, so this errs on the side of an event.
 * A huge page mapped PROT_NONE by mprotect() has the same PMD but is never
 * faulted back in: the scan marks only accessible VMAs, so a PMD in one
 * that is not is left alone (else every MONITOR over such a guard would
 * be stale at once, forever).  With one memory node nothing is ever
 * misplaced, and nothing is searched.  x86-64 only: the walk relies on
 * its page tables outliving an interrupts-off reader.
 *
 * The search reads the page tables as get_user_pages_fast() does: without
 * mmap_lock, interrupts off while one PMD is looked up, each level read
 * once.  On x86 a page table is not freed while a CPU that may walk it has
 * interrupts off (the TLB flush IPI, or the RCU grace period of a deferred
 * free, waits for that CPU).
 */
#include "mapwatch_priv.h"
#include "compat.h"

#ifdef MW_PROTNONE_SEARCH

/*
 * Whether the PMD mapping @addr is a PROT_NONE huge page; *next is where
 * the next lookup starts (past a whole empty upper-level entry).
 */
static bool mw_protnone_pmd(struct mm_struct *mm, unsigned long addr,
			    unsigned long end, unsigned long *next)
{
	unsigned long flags;
	pgd_t *pgdp, pgd;
	p4d_t *p4dp, p4d;
	pud_t *pudp, pud;
	pmd_t pmd = __pmd(0);

	local_irq_save(flags);
	pgdp = pgd_offset(mm, addr);
	pgd = READ_ONCE(*pgdp);
	*next = pgd_addr_end(addr, end);
	if (pgd_none(pgd) || pgd_bad(pgd))
		goto out;
	p4dp = p4d_offset_lockless(pgdp, pgd, addr);
	p4d = READ_ONCE(*p4dp);
	*next = p4d_addr_end(addr, end);
	if (p4d_none(p4d) || p4d_bad(p4d))
		goto out;
	pudp = pud_offset_lockless(p4dp, p4d, addr);
	pud = READ_ONCE(*pudp);
	*next = pud_addr_end(addr, end);
	if (pud_none(pud) || pud_large(pud) || pud_bad(pud))
		goto out;
	pmd = READ_ONCE(*pmd_offset_lockless(pudp, pud, addr));
	*next = pmd_addr_end(addr, end);
out:
	local_irq_restore(flags);
	return pmd_protnone(pmd) && pmd_trans_huge(pmd);
}

/*
 * Whether the VMA at @addr is one the NUMA scan marks (accessible), rather
 * than one mprotect(PROT_NONE) made.  Rare (a PROT_NONE huge page was
 * found), so the mmap_lock is fine here; killed while waiting for it:
 * yes, the side of an event.
 */
static bool mw_numa_marked(struct mm_struct *mm, unsigned long addr)
{
	struct vm_area_struct *vma;
	bool marked;

	if (mmap_read_lock_killable(mm))
		return true;
	vma = vma_lookup(mm, addr);
	marked = vma && (vma->vm_flags & (VM_READ | VM_WRITE | VM_EXEC));
	mmap_read_unlock(mm);
	return marked;
}

/*
 * The first PMD-sized block at or after @start, up to @last, mapped by a
 * huge page of @mm (current's) a NUMA scan made PROT_NONE: its address in
 * *at.
 */
bool mw_protnone_thp(struct mm_struct *mm, unsigned long start,
		     unsigned long last, unsigned long *at)
{
	unsigned long addr = start & PMD_MASK, end = last + 1, next;
	unsigned int n = 0;

	if (mm != current->mm || num_online_nodes() < 2)
		return false;
	while (addr < end) {
		if (mw_protnone_pmd(mm, addr, end, &next) &&
		    mw_numa_marked(mm, addr)) {
			*at = addr & PMD_MASK;
			return true;
		}
		addr = next;
		if (!(++n % 512))
			cond_resched();
	}
	return false;
}

#endif /* MW_PROTNONE_SEARCH */
