/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * mapwatch: private declarations shared by the module's files.
 *
 * One context per open file, bound to the opener's mm.  ctx->lock (a
 * spinlock) guards the region index, the slot allocator, the event queue and
 * the values the ioctls and the notifier write into the status area, because
 * the mmu notifier takes it from paths that must not sleep (close writes the
 * last values without it, once nothing else can).  ctx->mutex serialises the
 * ioctls that may sleep (CONFIG_DATA maps memory); ctx->read_mutex
 * serialises readers and FLUSH so that the head of the event queue stays put
 * while a reader copies it out.
 *
 * Lock order (outer first):
 *
 *   ctx->mutex                      (per fd; killable)
 *     mmap_lock of the caller's own mm (killable: attach, vm_mmap)
 *       mw_spares_lock              (spinlock, from the area's ->close)
 *   ctx->read_mutex                 (per fd; a reader faults on its buffer)
 *     mmap_lock of the caller's own mm
 *   user->ctxs_lock                 (per user, spinlock; folding)
 *     ctx->read_mutex               (trylock only: never waits for a reader)
 *       ctx->lock
 *   mwm->lock  ->  ctx->lock        (notifier; spinlocks, never sleeps)
 *   mw_users_lock, mw_spares_lock, mw_contexts_lock: leaf spinlocks, held
 *   for a lookup or a list update of bounded length.  The sums over all
 *   contexts (sysfs, any user) walk the list under RCU, not a lock.
 *
 * open() runs under misc_mtx, so it takes spinlocks only: no sleeping lock
 * another task could hold across work a user can make long.
 *
 * The rule behind it: no global lock and no lock of another user is ever
 * held across an mmap_lock, or across anything else a user process can stall
 * (a page fault on its memory, a copy to or from it).  A process whose own
 * mmap_lock is stalled (a FUSE page that never arrives) can stall only its
 * own calls, and those waits are killable.  Nothing here runs in misc_open()
 * (which holds the kernel's global misc_mtx) but allocation: the notifier is
 * attached at the first CONFIG_DATA.
 */
#ifndef MAPWATCH_PRIV_H
#define MAPWATCH_PRIV_H

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/interval_tree.h>
#include <linux/mmu_notifier.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/rbtree.h>
#include <linux/refcount.h>
#include <linux/siphash.h>
#include <linux/spinlock.h>
#include <linux/seq_file.h>
#include <linux/wait.h>

#include "kdreg2.h"
#include "mapwatch_uapi.h"

#define MW_READ_BATCH 64
/* Regions retired per hold of ctx->lock by the notifier. */
#define MW_RETIRE_BATCH 512

extern unsigned long mw_max_regions_limit;
extern unsigned long mw_max_pending_events;
extern unsigned long mw_max_user_regions;
extern unsigned long mw_max_user_memory;
extern unsigned long mw_max_user_contexts;
extern bool mw_kdreg2_only;

/* Spare status areas one mm may keep (CONFIG_DATA: ENOSPC past it). */
#define MW_MAX_SPARES 8

struct mw_ctx;

/* A user's budgets (user.c); charged up its user namespace chain. */
struct mw_user {
	struct hlist_node node;		/* in mw_users */
	struct user_namespace *ns;
	kuid_t uid;
	refcount_t ref;
	struct mw_user *parent;		/* the namespace owner, a level up */
	atomic_long_t regions;		/* monitored + retired unread */
	atomic_long_t memory;		/* bytes: status areas, slot rings */
	atomic_long_t contexts;
	atomic_long_t unread;		/* of regions: retired, queued */
	spinlock_t ctxs_lock;
	struct list_head ctxs;		/* its contexts (this level only) */
};

/* The status area: kdreg2 header, mapwatch extension, state array. */
struct mw_status {
	refcount_t ref;			/* context + the mapping's file */
	struct task_struct *mapper;	/* inside CONFIG_DATA's vm_mmap */
	struct mm_struct *mm;		/* mapped there (no reference) */
	unsigned long uaddr;		/* at this address */
	struct hlist_node spare_node;	/* while spare: in the spare hash */
	bool spare;			/* under the spare lock */
	bool home;			/* mapped at uaddr in mm (spare lock) */
	struct mw_user *user;		/* charged @size bytes */
	void *vaddr;			/* kernel view (vmalloc) */
	size_t size;			/* bytes, page aligned */
	size_t max_regions;		/* of the context using it */
	struct kdreg2_status_data *hdr;
	struct mapwatch_status_ext *ext;
	u32 *state;			/* max_regions + 1 entries */
};

struct mw_region {
	struct interval_tree_node it;	/* [start, last] in ctx->ranges */
	struct mw_region *hash_next;	/* in ctx->buckets while monitored */
	u64 cookie;
	u32 slot;
	u32 why;			/* once retired: MW_WHY() (reason.c) */
	/*
	 * A region leaves ctx->late (mw_detach()) before anything puts it on
	 * an event list, and no list holds it after that but event lists.
	 */
	union {
		struct list_head late_node;	/* in ctx->late, or empty */
		struct list_head event;		/* in ctx->pending once retired */
	};
};

/*
 * Why a region changed, as the record's _alignment word carries it
 * (MAPWATCH_POLICY_REASONS): reason | cause << 8 | MAPWATCH_EVENT_F_*.
 * MW_WHY_DERIVE: not derived yet (reason.c derives it on first need).
 */
#define MW_WHY(reason, cause, flags)	((reason) | (cause) << 8 | (flags))
#define MW_WHY_REASON(w)		((w) & 0xffU)
#define MW_WHY_CAUSE(w)			(((w) >> 8) & 0xffU)
#define MW_WHY_DERIVE			U32_MAX

/*
 * The mm's one notifier subscription, shared by its contexts.  Invalidations
 * between their start and end callbacks form a busy period (epoch, bumped
 * when inflight leaves 0; busy_epoch is it while inflight, else 0): a region
 * monitored during one missed the start that covered it, so each end checks
 * it again.
 */
struct mw_mm {
	struct mmu_notifier mn;
	spinlock_t lock;		/* ctxs, inflight, epoch */
	struct list_head ctxs;
	unsigned int inflight;
	u64 epoch;			/* 64 bits: never wraps */
	u64 busy_epoch;			/* read by MONITOR without the lock */
};

struct mw_ctx {
	struct mw_mm *mwm;		/* NULL until the first CONFIG_DATA */
	struct list_head mm_node;	/* in mwm->ctxs */
	unsigned int mn_users;		/* callbacks at work on it */
	bool detaching;			/* closing: callbacks skip it */
	struct mm_struct *mm;		/* mmgrab'd owner */
	struct mw_user *user;		/* charged for the regions */
	struct list_head user_node;	/* in user->ctxs */
	size_t ring_bytes;		/* free_slots + buckets, charged */
	struct pid *owner;		/* the opener (thread group) */
	struct list_head node;		/* in the global context list (RCU) */
	struct rcu_head rcu;

	spinlock_t lock;
	struct rb_root_cached ranges;
	/* Monitored regions by cookie: chains, in the block of free_slots. */
	struct mw_region **buckets;
	size_t hash_mask;		/* buckets - 1 */
	siphash_key_t hash_key;		/* random per context */
	size_t nr_regions;
	u32 *free_slots;		/* ring of free slot numbers, */
	size_t free_head, nr_free;	/* oldest first */
	struct mw_status *status;	/* NULL until CONFIG_DATA */

	struct list_head pending;	/* retired regions, oldest first */
	size_t nr_queued;
	unsigned long pend_start, pend_last;	/* cover them (if any) */
	bool overflowed;		/* a covering record is pending */
	unsigned long ovf_start, ovf_last;
	u64 total_events;
	u64 overflows;
	u64 skipped;
	u64 nr_monitor, nr_unmonitor;
	/* Regions retired (mm gone included), skipped invalidations, by why. */
	u64 by_reason[MAPWATCH_REASON_COUNT];
	u64 by_cause[MAPWATCH_CAUSE_COUNT];
	u64 skipped_by_cause[MAPWATCH_CAUSE_COUNT];
	u32 pend_why, ovf_why;		/* shared by the queue, the fold */
	u32 policy;			/* MAPWATCH_POLICY_* */
	/* The regions monitored late in busy period late_epoch. */
	struct list_head late;
	u64 late_epoch;
	size_t nr_late;
	wait_queue_head_t wq;

	struct mutex mutex;
	struct mutex read_mutex;
	struct kdreg2_event *evbuf;	/* MW_READ_BATCH records */
};

/*
 * Stores into the status area are releases: they pair with the acquire
 * loads of kdreg2_read_counter() and kdreg2_mapping_changed(), so a reader
 * that sees a new value also sees everything the module did before it.
 */
static inline void mw_publish(u64 *p, u64 v)
{
	/* Release: pairs with the user's acquire load. */
	smp_store_release(p, v);
}

static inline void mw_bump_state(u32 *word)
{
	/* See mw_publish(). */
	smp_store_release(word, *word + 1);
}

/* status.c */
void mw_status_put(struct mw_status *st);
void mw_status_park(struct mw_status *st);
long mw_config(struct mw_ctx *ctx, struct kdreg2_config_data __user *uarg);

/* notifier.c */
int mw_mm_attach(struct mw_ctx *ctx);
void mw_mm_detach(struct mw_ctx *ctx);
void mw_mm_exit(void);

/* region.c */
void mw_ctx_invalidate(struct mw_ctx *ctx,
		       const struct mmu_notifier_range *range, u64 late,
		       u32 why);
long mw_monitor(struct mw_ctx *ctx, struct kdreg2_ioctl_monitor __user *uarg);
long mw_unmonitor(struct mw_ctx *ctx,
		  struct kdreg2_ioctl_unmonitor __user *uarg);
long mw_monitor_batch(struct mw_ctx *ctx, const struct mapwatch_batch *b);
long mw_unmonitor_batch(struct mw_ctx *ctx, const struct mapwatch_batch *b);
void mw_unmonitor_all(struct mw_ctx *ctx, bool mm_gone);
bool mw_event_skipped(enum mmu_notifier_event event);
int mw_region_cache_init(void);
void mw_region_cache_exit(void);
void mw_region_free(struct mw_region *r);
size_t mw_index_bytes(size_t max);
u32 *mw_index_alloc(size_t max);
void mw_index_install(struct mw_ctx *ctx, u32 *slots, size_t max);

/* reason.c */
u32 mw_why(const struct mmu_notifier_range *range);
u32 mw_why_merge(u32 a, u32 b);
const char *mw_reason_name(unsigned int reason);
const char *mw_cause_name(unsigned int cause);

/* events.c */
void mw_publish_counters(struct mw_ctx *ctx);
void mw_queue_event(struct mw_ctx *ctx, struct mw_region *r);
ssize_t mw_read(struct file *file, char __user *buf, size_t count,
		loff_t *ppos);
__poll_t mw_poll(struct file *file, struct poll_table_struct *wait);
int mw_flush(struct mw_ctx *ctx);
void mw_drop_events(struct mw_ctx *ctx);
long mw_fold_events(struct mw_ctx *ctx, struct list_head *dead);
long mw_free_records(struct mw_user *u, struct list_head *dead);

/* ext.c */
long mw_ext_ioctl(struct mw_ctx *ctx, unsigned int cmd, void __user *uarg);

/* stats.c */
int mw_stats_init(void);
void mw_stats_exit(void);
void mw_stats_add(struct mw_ctx *ctx);
void mw_stats_del(struct mw_ctx *ctx);
void mw_stats_hold(u64 ns);
void mw_show_fdinfo(struct seq_file *m, struct file *file);

/* user.c */
struct mw_user *mw_user_get(void);
void mw_user_put(struct mw_user *u);
void mw_user_hold(struct mw_user *u);
void mw_user_release(struct mw_user *u);
bool mw_user_charge(struct mw_user *u, long n);
void mw_user_uncharge(struct mw_user *u, long n);
bool mw_user_charge_memory(struct mw_user *u, size_t bytes);
void mw_user_uncharge_memory(struct mw_user *u, size_t bytes);
long mw_user_regions(struct mw_user *u);
long mw_user_memory(struct mw_user *u);
void mw_user_add_ctx(struct mw_user *u, struct mw_ctx *ctx);
void mw_user_del_ctx(struct mw_user *u, struct mw_ctx *ctx);
long mw_user_fold(struct mw_user *u);
void mw_user_unread(struct mw_user *u, long n);

/* context.c */
extern const struct file_operations mw_fops;
void mw_ctx_mm_gone(struct mw_ctx *ctx);

#endif /* MAPWATCH_PRIV_H */
