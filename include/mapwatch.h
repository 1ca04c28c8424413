/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libmapwatch: know the moment registered memory changes its translation,
 * and a registration cache built on that.
 *
 * Monitor:  mapwatch_open() -> mapwatch_watch(addr, len, cookie, &h) ->
 *           mapwatch_changed(&h) (inline, one load) -> mapwatch_unwatch().
 *           Events (which cookies changed) come from mapwatch_drain(); put
 *           mapwatch_fd() in your poll/epoll loop to learn when to drain.
 * Cache:    mapwatch_cache_create() over your reg/dereg callbacks ->
 *           mapwatch_cache_get(addr, len) -> use the registration ->
 *           mapwatch_cache_put().
 *
 * Errors (the whole convention is in mapwatch(7), "Errors"): functions
 * returning int return 0 (or a count, or an fd) on success and a negative
 * errno on failure (errno itself is then unspecified); functions returning
 * a pointer return NULL and set errno; the others cannot fail, and answer
 * "nothing" (false, 0, NULL; an entry "changed") for a NULL object.  An
 * errno means the same in every function.  mapwatch_strerror() explains
 * the last failure of a monitor in words.  After fork() the child's copy
 * of a monitor fails every call with -EIO (its regions belong to the
 * parent), and a cache over it returns no entry (errno EIO); the child
 * opens a fresh monitor (and cache).  mapwatch_close() in the child
 * releases the copy without disturbing the parent.
 *
 * ABI: libmapwatch.so.1 exports only the mapwatch_* functions declared here,
 * each with a symbol version (MAPWATCH_1.0, MAPWATCH_1.1...); a function
 * whose behaviour changes gets a new version and the old one stays for old
 * binaries.  The structs that grow (mapwatch_stats, mapwatch_cache_ops,
 * mapwatch_cache_config, mapwatch_cache_stats) only ever grow at their end
 * and are passed with their size: the inline wrappers below (for example
 * mapwatch_cache_create()) pass sizeof() of this header's struct to the
 * exported *_sized() function, which reads a shorter (older) struct as if
 * its missing fields were zero, refuses a longer (newer) one whose extra
 * bytes are not all zero (E2BIG), and fills only the caller's size of an
 * output struct.  So a program built against an older header keeps working
 * with a newer library, and one built against a newer header either works
 * with an older library or fails cleanly.
 *
 * Frozen: struct mapwatch_handle (read by the inline mapwatch_changed()),
 * struct mapwatch_watch_req and struct mapwatch_event (they travel in
 * arrays) can never change size or layout within libmapwatch.so.1; what
 * they cannot carry goes into a new function (mapwatch_changed_sync()).
 *
 * dlopen(): dlsym() finds a function only under its default version, the
 * one this header's programs link.  The names of the inline wrappers below
 * (mapwatch_cache_create, mapwatch_get_stats, mapwatch_cache_get_stats)
 * exist in the library only as hidden MAPWATCH_1.0 versions for 1.0.0's
 * binaries, which dlsym() never returns: look up the *_sized() functions
 * they call (mapwatch_cache_create_sized, mapwatch_get_stats_sized,
 * mapwatch_cache_get_stats_sized, mapwatch_cache_get_req_sized) and pass
 * sizeof() yourself.  dlsym(h, "mapwatch_open") is MAPWATCH_1.3's (this
 * header's AUTO); dlvsym(h, "mapwatch_open", "MAPWATCH_1.0") is 1.0.0's.
 *
 * Threads: every function may be called from any thread at the same time,
 * on the same monitor or cache, except that mapwatch_close() and
 * mapwatch_cache_destroy() must be the last call on their object.  The text
 * of mapwatch_strerror() is the calling thread's last failure on that
 * monitor.
 *
 * What each backend sees (mapwatch_features() tells at run time):
 *   kernel       every change of a watched translation, whoever causes it
 *                (munmap, mremap, MAP_FIXED, madvise DONTNEED/FREE/REMOVE,
 *                brk, shmdt, copy-on-write, migration, truncation...), before
 *                the call that causes it returns; never protection-only
 *                changes (mprotect, fork's write-protect, NUMA hinting).
 *   userfaultfd  only what the process does to its own address space:
 *                munmap, mremap, MAP_FIXED, brk, madvise DONTNEED/FREE/
 *                REMOVE.  Blind to copy-on-write after fork, migration,
 *                swap, KSM and to other processes; SysV shared memory and
 *                most file mappings cannot be watched at all (EINVAL), nor
 *                can a range with unmapped pages (EINVAL: memory mapped
 *                into the hole later would go unseen).  The kernel
 *                releases the unmapping thread as soon as the library's
 *                reader thread has read the event, a moment before
 *                mapwatch_changed() turns true: not synchronous.  The
 *                cache (get, entry_changed) waits out that moment, so a
 *                thread whose munmap returned, or one that learned of it
 *                afterwards (a lock, a message, a join), never gets the
 *                old registration.  Not covered: (1) another thread that
 *                maps new memory at the freed address before the reader
 *                has read the event (the kernel frees the range first,
 *                then queues the event): for as long as the reader takes
 *                to run, microseconds, milliseconds on a busy CPU, its get
 *                may return the old registration, and the library ships
 *                no check for it (the only probe the userfaultfd ioctls
 *                offer cannot tell our registration from another
 *                library's and clears that library's write-protection);
 *                (2) madvise DONTNEED/FREE/REMOVE: the event comes before
 *                the pages are dropped, and a registration of them made
 *                in between is not reported until their next change.  The
 *                kernel backend has neither window.  One userfaultfd per
 *                process, shared by its monitors; memory another library's
 *                userfaultfd watches: EBUSY.  Memory mremap moved stays
 *                registered with it (the library cannot prove later that
 *                it is still its own) until unmapped or the last monitor
 *                closes: another library gets EBUSY there meanwhile.
 *   manual       only mapwatch_invalidate(): a test double, or for
 *                applications that know when they free memory.
 */
#ifndef MAPWATCH_H
#define MAPWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; mapwatch_version() is the library's. */
#define MAPWATCH_VERSION_MAJOR	1
#define MAPWATCH_VERSION_MINOR	4
#define MAPWATCH_VERSION_PATCH	0
#define MAPWATCH_VERSION_CODE(major, minor, patch) \
	(((major) << 16) | ((minor) << 8) | (patch))
/* True when this header is at least major.minor.patch. */
#define MAPWATCH_CHECK_VERSION(major, minor, patch)			\
	(MAPWATCH_VERSION_CODE(MAPWATCH_VERSION_MAJOR, MAPWATCH_VERSION_MINOR, \
			       MAPWATCH_VERSION_PATCH) >=		\
	 MAPWATCH_VERSION_CODE(major, minor, patch))

/* What the shared library exports (it is built -fvisibility=hidden). */
#if defined(__GNUC__) && __GNUC__ >= 4
#define MAPWATCH_EXPORT __attribute__((visibility("default")))
#else
#define MAPWATCH_EXPORT
#endif

/* The library's version, MAPWATCH_VERSION_CODE(major, minor, patch): may be
 * newer than the header a program was built with. */
MAPWATCH_EXPORT unsigned int mapwatch_version(void);

enum mapwatch_backend {
	MAPWATCH_BACKEND_AUTO = 0,	/* the kernel backend with
					   MAPWATCH_F_SYNC, else an error
					   (binaries linked before 1.3
					   bind MAPWATCH_1.0: AUTO_ANY,
					   1.0.0's AUTO; see
					   mapwatch_open(3), VERSIONS) */
	MAPWATCH_BACKEND_KERNEL,	/* /dev/mapwatch, else /dev/kdreg2 */
	MAPWATCH_BACKEND_USERFAULTFD,	/* no module needed; sees less */
	MAPWATCH_BACKEND_MANUAL,	/* changes only via mapwatch_invalidate() */
	MAPWATCH_BACKEND_AUTO_ANY,	/* AUTO, else HPE's kdreg2, else
					   userfaultfd: `why` says which
					   and what it cannot see */
};

/* Cookie of an event that covers a range rather than one watch. */
#define MAPWATCH_COOKIE_RANGE ((uint64_t)-1)

struct mapwatch;

/*
 * A watch.  Fill it with mapwatch_watch(); it may be copied.  Only
 * mapwatch_changed() looks inside.  Frozen (see "ABI" above): the inline
 * mapwatch_changed() of every program reads this layout.
 */
struct mapwatch_handle {
	const uint32_t *word;	/* the watch's generation word */
	uint32_t gen;		/* its value while unchanged */
	uint32_t slot;
	uint64_t cookie;
};

/* A watch request of mapwatch_watch_batch().  Frozen: passed in arrays. */
struct mapwatch_watch_req {
	const void *addr;		/* in */
	size_t len;			/* in */
	uint64_t cookie;		/* in */
	struct mapwatch_handle h;	/* out, when status is 0 */
	int status;			/* out: 0 or what mapwatch_watch returns */
};

/* mapwatch_features() bits. */
#define MAPWATCH_F_SYNC		(1ULL << 0)	/* changed() is true before the
						   changing call returns */
#define MAPWATCH_F_ALL_CHANGES	(1ULL << 1)	/* sees every kind of change,
						   by any process */
#define MAPWATCH_F_BATCH	(1ULL << 2)	/* *_batch() make one system
						   call per batch */

/* Grows at its end (mapwatch_get_stats() passes its size). */
struct mapwatch_stats {
	uint64_t watched;	/* watches active now */
	uint64_t events;	/* changes reported since open */
	uint64_t overflows;	/* events folded into range events */
	uint64_t skipped;	/* protection-only invalidations ignored */
};

/* One change: the watch with this cookie (or every watch overlapping
 * [addr, addr + len) when cookie is MAPWATCH_COOKIE_RANGE) changed.
 * Frozen: read in arrays. */
struct mapwatch_event {
	uintptr_t addr;
	size_t len;
	uint64_t cookie;
};

/*
 * Why a watch changed (since 1.4): the reason and cause of
 * struct mapwatch_event_ex, mapwatch_cache_entry_reason() and the cache's
 * statistics.  The values are the kernel's (enum mapwatch_reason and enum
 * mapwatch_cause of <mapwatch/mapwatch_uapi.h>), under names of their own
 * so that both headers can be included.  What each backend tells:
 *   kernel       mapwatch.ko with MAPWATCH_FEATURE_REASONS: what its mmu
 *                notifier was told and by whom (module/README.md lists,
 *                per kernel, what it can tell apart); an older module or
 *                HPE's kdreg2: MAPWATCH_CHANGE_UNKNOWN, MAPWATCH_BY_UNKNOWN.
 *   userfaultfd  UNMAPPED/BY_MUNMAP for its UNMAP event (munmap, and also
 *                mmap(MAP_FIXED), brk or mremap shrinking over the range:
 *                userfaultfd does not tell them apart), UNMAPPED/
 *                BY_MADVISE for REMOVE (madvise DONTNEED/FREE/REMOVE),
 *                MOVED/BY_MREMAP for REMAP.
 *   every backend  USER/BY_IOCTL for mapwatch_invalidate() (and the
 *                cache's mapwatch_cache_invalidate() and
 *                mapwatch_cache_invalidate_entry()).
 * A reason is for people and statistics: a cache must still drop the
 * registration (see MAPWATCH_EVENT_F_PAGES_KEPT).  A newer kernel may
 * report values beyond these: mapwatch_reason_name() and
 * mapwatch_cause_name() return NULL for them.
 */
enum mapwatch_change_reason {
	MAPWATCH_CHANGE_UNKNOWN = 0,	/* not told (older module, kdreg2) */
	MAPWATCH_CHANGE_UNMAPPED = 1,	/* munmap, mmap over it, madvise
					   DONTNEED/FREE/REMOVE, brk, shmdt */
	MAPWATCH_CHANGE_MOVED = 2,	/* mremap moved it */
	MAPWATCH_CHANGE_REPLACED = 3,	/* same mapping, other pages: copy-
					   on-write, migration (NUMA
					   balancing, compaction), KSM,
					   THP collapse or split, swap-out */
	MAPWATCH_CHANGE_PROTECTION = 4,	/* protection reduced (delivered only
					   with the module's
					   ALL_INVALIDATIONS policy) */
	MAPWATCH_CHANGE_EXIT = 5,	/* the address space is going away */
	MAPWATCH_CHANGE_USER = 6,	/* mapwatch_invalidate() and the like */
};
/* Slots of mapwatch_cache_stats.by_reason: room for reasons to come. */
#define MAPWATCH_CHANGE_REASON_SLOTS 16

enum mapwatch_change_cause {
	MAPWATCH_BY_UNKNOWN = 0,
	MAPWATCH_BY_MUNMAP = 1,		/* munmap() */
	MAPWATCH_BY_MMAP = 2,		/* mmap(MAP_FIXED) over the range */
	MAPWATCH_BY_MADVISE = 3,	/* madvise(), process_madvise() */
	MAPWATCH_BY_BRK = 4,		/* brk() shrinking the heap */
	MAPWATCH_BY_SHMDT = 5,		/* shmdt() */
	MAPWATCH_BY_MREMAP = 6,		/* mremap() */
	MAPWATCH_BY_MPROTECT = 7,	/* mprotect(), pkey_mprotect() */
	MAPWATCH_BY_FORK = 8,		/* fork(), clone() */
	MAPWATCH_BY_FAULT = 9,		/* a fault of the process: copy-on-
					   write, NUMA migration on fault,
					   THP split */
	MAPWATCH_BY_NUMA_SCAN = 10,	/* NUMA balancing's scan */
	MAPWATCH_BY_MIGRATE = 11,	/* move_pages(), migrate_pages(),
					   mbind(MPOL_MF_MOVE) */
	MAPWATCH_BY_COMPACTION = 12,	/* memory compaction */
	MAPWATCH_BY_RECLAIM = 13,	/* kswapd, direct reclaim */
	MAPWATCH_BY_KSM = 14,		/* ksmd merging pages */
	MAPWATCH_BY_KHUGEPAGED = 15,	/* khugepaged collapsing a THP */
	MAPWATCH_BY_SOFT_DIRTY = 16,	/* clear_refs */
	MAPWATCH_BY_EXIT = 17,		/* exit, exec */
	MAPWATCH_BY_IOCTL = 18,		/* mapwatch_invalidate() and the
					   like (the module's INVALIDATE) */
	MAPWATCH_BY_SYSCALL = 19,	/* another system call (truncate,
					   fallocate...) */
	MAPWATCH_BY_KTHREAD = 20,	/* another kernel thread */
};
/* Slots of mapwatch_cache_stats.by_cause. */
#define MAPWATCH_CHANGE_CAUSE_SLOTS 32

/* mapwatch_event_ex.flags: the frames behind the range did not change,
 * only the translation's permissions did (the same bit as the kernel's,
 * in <mapwatch/mapwatch_uapi.h>).  Never a reason to keep a registration:
 * the protection was reduced (a registration with remote write access
 * would let the NIC write where the process made memory read-only), and
 * the watch is gone with the event.  The cache drops the entry (lib/README.md). */
#define MAPWATCH_EVENT_F_PAGES_KEPT	(1U << 16)

/* A change, and why (since 1.4; mapwatch_read_events_ex()).  Grows at its
 * end: arrays of it are read with the caller's sizeof(). */
struct mapwatch_event_ex {
	uintptr_t addr;
	size_t len;
	uint64_t cookie;	/* or MAPWATCH_COOKIE_RANGE */
	uint32_t reason;	/* MAPWATCH_CHANGE_*; a range event: the
				   reason of every change folded into it,
				   or UNKNOWN when they differ */
	uint32_t cause;		/* MAPWATCH_BY_* (a range event: as the
				   reason) */
	uint32_t flags;		/* MAPWATCH_EVENT_F_* */
	uint32_t reserved;	/* 0 */
};

/* The name of a reason or cause ("unmapped", "munmap": the kernel's
 * names, as /proc/PID/fdinfo and `mapwatch why` print them), NULL for a
 * value this library does not know.  Since 1.4. */
MAPWATCH_EXPORT const char *mapwatch_reason_name(uint32_t reason);
MAPWATCH_EXPORT const char *mapwatch_cause_name(uint32_t cause);

/*
 * Open a monitor for up to max_watches concurrent watches.  On failure
 * returns a negative errno and, when why is not NULL, a sentence saying
 * what to do (module not loaded, permission, userfaultfd disabled...).
 * On success *why is NULL, unless AUTO_ANY settled for less than
 * MAPWATCH_F_SYNC: then it says what it fell back to and why.  *why may
 * point into a buffer of the calling thread that its next mapwatch_open()
 * overwrites (and that ends with the thread): copy it to keep it.
 */
MAPWATCH_EXPORT int mapwatch_open(struct mapwatch **mw, enum mapwatch_backend backend,
		  size_t max_watches, const char **why);
MAPWATCH_EXPORT void mapwatch_close(struct mapwatch *mw);
MAPWATCH_EXPORT enum mapwatch_backend mapwatch_backend(const struct mapwatch *mw);
/* MAPWATCH_F_* of this monitor.  MAPWATCH_F_BATCH is off when the module
 * lacks the batch ioctls or the environment sets MAPWATCH_NO_BATCH=1. */
MAPWATCH_EXPORT uint64_t mapwatch_features(const struct mapwatch *mw);
MAPWATCH_EXPORT const char *mapwatch_backend_name(enum mapwatch_backend backend);
MAPWATCH_EXPORT const char *mapwatch_strerror(const struct mapwatch *mw);

/*
 * Watch [addr, addr + len).  The cookie names it in events and must be
 * unique among this monitor's active watches (and not
 * MAPWATCH_COOKIE_RANGE).  -ENOSPC when max_watches are active.
 */
MAPWATCH_EXPORT int mapwatch_watch(struct mapwatch *mw, const void *addr, size_t len,
		   uint64_t cookie, struct mapwatch_handle *h);
/* Stop watching; a watch that already changed, or was already unwatched,
 * is fine (returns 0).  -EINVAL for a handle no watch ever filled. */
MAPWATCH_EXPORT int mapwatch_unwatch(struct mapwatch *mw, const struct mapwatch_handle *h);

/*
 * Many watches or unwatches at once: one system call per batch on the
 * kernel backend when the module offers it (MAPWATCH_F_BATCH), a loop
 * otherwise.  Each request succeeds or fails on its own (status, or
 * status[i] when status is not NULL); requests are handled in order.
 * Returns how many succeeded, or a negative errno when none could be tried
 * (-EIO after fork, -EINVAL for a NULL array).
 */
MAPWATCH_EXPORT int mapwatch_watch_batch(struct mapwatch *mw, struct mapwatch_watch_req *req,
			 size_t n);
MAPWATCH_EXPORT int mapwatch_unwatch_batch(struct mapwatch *mw, const struct mapwatch_handle *h,
			   size_t n, int *status);

/* True once the translation of any byte of the watch changed. One load. */
static inline bool mapwatch_changed(const struct mapwatch_handle *h)
{
	return __atomic_load_n(h->word, __ATOMIC_ACQUIRE) != h->gen;
}

/*
 * mapwatch_changed(), after waiting out the userfaultfd reader: true for
 * every change made by a call that returned before this one started (in
 * this thread, or in one that synchronized with it since), on every
 * backend.  One load more when no userfaultfd reader of the process is
 * mid-batch (always, in a process without a userfaultfd monitor);
 * otherwise it waits for the reader to apply the batch.
 * A NULL handle, or one no watch filled, reads changed.  Added in 1.3.0.
 */
MAPWATCH_EXPORT bool mapwatch_changed_sync(const struct mapwatch_handle *h);

/* Read up to max pending events; returns how many (0: none pending). */
MAPWATCH_EXPORT int mapwatch_read_events(struct mapwatch *mw, struct mapwatch_event *ev,
			 size_t max);
/*
 * mapwatch_read_events() with why each watch changed: fills up to max
 * events of size bytes each (pass sizeof(struct mapwatch_event_ex): a
 * larger size from a newer header gets zeros beyond what this library
 * knows), returns how many, or a negative errno: -EINVAL for a NULL array
 * or a size below 1.4's struct, -EIO in a child after fork.  Events read
 * by one of the two functions are gone for the other: a monitor's events
 * have one reader.  mapwatch_read_events() itself is unchanged (its
 * struct is frozen) and drops the reason.  Since 1.4.
 */
MAPWATCH_EXPORT int mapwatch_read_events_ex(struct mapwatch *mw,
					    struct mapwatch_event_ex *ev,
					    size_t max, size_t size);
/* Call fn for every pending event; returns how many. No lock is held
 * while fn runs, so fn may call any mapwatch function. */
MAPWATCH_EXPORT int mapwatch_drain(struct mapwatch *mw,
		   void (*fn)(void *arg, const struct mapwatch_event *ev),
		   void *arg);
/* True when events are pending (one load for the kernel backend). */
MAPWATCH_EXPORT bool mapwatch_pending(const struct mapwatch *mw);
/* Readable (POLLIN) while events are pending; -EIO in a child after fork. */
MAPWATCH_EXPORT int mapwatch_fd(const struct mapwatch *mw);
/* Fill the first size bytes of *s (the struct as the caller knows it):
 * 0, or -EINVAL for a NULL monitor or s. */
MAPWATCH_EXPORT int mapwatch_get_stats_sized(const struct mapwatch *mw,
					     struct mapwatch_stats *s,
					     size_t size);
static inline int mapwatch_get_stats(const struct mapwatch *mw,
				     struct mapwatch_stats *s)
{
	return mapwatch_get_stats_sized(mw, s, sizeof(*s));
}
/*
 * Report a change of [addr, addr + len) the monitor cannot see by itself
 * (a GPU allocator's hook, a dma-buf move, or every change on MANUAL):
 * every watch overlapping it reads changed and has its event queued when
 * this returns, as if the kernel had unmapped the range.  Since 1.2 also on
 * the kernel backend, through mapwatch.ko's INVALIDATE extension;
 * -EOPNOTSUPP on HPE's kdreg2 or an older module, which lack it.
 */
MAPWATCH_EXPORT int mapwatch_invalidate(struct mapwatch *mw, const void *addr, size_t len);
/*
 * Change max_watches (grow, or shrink) while no watch is active and no
 * event is pending: -EBUSY otherwise, and nothing changes.  The kernel
 * backend reconfigures its context (CONFIG_DATA; the status area may move,
 * handles of watches already gone keep reading changed); the other
 * backends reallocate their tables.  With watches active, open a second
 * monitor of the new size and move to it (mapwatch(7), "Growing").
 * -EINVAL for 0 or more than the backend allows (kernel: the module's
 * max_regions_limit, -ENOSPC).  Since 1.2.
 */
MAPWATCH_EXPORT int mapwatch_resize(struct mapwatch *mw, size_t max_watches);

/* --- registration cache ------------------------------------------------- */

struct mapwatch_cache;
struct mapwatch_cache_entry;

/* Grows at its end (mapwatch_cache_create() passes its size). */
struct mapwatch_cache_ops {
	/* Register [addr, addr + len); return the registration, or NULL
	 * with errno set. */
	void *(*reg)(void *ctx, void *addr, size_t len, int flags);
	/* Release what reg returned. */
	void (*dereg)(void *ctx, void *reg);
	void *ctx;
	/* Optional: called with ctx by mapwatch_cache_destroy(), last. */
	void (*release)(void *ctx);
	/* Since 1.1, optional; used instead of reg when set.  Also gets the
	 * arg of mapwatch_cache_get_arg() (NULL from mapwatch_cache_get()),
	 * and the entry's storage (cfg.entry_size bytes, zeroed; NULL when
	 * entry_size is 0) to keep keys and handles in without a malloc.
	 * arg is NOT part of the cache's key: a hit returns the entry some
	 * earlier miss registered with its own arg.  Pass in arg only what
	 * every registration of the cache may share, or what the get's
	 * flags (matched) also say; for a protection domain, create one
	 * cache per domain (several may share one monitor), as UCX has one
	 * rcache per memory domain.  Returns what reg returns. */
	void *(*reg_ex)(void *ctx, void *addr, size_t len, int flags,
			void *arg, void *data);
	/* Since 1.1, optional: the cache learnt that entry e changed (its
	 * event, or a lookup or put that saw it) and took it out.  Called
	 * once per cached entry, with no lock held, before dereg (which
	 * follows when the last reference is put, at once if none is held):
	 * revoke remote keys, memory windows, peers' copies.  May call any
	 * cache function but destroy; must not put a reference it does not
	 * hold.  Since 1.4, mapwatch_cache_entry_reason() and
	 * mapwatch_cache_entry_cause() tell it why. */
	void (*invalidate)(void *ctx, struct mapwatch_cache_entry *e);
};

/* mapwatch_cache_config.flags */
#define MAPWATCH_CACHE_F_PASSTHROUGH (1ULL << 0) /* memory the monitor cannot
					watch (EINVAL from mapwatch_watch(): file
					or SysV shared memory on userfaultfd) is
					registered for this get alone, uncached and
					unwatched, and deregistered at its last put,
					instead of failing get */
/* mapwatch_cache_req.mem_type: host memory, watched by the monitor.  Any
 * other value is memory of a device (a GPU...), in the caller's own
 * numbering (libfabric's enum fi_hmem_iface, UCX's ucs_memory_type_t), of
 * the device named by mapwatch_cache_req.device: cached under that key,
 * never watched (the monitor cannot see it), and taken out only by
 * mapwatch_cache_invalidate(). */
#define MAPWATCH_MEM_HOST 0u

/* mapwatch_cache_req.req_flags */
#define MAPWATCH_CACHE_REQ_HUGE (1ULL << 0) /* widen to whole transparent huge
					pages (a PMD, 2 MiB on x86-64) where
					they are mapped */

/* A request of mapwatch_cache_get_req(); since 1.2, grows at its end. */
struct mapwatch_cache_req {
	void *addr;
	size_t len;
	int flags;		/* as mapwatch_cache_get()'s flags */
	uint32_t mem_type;	/* MAPWATCH_MEM_HOST (0) or the caller's */
	uint64_t device;	/* which device, for device memory */
	void *arg;		/* passed to ops.reg_ex */
	size_t align;		/* a power of two: widen the registration to
				   whole units of it (0: cfg.align), only
				   over pages that are mapped */
	uint64_t req_flags;	/* MAPWATCH_CACHE_REQ_* */
};

/* The largest mapwatch_cache_config.entry_size. */
#define MAPWATCH_CACHE_ENTRY_SIZE_MAX 65536

/* Grows at its end (mapwatch_cache_create() passes its size); a field the
 * caller's struct lacks is 0, the default. */
struct mapwatch_cache_config {
	size_t max_entries;	/* 0: no limit but the monitor's */
	size_t max_bytes;	/* 0: no limit */
	size_t align;		/* registrations cover whole units; 0: page */
	size_t entry_size;	/* since 1.1: bytes of storage per entry, for
				   reg_ex (mapwatch_cache_entry_data()) */
	uint64_t flags;		/* since 1.1: MAPWATCH_CACHE_F_* */
};

/* Grows at its end (mapwatch_cache_get_stats() passes its size). */
struct mapwatch_cache_stats {
	uint64_t hits, misses;
	uint64_t evict_lru, evict_invalid, evict_flush;
	uint64_t invalidations;		/* entries found changed */
	uint64_t registrations, deregistrations;
	uint64_t entries, bytes_registered;
	uint64_t covering_hits;		/* hits on an entry that starts below
					   the request (counted in hits too) */
	uint64_t uncached;		/* since 1.1: gets served by a
					   registration of their own, outside
					   the cache (every entry held, or
					   pass-through; since 1.3 also the
					   monitor full, below) */
	uint64_t passthrough;		/* since 1.1: of which memory the
					   monitor could not watch; since
					   1.3 also the gets served uncached
					   because the monitor was full (no
					   watch to be had: every watch of
					   the monitor held, or the backend
					   out of room; see
					   mapwatch_cache_get()), so it no
					   longer counts unwatchable memory
					   alone */
	/* Since 1.4: the invalidations above by MAPWATCH_CHANGE_* and
	 * MAPWATCH_BY_* (a value beyond the slots counts in [0], unknown);
	 * an entry a get or put finds changed by its watch has the pending
	 * events read first, so it counts as unknown only when its event
	 * was not queued yet (or the backend does not say). */
	uint64_t by_reason[MAPWATCH_CHANGE_REASON_SLOTS];
	uint64_t by_cause[MAPWATCH_CHANGE_CAUSE_SLOTS];
	uint64_t pages_kept;		/* of which the event said the pages
					   stayed (MAPWATCH_EVENT_F_PAGES_KEPT):
					   dropped all the same */
};

/*
 * Create a cache over a monitor.  The cache uses the monitor and reads its
 * events: keep it open until the cache is destroyed.  Several caches may
 * share one monitor (one cache per protection domain or NIC, as libfabric
 * shares a monitor between domains): whichever of them reads the events
 * takes the changed entries out of all of them, so one cache's
 * mapwatch_cache_progress() (or get) releases another's idle memory too,
 * its callbacks running in that thread.  Their entries together are
 * bounded by the monitor's max_watches (mapwatch_resize()).
 *
 * Policy:
 *  - A request [addr, addr + len) is widened to whole `align` units.  It
 *    hits any cached entry that covers the widened range and was registered
 *    with at least the requested flags (entry flags & flags == flags): an
 *    entry starting at the same unit (found through one hash, read without
 *    a lock), or a larger entry starting below it (found through an
 *    address-ordered index, searched only when the first lookup misses).
 *  - On a miss the widened range is registered as a new entry.  Entries may
 *    overlap and are never merged.  Since 1.3 the idle entries inside a new
 *    larger one that it serves in their place (same memory type and device,
 *    at least their flags; up to 64 per miss) are taken out and
 *    deregistered, so a growing prefix pins its pages once; held ones stay
 *    until evicted.  Threads missing on the same range at once
 *    register it once: the others wait for that registration.  When reg
 *    fails with ENOMEM, ENOSPC or EAGAIN, idle entries are evicted one at a
 *    time and reg is tried again.
 *  - Every hit checks the entry's watch (one load).  A changed entry is
 *    never returned: it leaves the cache when its event is read or when a
 *    lookup or a put sees it changed, and it is deregistered when its last
 *    reference is put (at once if nobody holds it).
 *  - The watch is placed before reg runs and checked after it returns, so
 *    a change racing with the registration is never missed, provided reg
 *    reaches the pages through the kernel's page tables (get_user_pages,
 *    as ibv_reg_mr does).  A plain load by the CPU may still see the old
 *    page, through a TLB entry not yet flushed, for a moment after the
 *    kernel has cleared the mapping and reported the change.
 *  - Idle entries (no reference held) are evicted past max_entries or
 *    max_bytes in CLOCK order (an LRU approximation: an entry hit since the
 *    hand last passed gets a second chance); held entries are never evicted.
 *    When the monitor is full, an idle entry is evicted to make room.
 *
 * Threads and callbacks: thread-safe.  A hit at an entry's start takes no
 * lock (a few loads, a compare-and-swap on the entry, the one-load check);
 * a hit inside a larger entry takes the address index's read lock; misses,
 * eviction, events and flush take the cache mutex.  reg, dereg and release are never called with a cache lock (or a
 * monitor lock) held, so they may take the application's own locks and may
 * call back into the cache (get, put, flush, stats; not destroy).  A get
 * from inside reg never waits for another thread's registration of the
 * range (which might itself wait for this one): it registers the range
 * itself, a duplicate entry at worst (since 1.3).  dereg
 * runs in the thread that drops the last reference: mapwatch_cache_put(),
 * mapwatch_cache_get() (evicting), mapwatch_cache_flush() or destroy.
 * Since 1.3 that get may be one on another cache over the same monitor:
 * when the monitor is full, a get evicts an idle entry of whichever cache
 * holds one (one holding a watch), so this cache's dereg may run in a
 * thread that uses another cache, inside its get.  Destroying another
 * cache from dereg: not while the monitor's events are being applied
 * (progress, or a get reading them), which holds the caches it serves.
 */
MAPWATCH_EXPORT struct mapwatch_cache *
mapwatch_cache_create_sized(struct mapwatch *mw,
			    const struct mapwatch_cache_ops *ops, size_t ops_size,
			    const struct mapwatch_cache_config *cfg,
			    size_t cfg_size);
/* NULL with errno set: EINVAL (NULL mw or ops; neither reg nor reg_ex, or
 * no dereg; align not a power of two; unknown flags; entry_size over
 * MAPWATCH_CACHE_ENTRY_SIZE_MAX; a size below the 1.0 struct), E2BIG (a newer struct whose
 * fields this library does not know are not zero), ENOMEM.  cfg may be
 * NULL: every default. */
static inline struct mapwatch_cache *
mapwatch_cache_create(struct mapwatch *mw, const struct mapwatch_cache_ops *ops,
		      const struct mapwatch_cache_config *cfg)
{
	return mapwatch_cache_create_sized(mw, ops, sizeof(*ops), cfg,
					   sizeof(*cfg));
}
/* Evict every entry, call ops.release, free the cache.  Put every entry
 * first: an entry must not outlive its cache.  In a child after fork()
 * this frees the child's copy and calls no callback: the registrations are
 * the parent's. */
MAPWATCH_EXPORT void mapwatch_cache_destroy(struct mapwatch_cache *c);
/* A referenced, valid entry covering [addr, addr + len), or NULL with
 * errno set: what the reg callback set (EIO if it set none), EINVAL (empty
 * or wrapping range), ENOMEM, EIO (in a child after fork), EAGAIN (the
 * range kept changing while being registered), or what the monitor's watch
 * failed with (userfaultfd: EINVAL for memory it cannot watch).
 *
 * No watch to be had: when the monitor is full, an idle entry of any cache
 * over the monitor is evicted to free one (its watches are shared by all
 * of them).  When every watch is held, or the backend cannot place one
 * more (userfaultfd: each watch may split a VMA, and past
 * vm.max_map_count, 65530 by default, the kernel refuses; some 30,000
 * separate buffers), the get is served by a registration of its own:
 * made now, uncached, unwatched (mapwatch_cache_entry_changed() stays
 * false), deregistered at its last put, counted in stats.uncached and
 * stats.passthrough.  Before 1.3 that get failed with ENOSPC. */
MAPWATCH_EXPORT struct mapwatch_cache_entry *mapwatch_cache_get(struct mapwatch_cache *c,
						void *addr, size_t len,
						int flags);
/* The same, passing arg to ops.reg_ex if this call registers (as UCX's
 * ucs_rcache_get() passes its arg to mem_reg).  Since 1.1. */
MAPWATCH_EXPORT struct mapwatch_cache_entry *
mapwatch_cache_get_arg(struct mapwatch_cache *c, void *addr, size_t len,
		       int flags, void *arg);
/* Lookup only (libfabric's ofi_mr_cache_find()): a referenced, valid entry
 * of host memory covering [addr, addr + len) with at least flags, found as
 * mapwatch_cache_get() finds a hit (pending events read first; a changed
 * entry met is taken out, never returned; counted as a hit), or NULL with
 * errno ENOENT.  Never registers, never waits for a registration under
 * way.  Put it with mapwatch_cache_put().  NULL also with EINVAL (NULL
 * cache, empty or wrapping range), EIO (in a child after fork).
 * Since 1.3. */
MAPWATCH_EXPORT struct mapwatch_cache_entry *
mapwatch_cache_find(struct mapwatch_cache *c, const void *addr, size_t len,
		    int flags);
/* One more reference on an entry the caller already holds (no lookup, no
 * hit counted); each is dropped by a mapwatch_cache_put().  Since 1.1. */
MAPWATCH_EXPORT void mapwatch_cache_hold(struct mapwatch_cache *c,
					 struct mapwatch_cache_entry *e);
/* Drop a reference taken by mapwatch_cache_get().  NULL is ignored. */
MAPWATCH_EXPORT void mapwatch_cache_put(struct mapwatch_cache *c,
			struct mapwatch_cache_entry *e);
/* What reg returned, and the range the entry covers (whole align units). */
MAPWATCH_EXPORT void *mapwatch_cache_entry_reg(const struct mapwatch_cache_entry *e);
MAPWATCH_EXPORT void *mapwatch_cache_entry_addr(const struct mapwatch_cache_entry *e);
MAPWATCH_EXPORT size_t mapwatch_cache_entry_len(const struct mapwatch_cache_entry *e);
/* True once the entry's memory changed translation (one load; with
 * userfaultfd, a wait of microseconds while its reader applies events),
 * or (since 1.3) mapwatch_cache_invalidate_entry() was called on it:
 * check it again after holding an entry across a long operation. */
MAPWATCH_EXPORT bool mapwatch_cache_entry_changed(const struct mapwatch_cache_entry *e);
/* Why the entry changed: MAPWATCH_CHANGE_* and MAPWATCH_BY_* (the event
 * that took it out; MAPWATCH_CHANGE_USER, MAPWATCH_BY_IOCTL for
 * mapwatch_cache_invalidate() and mapwatch_cache_invalidate_entry()).
 * UNKNOWN for an entry that has not changed, or whose backend did not say.
 * Meant for the invalidate callback.  Since 1.4. */
MAPWATCH_EXPORT uint32_t
mapwatch_cache_entry_reason(const struct mapwatch_cache_entry *e);
MAPWATCH_EXPORT uint32_t
mapwatch_cache_entry_cause(const struct mapwatch_cache_entry *e);
/* The entry's cfg.entry_size bytes of storage (NULL when 0).  Since 1.1. */
MAPWATCH_EXPORT void *mapwatch_cache_entry_data(const struct mapwatch_cache_entry *e);
/*
 * Progress without a get: read the monitor's pending events and take the
 * changed entries out (invalidate, then dereg of the idle ones), so that
 * memory the application freed is unpinned while it is quiet.  Returns
 * how many events were read, -EIO in a child after fork, -EINVAL for NULL.
 * mapwatch_cache_fd() is readable (POLLIN) while events are pending: put
 * it in a poll/epoll loop and call this when it is.  Since 1.1.
 */
MAPWATCH_EXPORT int mapwatch_cache_progress(struct mapwatch_cache *c);
MAPWATCH_EXPORT int mapwatch_cache_fd(const struct mapwatch_cache *c);
/*
 * A get with everything a communication library may say about the
 * request (libfabric's struct ofi_mr_info, UCX's ucs_rcache_get()
 * arguments): its memory type and device, the argument for reg_ex, an
 * alignment and huge-page widening.  A hit must match mem_type and device
 * and cover the request's pages; a miss registers the request widened to
 * the larger of cfg.align and req->align (and a huge page with
 * MAPWATCH_CACHE_REQ_HUGE), each side only as far as every page it adds is
 * mapped (a hole halves the unit there), and registers the request alone
 * when reg refuses the widened range (EFAULT, EINVAL, EACCES, EPERM).
 * Device memory is widened by align without that check.  Returns what
 * mapwatch_cache_get() returns; EINVAL also for an align that is not a
 * power of two or unknown req_flags, E2BIG for a newer struct with
 * unknown fields set.  Since 1.2.
 */
MAPWATCH_EXPORT struct mapwatch_cache_entry *
mapwatch_cache_get_req_sized(struct mapwatch_cache *c,
			     const struct mapwatch_cache_req *req, size_t size);
static inline struct mapwatch_cache_entry *
mapwatch_cache_get_req(struct mapwatch_cache *c,
		       const struct mapwatch_cache_req *req)
{
	return mapwatch_cache_get_req_sized(c, req, sizeof(*req));
}
/*
 * An external invalidation: the entries of [addr, addr + len) of this
 * memory type and device change (invalidate callback; dereg of idle ones
 * now, of held ones at their last put; mapwatch_cache_entry_changed() true
 * for held ones).  Host memory goes through mapwatch_invalidate() (so every
 * cache over the monitor and every watch of the range sees it; its errors,
 * such as -EOPNOTSUPP on HPE's kdreg2); device memory is this cache's
 * alone: call it on each cache that may hold the memory.  A get
 * registering device memory of the range at that moment (in reg_ex, in
 * another thread or in the callback itself) drops that registration and
 * registers again (since 1.3; up to a few times, then EAGAIN): what it
 * hands out was registered after the call.  0, -EINVAL for a
 * NULL cache or a wrapping range, -EIO in a child after fork.  Since 1.2.
 */
MAPWATCH_EXPORT int mapwatch_cache_invalidate(struct mapwatch_cache *c,
					      uint32_t mem_type, uint64_t device,
					      const void *addr, size_t len);
/*
 * Invalidate one entry the caller holds (UCX's
 * ucs_rcache_region_invalidate(rcache, region, cb, arg)): it leaves the
 * cache now (invalidate callback, if it was cached), so no get or find
 * started after this returns gets it, and mapwatch_cache_entry_changed()
 * reads true for it.  The caller still puts its reference.  When the last
 * reference is put and the registration deregistered, done(arg) runs,
 * once, in the thread that put it, with no lock held (done may be NULL).
 * 0; -EINVAL for a NULL cache or entry; -EBUSY when a done of this entry
 * is already pending (nothing changes); -EIO in a child after fork.
 * Since 1.3.
 */
MAPWATCH_EXPORT int mapwatch_cache_invalidate_entry(struct mapwatch_cache *c,
						    struct mapwatch_cache_entry *e,
						    void (*done)(void *arg),
						    void *arg);
/* Take every entry out of the cache: idle ones are deregistered now, held
 * ones when their last reference is put. */
MAPWATCH_EXPORT void mapwatch_cache_flush(struct mapwatch_cache *c);
/* Fill the first size bytes of *s: 0, or -EINVAL for a NULL cache or s. */
MAPWATCH_EXPORT int mapwatch_cache_get_stats_sized(struct mapwatch_cache *c,
						   struct mapwatch_cache_stats *s,
						   size_t size);
static inline int mapwatch_cache_get_stats(struct mapwatch_cache *c,
					   struct mapwatch_cache_stats *s)
{
	return mapwatch_cache_get_stats_sized(c, s, sizeof(*s));
}

#ifdef __cplusplus
}
#endif

#endif /* MAPWATCH_H */
