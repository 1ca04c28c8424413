/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mapwatch's own user ABI, on top of the kdreg2-compatible one in
 * <kdreg2.h>.  A client that uses none of this sees pure kdreg2 behaviour.
 *
 * Status area layout (one read-only mapping made by CONFIG_DATA):
 *   offset   0  struct kdreg2_status_data      (48 bytes, kdreg2's)
 *   offset  64  struct mapwatch_status_ext     (64 bytes)
 *   offset 128  monitoring-state array, max_regions + 1 entries of u32
 */
#ifndef MAPWATCH_UAPI_H
#define MAPWATCH_UAPI_H

#include "kdreg2.h"

#define MAPWATCH_DEVICE_NAME "/dev/mapwatch"

/* ABI version reported in kdreg2_status_data.version and the probe. */
#define MAPWATCH_ABI_VERSION 1

#define MAPWATCH_STATUS_EXT_OFFSET 64
#define MAPWATCH_STATE_ARRAY_OFFSET 128
#define MAPWATCH_STATUS_MAGIC 0x484354415750414dULL	/* "MAPWATCH" */

struct mapwatch_status_ext {
	uint64_t magic;			/* MAPWATCH_STATUS_MAGIC */
	uint64_t abi_version;		/* MAPWATCH_ABI_VERSION */
	/*
	 * Regions whose own event record could not be queued because the
	 * per-fd event cap was reached; they were folded into a covering
	 * event (cookie KDREG2_BAD_COOKIE_VALUE).  Their generation changed
	 * all the same.
	 */
	KDREG2_ATOMIC64 overflows;
	/* Invalidations skipped because they could not change a translation. */
	KDREG2_ATOMIC64 skipped_invalidations;
	uint64_t reserved[4];
};

#if defined(__x86_64__) && !defined(__cplusplus)
_Static_assert(sizeof(struct mapwatch_status_ext) == 64, "status_ext");
#endif

/*
 * Extension ioctls (numbers from 16 up, magic 'k').  Every argument starts
 * with its own size: user space sets it to sizeof() of the struct it was
 * built with.  A smaller size than the module knows is refused (EINVAL); a
 * larger one is accepted when the extra bytes are zero (E2BIG otherwise), so
 * newer user space works on an older module.  Reserved and padding fields
 * must be zero, unknown flags are refused (EINVAL).  Extension ioctls match
 * on their number, not on the size encoded in the request code.
 */

/* PROBE: what this module offers.  Always available. */
struct mapwatch_probe {
	uint32_t size;			/* in */
	uint32_t abi_version;		/* out: MAPWATCH_ABI_VERSION */
	uint64_t features;		/* out: MAPWATCH_FEATURE_* */
	uint64_t max_regions_limit;	/* out: largest max_regions accepted */
	uint64_t max_pending_events;	/* out: per-fd event cap */
};

#define MAPWATCH_FEATURE_STATUS_EXT	(1ULL << 0)	/* mapwatch_status_ext */
#define MAPWATCH_FEATURE_BATCH		(1ULL << 1)	/* *_BATCH ioctls */
#define MAPWATCH_FEATURE_POLICY		(1ULL << 2)	/* SET_POLICY */
#define MAPWATCH_FEATURE_INVALIDATE	(1ULL << 3)	/* INVALIDATE */
#define MAPWATCH_FEATURE_REASONS	(1ULL << 4)	/* POLICY_REASONS */

/*
 * MONITOR_BATCH / UNMONITOR_BATCH: count requests in one call.  Each entry
 * succeeds or fails on its own (status 0 or a negative errno, the same ones
 * as MONITOR/UNMONITOR); entries are handled in order, so a later entry sees
 * the effect of an earlier one.  The ioctl returns the number of entries
 * that succeeded, or -1 with errno for a bad header (EINVAL), an unreadable
 * or unwritable array (EFAULT: entries whose status was written keep their
 * effect; a MONITOR_BATCH chunk of up to 64 entries whose statuses could not
 * be written is undone, as a single MONITOR is), EIO.
 */
struct mapwatch_batch {
	uint32_t size;			/* in: sizeof(struct mapwatch_batch) */
	uint32_t flags;			/* in: must be 0 */
	uint32_t count;			/* in: entries, at most MAPWATCH_BATCH_MAX */
	uint32_t entry_size;		/* in: sizeof() of one entry */
	uint64_t entries;		/* in: user pointer to the array */
};

#define MAPWATCH_BATCH_MAX 65536

struct mapwatch_monitor_entry {
	uint64_t addr;			/* in */
	uint64_t length;		/* in */
	uint64_t cookie;		/* in */
	uint64_t location;		/* out: kdreg2_monitoring_params.location */
	uint32_t generation;		/* out: kdreg2_monitoring_params.generation */
	int32_t status;			/* out: 0 or -errno */
};

struct mapwatch_unmonitor_entry {
	uint64_t cookie;		/* in */
	uint64_t location;		/* in */
	uint32_t generation;		/* in */
	int32_t status;			/* out: 0 or -errno */
};

/*
 * SET_POLICY: per-fd choices, all off by default (= pure kdreg2 behaviour).
 * OVERFLOW_EVENT: past the event cap, deliver a MAPWATCH_EVENT_OVERFLOW
 *   record (covering range, cookie KDREG2_BAD_COOKIE_VALUE) instead of a
 *   covering MAPPING_CHANGE record: "events were lost, rescan".
 * ALL_INVALIDATIONS: also retire regions on invalidations that change no
 *   translation (mprotect, NUMA hinting, fork write-protect, soft-dirty).
 */
struct mapwatch_policy {
	uint32_t size;			/* in */
	uint32_t flags;			/* in: MAPWATCH_POLICY_* */
};

#define MAPWATCH_POLICY_OVERFLOW_EVENT		(1U << 0)
#define MAPWATCH_POLICY_ALL_INVALIDATIONS	(1U << 1)
#define MAPWATCH_POLICY_REASONS			(1U << 2)
#define MAPWATCH_POLICY_MASK			(0x7U)

/*
 * REASONS: why a region changed.  With MAPWATCH_POLICY_REASONS set on the
 * fd (MAPWATCH_FEATURE_REASONS says the module has it), the _alignment word
 * of every struct kdreg2_event read from it carries
 *   bits  0-7   enum mapwatch_reason: what happened to the mapping
 *   bits  8-15  enum mapwatch_cause: who or what did it
 *   bit  16     MAPWATCH_EVENT_F_PAGES_KEPT: the frames behind the range
 *               did not change (a protection change); the translation's
 *               permissions did
 * and 0 (MAPWATCH_REASON_UNKNOWN, MAPWATCH_CAUSE_UNKNOWN) without it, as
 * kdreg2 writes it.  A covering record (past the event cap) carries the
 * reason shared by every region folded into it, or UNKNOWN when they
 * differ.  Records, their size and every other field are unchanged.
 *
 * The reason is derived from what the kernel's mmu notifier is told (the
 * mmu_notifier_range event) and from the context that made the change (the
 * system call of the task, a kernel thread); module/README.md says, per
 * supported kernel, which reasons and causes that kernel lets the module
 * tell apart.  It is information for people and statistics: a cache must
 * never keep a registration because of it, except where PAGES_KEPT says
 * the frames stayed.
 *
 * What the tests (tests/guest/reasons.c, 5.10 to 7.x) showed:
 *  - MADV_FREE reports at the call (UNMAPPED, MADVISE), not when reclaim
 *    later frees the pages.
 *  - A KSM merge reports every merged page, the one KSM keeps in place
 *    too (REPLACED, KSM): the notifier cannot tell its write-protect from
 *    a replacement.
 *  - A THP split at the edge of a munmap, mprotect, madvise or mremap
 *    range reads REPLACED with that call's cause.
 *  - NUMA balancing's scan (PROTECTION, NUMA_SCAN) comes as task work
 *    right after a system call or an interrupt returns to the process.
 *  - On 5.10 (a THP may migrate under the scan's PROTECTION_VMA alone)
 *    that event is not skipped: mprotect retires regions even without
 *    ALL_INVALIDATIONS (PROTECTION, MPROTECT, PAGES_KEPT), and the scan's
 *    PROTECTION comes without PAGES_KEPT.
 *  - The address space's release (exit, exec) queues no record (nobody
 *    can read it); its regions are counted as EXIT, EXIT in
 *    /proc/PID/fdinfo of an inherited fd and in /sys/kernel/mapwatch.
 */
enum mapwatch_reason {
	MAPWATCH_REASON_UNKNOWN = 0,	/* the kernel did not say */
	MAPWATCH_REASON_UNMAPPED = 1,	/* munmap, mmap over it, MADV_DONTNEED/
					   FREE/REMOVE, brk shrink, shmdt */
	MAPWATCH_REASON_MOVED = 2,	/* mremap moved it */
	MAPWATCH_REASON_REPLACED = 3,	/* mapping kept, its pages may be
					   others: copy-on-write, migration
					   (NUMA balancing, compaction,
					   move_pages), KSM, THP collapse or
					   split, swap-out, soft-offline */
	MAPWATCH_REASON_PROTECTION = 4,	/* protection reduced (mprotect,
					   NUMA hinting, fork write-protect,
					   soft-dirty); only delivered with
					   MAPWATCH_POLICY_ALL_INVALIDATIONS
					   (and on 5.10 for mprotect and the
					   NUMA scan: see above) */
	MAPWATCH_REASON_EXIT = 5,	/* the address space is going away */
	MAPWATCH_REASON_USER = 6,	/* MAPWATCH_IOCTL_INVALIDATE */
	MAPWATCH_REASON_COUNT
};

enum mapwatch_cause {
	MAPWATCH_CAUSE_UNKNOWN = 0,
	MAPWATCH_CAUSE_MUNMAP = 1,	/* munmap() */
	MAPWATCH_CAUSE_MMAP = 2,	/* mmap(MAP_FIXED) over the range */
	MAPWATCH_CAUSE_MADVISE = 3,	/* madvise(), process_madvise() */
	MAPWATCH_CAUSE_BRK = 4,		/* brk() shrinking the heap */
	MAPWATCH_CAUSE_SHMDT = 5,	/* shmdt() */
	MAPWATCH_CAUSE_MREMAP = 6,	/* mremap() */
	MAPWATCH_CAUSE_MPROTECT = 7,	/* mprotect(), pkey_mprotect() */
	MAPWATCH_CAUSE_FORK = 8,	/* fork(), clone() of the process */
	MAPWATCH_CAUSE_FAULT = 9,	/* a page fault or another access of
					   the memory by the process (copy-
					   on-write break, NUMA balancing's
					   migration on fault, THP split) */
	MAPWATCH_CAUSE_NUMA_SCAN = 10,	/* NUMA balancing's periodic scan */
	MAPWATCH_CAUSE_MIGRATE = 11,	/* move_pages(), migrate_pages(),
					   mbind(MPOL_MF_MOVE) */
	MAPWATCH_CAUSE_COMPACTION = 12,	/* kcompactd, memory compaction */
	MAPWATCH_CAUSE_RECLAIM = 13,	/* kswapd or direct reclaim (swap-out) */
	MAPWATCH_CAUSE_KSM = 14,	/* ksmd merging identical pages */
	MAPWATCH_CAUSE_KHUGEPAGED = 15,	/* khugepaged collapsing into a THP */
	MAPWATCH_CAUSE_SOFT_DIRTY = 16,	/* clear_refs */
	MAPWATCH_CAUSE_EXIT = 17,	/* the process exiting or exec'ing */
	MAPWATCH_CAUSE_IOCTL = 18,	/* MAPWATCH_IOCTL_INVALIDATE */
	MAPWATCH_CAUSE_SYSCALL = 19,	/* another system call (truncate,
					   fallocate, userfaultfd...) */
	MAPWATCH_CAUSE_KTHREAD = 20,	/* another kernel thread */
	MAPWATCH_CAUSE_COUNT
};

#define MAPWATCH_EVENT_F_PAGES_KEPT	(1U << 16)

/*
 * The names /proc/PID/fdinfo, /sys/kernel/mapwatch, the tracepoint and the
 * tools print, indexed by the enums above: the one list of them.
 */
#define MAPWATCH_REASON_NAMES { "unknown", "unmapped", "moved", "replaced", \
	"protection", "exit", "user" }
