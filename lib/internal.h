/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libmapwatch internals shared by the backends.
 */
#ifndef MAPWATCH_INTERNAL_H
#define MAPWATCH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "mapwatch.h"
#include "mapwatch_uapi.h"

struct mapwatch;

struct mw_ops {
	int (*watch)(struct mapwatch *mw, uintptr_t addr, size_t len,
		     uint64_t cookie, struct mapwatch_handle *h);
	int (*unwatch)(struct mapwatch *mw, const struct mapwatch_handle *h);
	/* Optional: one system call for many; NULL loops over watch/unwatch. */
	int (*watch_batch)(struct mapwatch *mw, struct mapwatch_watch_req *req,
			   size_t n);
	int (*unwatch_batch)(struct mapwatch *mw,
			     const struct mapwatch_handle *h, size_t n,
			     int *status);
	/* info: NULL, or max words of why each event changed (MW_INFO). */
	int (*read)(struct mapwatch *mw, struct mapwatch_event *ev,
		    uint32_t *info, size_t max);
	/* [start, end) changed, told by the caller (mapwatch_invalidate). */
	int (*invalidate)(struct mapwatch *mw, uintptr_t start, uintptr_t end);
	/* New max_watches; only called with no watch active (-EBUSY). */
	int (*resize)(struct mapwatch *mw, size_t max);
	bool (*pending)(const struct mapwatch *mw);
	void (*stats)(const struct mapwatch *mw, struct mapwatch_stats *s);
	void (*close)(struct mapwatch *mw);
};

/*
 * Why a watch changed, in one word laid out as the kernel's record carries
 * it (struct kdreg2_event._alignment with MAPWATCH_POLICY_REASONS): the
 * reason in bits 0-7, the cause in 8-15, MAPWATCH_EVENT_F_* above.
 */
#define MW_INFO(reason, cause) ((uint32_t)(reason) | (uint32_t)(cause) << 8)
#define MW_INFO_REASON(i) ((i) & 0xffU)
#define MW_INFO_CAUSE(i) (((i) >> 8) & 0xffU)
#define MW_INFO_FLAGS(i) ((i) & ~0xffffU)
/* The word of a range event folding changes a and b: the reason and the
 * cause each where they agree, else unknown; a flag if both have it (the
 * kernel's covering record, module/reason.c). */
static inline uint32_t mw_info_merge(uint32_t a, uint32_t b)
{
	uint32_t w = a & b & ~0xffffU;

	if (MW_INFO_REASON(a) == MW_INFO_REASON(b))
		w |= MW_INFO_REASON(a);
	if (MW_INFO_CAUSE(a) == MW_INFO_CAUSE(b))
		w |= MW_INFO_CAUSE(a) << 8;
	return w;
}

/* mapwatch_invalidate() and the cache's own invalidations. */
#define MW_INFO_USER MW_INFO(MAPWATCH_REASON_USER, MAPWATCH_CAUSE_IOCTL)

/* A watch of the user-space backends (userfaultfd, manual). */
enum { SLOT_FREE, SLOT_LIVE, SLOT_CHANGED };

struct mw_slot {
	_Atomic uintptr_t start, last;
	_Atomic int state;
	_Atomic bool unmapped;		/* userfaultfd: an unmap or move hit it */
	uint64_t cookie;
};

/*
 * The user-space backends keep generations in user memory.  The thread that
 * reports changes (the userfaultfd reader) takes up.mons_lock (read) and,
 * under it, each monitor's ev_lock; only when it fails for good, up.lock
 * and then ev_lock (backend_uffd.c, reader_failed()).  None of them is held
 * across anything that can unmap memory or wait for the reader, so an
 * unmapping thread waiting for that reader can never wait for us.
 *
 * Layers, each calling only those below it:
 *   cache.c            (the cache API)
 *   monitor.c, compat.c (the monitor API: opens and dispatches to ...)
 *   backend_kernel.c, backend_uffd.c (and the manual backend of user.c)
 *   user.c             (slots and event ring of the user-space backends)
 *   errors.c, abi.c    (last error, range check; sized structs)
 *
 * Lock order, outermost first; a thread holding one may take only those
 * after it:
 *   c->lock          a cache's (cache.c); never two caches' at once, and
 *                    no monitor call is made under it
 *   c->tree_lock     the cache's interval tree, under c->lock or alone
 *   mw->share_lock   the caches of a monitor; never with a c->lock held:
 *                    a cache is pinned under it, then it is dropped
 *   up.lock          backend_uffd.c: the process's userfaultfd, its
 *                    register/unregister ioctls, the monitor list; the
 *                    reader takes it only in reader_failed()
 *   up.mons_lock     backend_uffd.c, rwlock: the reader holds it (read)
 *                    while it hands events to the monitors
 *   mw->lock         a monitor's watch/unwatch/read (user.c)
 *   u->ev_lock       a user-space monitor's event ring (user.c); all the
 *                    reader takes under mons_lock or up.lock
 * The process-wide locks (up.*) come before any monitor's, so the reader
 * reaches ev_lock only, never mw->lock; the sequence mw_uffd_seq is no
 * lock (see mw_settle()).  (The list of moved ranges and its moved_lock,
 * which the reader also took, are gone: backend_uffd.c.)
 */
