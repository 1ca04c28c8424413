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
 * Errors: functions returning int return 0 (or a count) on success and a
 * negative errno on failure; mapwatch_strerror() explains the last failure
 * of a monitor in words.  After fork() the child's copy of a monitor fails
 * every call with -EIO (its regions belong to the parent); the child opens a
 * fresh monitor.
 */
#ifndef MAPWATCH_H
#define MAPWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum mapwatch_backend {
	MAPWATCH_BACKEND_AUTO = 0,	/* kernel module, else userfaultfd */
	MAPWATCH_BACKEND_KERNEL,	/* /dev/mapwatch, else /dev/kdreg2 */
	MAPWATCH_BACKEND_USERFAULTFD,	/* no module needed; sees less */
	MAPWATCH_BACKEND_MANUAL,	/* changes only via mapwatch_invalidate() */
};

/* Cookie of an event that covers a range rather than one watch. */
#define MAPWATCH_COOKIE_RANGE ((uint64_t)-1)

struct mapwatch;

/*
 * A watch.  Fill it with mapwatch_watch(); it may be copied.  Only
 * mapwatch_changed() looks inside.
 */
struct mapwatch_handle {
	const uint32_t *word;	/* the watch's generation word */
	uint32_t gen;		/* its value while unchanged */
	uint32_t slot;
	uint64_t cookie;
};

struct mapwatch_stats {
	uint64_t watched;	/* watches active now */
	uint64_t events;	/* changes reported since open */
	uint64_t overflows;	/* events folded into range events */
	uint64_t skipped;	/* protection-only invalidations ignored */
};

/* One change: the watch with this cookie (or every watch overlapping
 * [addr, addr + len) when cookie is MAPWATCH_COOKIE_RANGE) changed. */
struct mapwatch_event {
	uintptr_t addr;
	size_t len;
	uint64_t cookie;
};

/*
 * Open a monitor for up to max_watches concurrent watches.  On failure
 * returns a negative errno and, when why is not NULL, a sentence saying
 * what to do (module not loaded, permission, userfaultfd disabled...).
 */
int mapwatch_open(struct mapwatch **mw, enum mapwatch_backend backend,
		  size_t max_watches, const char **why);
void mapwatch_close(struct mapwatch *mw);
enum mapwatch_backend mapwatch_backend(const struct mapwatch *mw);
const char *mapwatch_backend_name(enum mapwatch_backend backend);
const char *mapwatch_strerror(const struct mapwatch *mw);

/*
 * Watch [addr, addr + len).  The cookie names it in events and must be
 * unique among this monitor's active watches (and not
 * MAPWATCH_COOKIE_RANGE).  -ENOSPC when max_watches are active.
 */
int mapwatch_watch(struct mapwatch *mw, const void *addr, size_t len,
		   uint64_t cookie, struct mapwatch_handle *h);
/* Stop watching; a watch that already changed is fine (returns 0). */
int mapwatch_unwatch(struct mapwatch *mw, const struct mapwatch_handle *h);

/* True once the translation of any byte of the watch changed. One load. */
static inline bool mapwatch_changed(const struct mapwatch_handle *h)
{
	return __atomic_load_n(h->word, __ATOMIC_ACQUIRE) != h->gen;
}

/* Read up to max pending events; returns how many (0: none pending). */
int mapwatch_read_events(struct mapwatch *mw, struct mapwatch_event *ev,
			 size_t max);
/* Call fn for every pending event; returns how many. No lock is held
 * while fn runs, so fn may call any mapwatch function. */
int mapwatch_drain(struct mapwatch *mw,
		   void (*fn)(void *arg, const struct mapwatch_event *ev),
		   void *arg);
/* True when events are pending (one load for the kernel backend). */
bool mapwatch_pending(const struct mapwatch *mw);
/* Readable (POLLIN) while events are pending. */
int mapwatch_fd(const struct mapwatch *mw);
void mapwatch_get_stats(const struct mapwatch *mw, struct mapwatch_stats *s);
/* MANUAL backend (and any other): report a change of [addr, addr + len). */
int mapwatch_invalidate(struct mapwatch *mw, const void *addr, size_t len);

/* --- registration cache ------------------------------------------------- */

struct mapwatch_cache;
struct mapwatch_cache_entry;

struct mapwatch_cache_ops {
	/* Register [addr, addr + len); return the registration or NULL. */
	void *(*reg)(void *ctx, void *addr, size_t len, int flags);
	/* Release what reg returned. */
	void (*dereg)(void *ctx, void *reg);
	void *ctx;
};

struct mapwatch_cache_config {
	size_t max_entries;	/* 0: no limit but the monitor's */
	size_t max_bytes;	/* 0: no limit */
	size_t align;		/* registrations cover whole units; 0: page */
};

struct mapwatch_cache_stats {
	uint64_t hits, misses;
	uint64_t evict_lru, evict_invalid, evict_flush;
	uint64_t invalidations;		/* entries found changed */
	uint64_t registrations, deregistrations;
	uint64_t entries, bytes_registered;
};

/*
 * Create a cache over a monitor (the cache uses it; keep it open until the
 * cache is destroyed).  Thread-safe.  reg and dereg are never called with a
 * cache lock held, so they may take the application's own locks, and may
 * even call back into the cache (not for the entry being released).
 *
 * Policy: requests are widened to whole `align` units; a request hits an
 * entry that starts at the same unit, covers it whole, and was registered
 * with at least the same flags.  Overlapping entries are allowed and not
 * merged.  Every hit checks the entry's watch (one load); a changed entry
 * is never returned, leaves the cache at once and is deregistered when its
 * last reference is put.  Idle entries are evicted (CLOCK, an LRU
 * approximation) past max_entries or max_bytes.
 */
struct mapwatch_cache *mapwatch_cache_create(struct mapwatch *mw,
				const struct mapwatch_cache_ops *ops,
				const struct mapwatch_cache_config *cfg);
/* Evict every idle entry, then free the cache (entries still held are
 * deregistered as their last reference is put... so put them first). */
void mapwatch_cache_destroy(struct mapwatch_cache *c);
/* A referenced, valid entry covering [addr, addr + len), or NULL with
 * errno set (the reg callback failed, or ENOSPC/ENOMEM). */
struct mapwatch_cache_entry *mapwatch_cache_get(struct mapwatch_cache *c,
						void *addr, size_t len,
						int flags);
void mapwatch_cache_put(struct mapwatch_cache *c,
			struct mapwatch_cache_entry *e);
/* What reg returned, and the range the entry covers. */
void *mapwatch_cache_entry_reg(const struct mapwatch_cache_entry *e);
void *mapwatch_cache_entry_addr(const struct mapwatch_cache_entry *e);
size_t mapwatch_cache_entry_len(const struct mapwatch_cache_entry *e);
/* Evict every idle entry; held ones go when put. */
void mapwatch_cache_flush(struct mapwatch_cache *c);
void mapwatch_cache_get_stats(struct mapwatch_cache *c,
			      struct mapwatch_cache_stats *s);

#ifdef __cplusplus
}
#endif

#endif /* MAPWATCH_H */