#define MAPWATCH_CAUSE_NAMES { "unknown", "munmap", "mmap", "madvise", \
	"brk", "shmdt", "mremap", "mprotect", "fork", "fault", "numa_scan", \
	"migrate", "compaction", "reclaim", "ksm", "khugepaged", \
	"soft_dirty", "exit", "ioctl", "syscall", "kthread" }

#define MAPWATCH_EVENT_REASON(ev)	((ev)->_alignment & 0xffU)
#define MAPWATCH_EVENT_CAUSE(ev)	(((ev)->_alignment >> 8) & 0xffU)

/*
 * INVALIDATE: the caller says [addr, addr + length) of its own address
 * space changed in a way the kernel does not see (a device's memory behind
 * it, a dma-buf that moved).  Every region of this fd overlapping it is
 * retired before the ioctl returns, with its event, exactly as by a munmap
 * (also past the event cap: folded).  EINVAL for flags, length 0 or a
 * range that wraps; EIO from another mm.  Other fds are not touched.
 */
struct mapwatch_invalidate {
	uint32_t size;			/* in */
	uint32_t flags;			/* in: must be 0 */
	uint64_t addr;			/* in */
	uint64_t length;		/* in */
};

enum mapwatch_event_type {
	MAPWATCH_EVENT_OVERFLOW = 2,	/* only with MAPWATCH_POLICY_OVERFLOW_EVENT */
};