struct mw_user {
	uint32_t *gens;			/* one word per slot */
	struct mw_slot *slots;
	uint32_t *free_slots;
	size_t nfree;			/* under mw->lock */
	_Atomic size_t hw;		/* slots ever used: [0, hw) */
	pthread_mutex_t ev_lock;
	struct mapwatch_event *ring;
	uint32_t *ring_info;		/* why, per ring entry (MW_INFO) */
	size_t ring_size, ring_head, ring_count;
	bool ovf;
	uintptr_t ovf_start, ovf_last;
	uint32_t ovf_info;		/* what all folded share */
	_Atomic uint64_t events, overflows;
	_Atomic size_t live;
	int efd;			/* eventfd: readable while pending */
	/* userfaultfd: the process's monitors, under the backend's locks */
	struct mapwatch *next;
	_Atomic bool dead;		/* the reader thread failed (why in
					   mw->err) */
	struct mw_old_gens {		/* generation words before a resize */
		struct mw_old_gens *next;
		uint32_t *gens;
	} *old_gens;
};

struct mapwatch {
	enum mapwatch_backend backend;
	const struct mw_ops *ops;
	pid_t owner;
	unsigned long fork_gen;		/* mw_fork_gen when opened */
	uint64_t features;		/* MAPWATCH_F_* */
	size_t max;
	int fd;				/* what mapwatch_fd() returns */
	pthread_mutex_t lock;		/* watch/unwatch/read */
	char err[200];			/* why it is dead (fork, reader) */
	/* kernel backend */
	const struct kdreg2_status_data *st;
	bool batch;
	bool plain_kdreg2;		/* no PROBE: HPE's module, its layout */
	uint64_t kfeatures;		/* MAPWATCH_FEATURE_* of PROBE */
	bool reasons;			/* POLICY_REASONS set: records say why */
	size_t st_max;			/* max_regions the area was mapped for */
	/* user-space backends */
	struct mw_user u;
	/* caches over this monitor (cache.c), under share_lock */
	pthread_mutex_t share_lock;
	pthread_cond_t share_cond;	/* a cache's pins dropped to 0 */
	struct mapwatch_cache *caches;
	uint64_t share_batch;		/* event batches routed */
};

/*
 * errors.c, the bottom layer (it calls nothing of the library): the
 * calling thread's last failure, about one monitor (mapwatch_strerror()),
 * and the range check of every watch entry point.
 */