#define MAPWATCH_IOCTL_PROBE \
	_IOWR(KDREG2_IOC_MAGIC, 16, struct mapwatch_probe)
#define MAPWATCH_IOCTL_MONITOR_BATCH \
	_IOW(KDREG2_IOC_MAGIC, 17, struct mapwatch_batch)
#define MAPWATCH_IOCTL_UNMONITOR_BATCH \
	_IOW(KDREG2_IOC_MAGIC, 18, struct mapwatch_batch)
#define MAPWATCH_IOCTL_SET_POLICY \
	_IOW(KDREG2_IOC_MAGIC, 19, struct mapwatch_policy)
#define MAPWATCH_IOCTL_INVALIDATE \
	_IOW(KDREG2_IOC_MAGIC, 20, struct mapwatch_invalidate)

#if defined(__x86_64__) && !defined(__cplusplus)
_Static_assert(sizeof(struct mapwatch_probe) == 32, "probe");
_Static_assert(sizeof(struct mapwatch_batch) == 24, "batch");
_Static_assert(sizeof(struct mapwatch_monitor_entry) == 40, "monitor entry");
_Static_assert(sizeof(struct mapwatch_unmonitor_entry) == 24, "unmonitor entry");
_Static_assert(sizeof(struct mapwatch_policy) == 8, "policy");
_Static_assert(sizeof(struct mapwatch_invalidate) == 24, "invalidate");
#endif

static inline const struct mapwatch_status_ext *
mapwatch_status_ext(const struct kdreg2_status_data *status)
{
	return (const struct mapwatch_status_ext *)
		((const char *)status + MAPWATCH_STATUS_EXT_OFFSET);
}

#endif /* MAPWATCH_UAPI_H */