void mw_seterr(struct mapwatch *mw, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* This thread's last failure if it was about mw, else NULL. */
const char *mw_last_error(const struct mapwatch *mw);

/*
 * Bumped in every child by a pthread_atfork() handler: a monitor whose
 * fork_gen differs was opened by an ancestor.  One load, so the cache's hit
 * path can afford it (getpid() is a system call).
 */
extern _Atomic unsigned long mw_fork_gen;

static inline bool mw_forked(const struct mapwatch *mw)
{
	return atomic_load_explicit(&mw_fork_gen, memory_order_relaxed) !=
	       mw->fork_gen;
}

/* 0, or -EIO (with the reason in mw->err) in a child after fork(). */
int mw_check_owner(const struct mapwatch *mw);

/* errors.c: -EINVAL (and the reason) for an empty or wrapping range or the
 * reserved cookie; what every watch entry point checks first. */
int mw_check_range(struct mapwatch *mw, const void *addr, size_t len,
		   uint64_t cookie);

/*
 * abi.c: the structs that grow.  A caller's struct of usize bytes is read
 * as the kernel's copy_struct_from_user() does: a shorter one (an older
 * header) has its missing fields zeroed, a longer one (a newer header) must
 * have zeros beyond what the library knows (-E2BIG), and one shorter than
 * minsize (the first release's struct) is refused (-EINVAL).  Output
 * structs get min(usize, ksize) bytes and zeros beyond.
 */
#define mw_offsetofend(T, f) (offsetof(T, f) + sizeof(((T *)0)->f))
#define MW_STATS_SIZE_1_0 mw_offsetofend(struct mapwatch_stats, skipped)
#define MW_CACHE_OPS_SIZE_1_0 mw_offsetofend(struct mapwatch_cache_ops, release)
#define MW_CACHE_CONFIG_SIZE_1_0 mw_offsetofend(struct mapwatch_cache_config, align)
#define MW_CACHE_STATS_SIZE_1_0 \
	mw_offsetofend(struct mapwatch_cache_stats, covering_hits)
#define MW_CACHE_REQ_SIZE_1_2 \
	mw_offsetofend(struct mapwatch_cache_req, req_flags)
int mw_struct_in(void *dst, size_t ksize, const void *src, size_t usize,
		 size_t minsize);
void mw_struct_out(void *dst, size_t usize, const void *src, size_t ksize);

/* monitor.c: mapwatch_read_events() with why each event changed (MW_INFO
 * words in info[]), for the cache. */
int mw_read_events_info(struct mapwatch *mw, struct mapwatch_event *ev,
			uint32_t *info, size_t max);

int mw_kernel_open(struct mapwatch *mw, const char **why);
int mw_uffd_open(struct mapwatch *mw, const char **why);
int mw_manual_open(struct mapwatch *mw, const char **why);

/* user.c: the slot table and event ring of the user-space backends */
int mw_user_init(struct mapwatch *mw);
void mw_user_fini(struct mapwatch *mw);
int mw_user_watch(struct mapwatch *mw, uintptr_t addr, size_t len,
		  uint64_t cookie, struct mapwatch_handle *h);
int mw_user_unwatch(struct mapwatch *mw, const struct mapwatch_handle *h);
/* mw_user_unwatch that also says whether this call freed the slot. */
int mw_user_unwatch_freed(struct mapwatch *mw, const struct mapwatch_handle *h,
			  bool *freed);
int mw_user_read(struct mapwatch *mw, struct mapwatch_event *ev,
		 uint32_t *info, size_t max);
bool mw_user_pending(const struct mapwatch *mw);
void mw_user_stats(const struct mapwatch *mw, struct mapwatch_stats *s);
void mw_user_invalidate(struct mapwatch *mw, uintptr_t start, uintptr_t end);
void mw_user_invalidate_ex(struct mapwatch *mw, uintptr_t start, uintptr_t end,
			   bool unmapped, uint32_t info);
int mw_user_invalidate_op(struct mapwatch *mw, uintptr_t start, uintptr_t end);
int mw_user_resize(struct mapwatch *mw, size_t max);
/* mw_user_resize in steps: allocate, swap under the caller's locks, free
 * after them (user.c says why). */
struct mw_user_tables {
	uint32_t *gens, *free_slots;
	struct mw_slot *slots;
	struct mw_old_gens *old;
};
int mw_user_resize_prepare(size_t max, struct mw_user_tables *t);
int mw_user_resize_swap(struct mapwatch *mw, size_t max,
			struct mw_user_tables *t);
void mw_user_resize_free(struct mw_user_tables *t);

/*
 * The userfaultfd reader's sequence: odd from just before it read()s events
 * until it has applied them, even otherwise.  The kernel lets an unmapping
 * thread go once its event is read, a moment before the watch changes; a
 * thread that finds the sequence odd waits for it to move, and then sees
 * the change of every call that returned before it looked.  One load when
 * the reader is idle (or there is none).
 */
extern _Atomic uint32_t mw_uffd_seq;
void mw_uffd_settle_wait(uint32_t seq);

static inline void mw_settle(void)
{
	uint32_t v = atomic_load_explicit(&mw_uffd_seq, memory_order_acquire);

	if (v & 1)
		mw_uffd_settle_wait(v);
}

/*
 * mw_settle() for one monitor: only a userfaultfd monitor has a reader to
 * wait for (one per process, serving every userfaultfd monitor, so the
 * sequence stays process-wide).  A cache over the kernel or manual backend
 * then never waits for another monitor's reader (review F23).  The
 * calls that know no monitor (mapwatch_cache_entry_changed(),
 * mapwatch_changed_sync()) keep mw_settle(): waiting is the safe side.
 */
static inline void mw_settle_mon(const struct mapwatch *mw)
{
	if (mw->backend == MAPWATCH_BACKEND_USERFAULTFD)
		mw_settle();
}

/* cache.c, for tests only: add n references to a held entry, return the
 * count (not exported from the shared library). */
struct mapwatch_cache_entry;
uint32_t mw_cache_test_refs(struct mapwatch_cache_entry *e, int64_t n);

/* Called in the child after fork(): the child has no reader thread. */
void mw_uffd_atfork_child(void);

#endif /* MAPWATCH_INTERNAL_H */
