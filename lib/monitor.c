// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The monitor API: backend choice, fork safety, and dispatch.  Above the
 * backends, which it opens and calls through mw_ops; they call only the
 * layer below (errors.c, user.c), never back into this file.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

_Atomic unsigned long mw_fork_gen;
static pthread_once_t mw_once = PTHREAD_ONCE_INIT;

/*
 * One page the kernel wipes in every child (MADV_WIPEONFORK, Linux 4.14):
 * it holds the pid of the process that opened a monitor last.  A monitor
 * whose owner is not that pid was opened by an ancestor: one load, where
 * getpid() is a system call on every watch and unwatch (two per cache miss
 * and eviction).  The kernel wipes it for any child that does not share the
 * address space, a raw clone() too, which the atfork generation misses.
 * NULL where madvise() refuses: getpid() then.
 */
static _Atomic pid_t *mw_alive;

static void mw_atfork_child(void)
{
	atomic_fetch_add_explicit(&mw_fork_gen, 1, memory_order_relaxed);
	mw_uffd_atfork_child();
}

static void mw_init_once(void)
{
	void *page = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE),
			  PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);

	pthread_atfork(NULL, NULL, mw_atfork_child);
	if (page == MAP_FAILED)
		return;
	if (madvise(page, (size_t)sysconf(_SC_PAGESIZE), MADV_WIPEONFORK)) {
		munmap(page, (size_t)sysconf(_SC_PAGESIZE));
		return;
	}
	mw_alive = page;
}

const char *mapwatch_backend_name(enum mapwatch_backend b)
{
	switch (b) {
	case MAPWATCH_BACKEND_AUTO:
		return "auto";
	case MAPWATCH_BACKEND_KERNEL:
		return "kernel";
	case MAPWATCH_BACKEND_USERFAULTFD:
		return "userfaultfd";
	case MAPWATCH_BACKEND_MANUAL:
		return "manual";
	case MAPWATCH_BACKEND_AUTO_ANY:
		return "auto-any";
	}
	return "unknown";
}

/* Errors of the kernel backend that mean "no module here". */
static bool no_module(int ret)
{
	return ret == -ENOENT || ret == -ENODEV || ret == -EACCES ||
	       ret == -EPERM || ret == -ENXIO;
}

/*
 * AUTO: the kernel backend when it is synchronous (mapwatch.ko), else an
 * error that says what is missing.  AUTO_ANY (any): then also HPE's kdreg2
 * or userfaultfd, and *why says what the caller settled for.
 */
static int mw_auto_open(struct mapwatch *mw, bool any, char *reason,
			size_t size, const char **why)
{
	const char *kwhy = NULL, *uwhy = NULL;
	int ret = mw_kernel_open(mw, &kwhy);

	if (!ret && (mw->features & MAPWATCH_F_SYNC))
		return 0;
	if (!ret && any) {
		snprintf(reason, size, "fell back to HPE's kdreg2 on /dev/kdreg2 (mapwatch.ko not loaded): not synchronous (it may defer an invalidation), so mapwatch_features() lacks MAPWATCH_F_SYNC");
		*why = reason;
		return 0;
	}
	if (!ret) {
		mw->ops->close(mw);
		mw->fd = -1;
		snprintf(reason, size, "kernel backend: /dev/kdreg2 is HPE's kdreg2, not mapwatch.ko: not synchronous; load mapwatch (modprobe mapwatch), or accept it with MAPWATCH_BACKEND_AUTO_ANY or _KERNEL");
		*why = reason;
		return -EOPNOTSUPP;
	}
	if (!no_module(ret)) {
		*why = kwhy;
		return ret;
	}
	if (!any) {
		snprintf(reason, size, "%s; userfaultfd not tried: it is not synchronous by itself and is blind to copy-on-write, migration and other processes (MAPWATCH_BACKEND_AUTO_ANY accepts it)",
			 kwhy);
		*why = reason;
		return ret;
	}
	ret = mw_uffd_open(mw, &uwhy);
	snprintf(reason, size, ret ? "%s; %s" :
		 "fell back to userfaultfd (%s): sees only this process's munmap/mremap/madvise, not copy-on-write, migration or other processes; no stale hit for the thread whose munmap returned or threads ordered after it, but another thread mapping the freed address before the reader runs, or a registration racing madvise, can get an old registration (mapwatch(7))",
		 kwhy, uwhy);
	*why = reason;
	return ret;
}

/*
 * The default mapwatch_open is MAPWATCH_1.3's: AUTO never settles below
 * MAPWATCH_F_SYNC.  lib/compat.c keeps MAPWATCH_1.0's (AUTO = AUTO_ANY) for
 * programs linked before; both are named in lib/libmapwatch.map, so both
 * carry their version explicitly.
 */
static int open_monitor(struct mapwatch **out, enum mapwatch_backend backend,
			size_t max_watches, const char **why)
{
	static __thread char reason[600];
	const char *dummy;
	struct mapwatch *mw;
	int ret;

	if (!why)
		why = &dummy;
	*why = NULL;
	if (!out) {
		if (why)
			*why = "mapwatch_open: NULL monitor pointer";
		return -EINVAL;
	}
	*out = NULL;
	pthread_once(&mw_once, mw_init_once);
	mw = calloc(1, sizeof(*mw));
	if (!mw) {
		if (why)
			*why = "out of memory";
		return -ENOMEM;
	}
	mw->owner = getpid();
	mw->fork_gen = atomic_load(&mw_fork_gen);
	/* A child's first open: the page was wiped (0); the parent's
	 * monitors keep the parent's pid, so they stay refused. */
	if (mw_alive)
		atomic_store_explicit(mw_alive, mw->owner, memory_order_relaxed);
	mw->max = max_watches;
	mw->fd = -1;
	pthread_mutex_init(&mw->lock, NULL);
	pthread_mutex_init(&mw->share_lock, NULL);
	pthread_cond_init(&mw->share_cond, NULL);
	switch (backend) {
	case MAPWATCH_BACKEND_KERNEL:
		ret = mw_kernel_open(mw, why);
		break;
	case MAPWATCH_BACKEND_USERFAULTFD:
		ret = mw_uffd_open(mw, why);
		break;
	case MAPWATCH_BACKEND_MANUAL:
		ret = mw_manual_open(mw, why);
		break;
	case MAPWATCH_BACKEND_AUTO:
	case MAPWATCH_BACKEND_AUTO_ANY:
		ret = mw_auto_open(mw, backend == MAPWATCH_BACKEND_AUTO_ANY,
				   reason, sizeof(reason), why);
		break;
	default:
		ret = -EINVAL;
		if (why)
			*why = "unknown backend (use MAPWATCH_BACKEND_AUTO, _KERNEL, _USERFAULTFD or _MANUAL)";
	}
	if (ret) {
		pthread_mutex_destroy(&mw->lock);
		pthread_mutex_destroy(&mw->share_lock);
		pthread_cond_destroy(&mw->share_cond);
		free(mw);
		return ret;
	}
	*out = mw;
	return 0;
}

#ifdef MAPWATCH_BUILD_SHARED
__attribute__((symver("mapwatch_open@@MAPWATCH_1.3"), visibility("default")))
int mw_open_1_3(struct mapwatch **out, enum mapwatch_backend backend,
		size_t max_watches, const char **why);
int mw_open_1_3(struct mapwatch **out, enum mapwatch_backend backend,
		size_t max_watches, const char **why)
#else
int mapwatch_open(struct mapwatch **out, enum mapwatch_backend backend,
		  size_t max_watches, const char **why)
#endif
{
	return open_monitor(out, backend, max_watches, why);
}

/* A child after fork() owns none of the parent's watches.  The fork
 * generation catches fork(); the wiped page (or getpid()) a raw clone(). */
int mw_check_owner(const struct mapwatch *mw)
{
	pid_t alive;

	if (!mw)
		return -EINVAL;
	alive = mw_alive ? atomic_load_explicit(mw_alive, memory_order_relaxed) :
		getpid();
	if (mw_forked(mw) || alive != mw->owner) {
		mw_seterr((struct mapwatch *)mw,
			  "monitor used in a child after fork(): open a new one");
		return -EIO;
	}
	return 0;
}

void mapwatch_close(struct mapwatch *mw)
{
	if (!mw)
		return;
	if (mw_check_owner(mw)) {
		/* A child's copy: the reader thread, the watches and the
		 * parent's end of every fd are not ours; close our copies. */
		if (mw->fd >= 0)
			close(mw->fd);
		if (mw->backend != MAPWATCH_BACKEND_KERNEL) {
			free(mw->u.gens);
			free(mw->u.slots);
			free(mw->u.free_slots);
			free(mw->u.ring);
			free(mw->u.ring_info);
		}
		free(mw);
		return;
	}
	mw->ops->close(mw);
	pthread_mutex_destroy(&mw->lock);
	pthread_mutex_destroy(&mw->share_lock);
	pthread_cond_destroy(&mw->share_cond);
	free(mw);
}

/* The getters answer "nothing" for a NULL monitor (mapwatch(7), "Errors"). */
enum mapwatch_backend mapwatch_backend(const struct mapwatch *mw)
{
	return mw ? mw->backend : MAPWATCH_BACKEND_AUTO;
}

uint64_t mapwatch_features(const struct mapwatch *mw)
{
	return mw ? mw->features : 0;
}

const char *mapwatch_strerror(const struct mapwatch *mw)
{
	const char *last = mw ? mw_last_error(mw) : NULL;

	if (!mw)
		return "NULL monitor";
	if (last)
		return last;
	if (mw->backend == MAPWATCH_BACKEND_USERFAULTFD && atomic_load(&mw->u.dead))
		return mw->err;
	return "no error";
}

/* The inline mapwatch_changed() after mw_settle(): what the cache's hit
 * path does, for monitor users (review 2026-12-07 F18). */
bool mapwatch_changed_sync(const struct mapwatch_handle *h)
{
	if (!h || !h->word)
		return true;
	mw_settle();
	return mapwatch_changed(h);
}

int mapwatch_watch(struct mapwatch *mw, const void *addr, size_t len,
		   uint64_t cookie, struct mapwatch_handle *h)
{
	int ret = mw_check_owner(mw);

	if (ret)
		return ret;
	if (!h) {
		mw_seterr(mw, "watch: NULL handle");
		return -EINVAL;
	}
	ret = mw_check_range(mw, addr, len, cookie);
	return ret ? ret : mw->ops->watch(mw, (uintptr_t)addr, len, cookie, h);
}

int mapwatch_unwatch(struct mapwatch *mw, const struct mapwatch_handle *h)
{
	int ret = mw_check_owner(mw);

	if (ret)
		return ret;
	if (!h || !h->word) {
		mw_seterr(mw, "unwatch: a handle no watch filled");
		return -EINVAL;
	}
	return mw->ops->unwatch(mw, h);
}

int mapwatch_watch_batch(struct mapwatch *mw, struct mapwatch_watch_req *req,
			 size_t n)
{
	int ret = mw_check_owner(mw), ok = 0;

	if (ret)
		return ret;
	if (!n)
		return 0;
	if (!req || n > INT_MAX) {
		mw_seterr(mw, "watch_batch: NULL array or too many requests");
		return -EINVAL;
	}
	if (mw->ops->watch_batch && (mw->features & MAPWATCH_F_BATCH))
		return mw->ops->watch_batch(mw, req, n);
	for (size_t i = 0; i < n; i++) {
		struct mapwatch_watch_req *r = &req[i];

		r->status = mw_check_range(mw, r->addr, r->len, r->cookie);
		if (!r->status)
			r->status = mw->ops->watch(mw, (uintptr_t)r->addr,
						   r->len, r->cookie, &r->h);
		ok += !r->status;
	}
	return ok;
}

int mapwatch_unwatch_batch(struct mapwatch *mw, const struct mapwatch_handle *h,
			   size_t n, int *status)
{
	int ret = mw_check_owner(mw), ok = 0;

	if (ret)
		return ret;
	if (!n)
		return 0;
	if (!h || n > INT_MAX) {
		mw_seterr(mw, "unwatch_batch: NULL array or too many handles");
		return -EINVAL;
	}
	if (mw->ops->unwatch_batch && (mw->features & MAPWATCH_F_BATCH))
		return mw->ops->unwatch_batch(mw, h, n, status);
	for (size_t i = 0; i < n; i++) {
		int r = h[i].word ? mw->ops->unwatch(mw, &h[i]) : -EINVAL;

		if (status)
			status[i] = r;
		ok += !r;
	}
	return ok;
}

int mapwatch_read_events(struct mapwatch *mw, struct mapwatch_event *ev,
			 size_t max)
{
	int ret = mw_check_owner(mw);

	if (ret)
		return ret;
	if (max && !ev) {
		mw_seterr(mw, "read_events: NULL array");
		return -EINVAL;
	}
	return max ? mw->ops->read(mw, ev, NULL, max) : 0;
}

int mw_read_events_info(struct mapwatch *mw, struct mapwatch_event *ev,
			uint32_t *info, size_t max)
{
	int ret = mw_check_owner(mw);

	return ret ? ret : max ? mw->ops->read(mw, ev, info, max) : 0;
}

/* The kernel's names, and the header's values checked against its enums. */
_Static_assert((int)MAPWATCH_CHANGE_USER == (int)MAPWATCH_REASON_USER &&
	       (int)MAPWATCH_CHANGE_EXIT == (int)MAPWATCH_REASON_EXIT &&
	       (int)MAPWATCH_CHANGE_PROTECTION == (int)MAPWATCH_REASON_PROTECTION &&
	       (int)MAPWATCH_CHANGE_REPLACED == (int)MAPWATCH_REASON_REPLACED &&
	       (int)MAPWATCH_CHANGE_MOVED == (int)MAPWATCH_REASON_MOVED &&
	       (int)MAPWATCH_CHANGE_UNMAPPED == (int)MAPWATCH_REASON_UNMAPPED &&
	       MAPWATCH_REASON_COUNT <= MAPWATCH_CHANGE_REASON_SLOTS,
	       "mapwatch.h's reasons are the kernel's");
_Static_assert((int)MAPWATCH_BY_MUNMAP == (int)MAPWATCH_CAUSE_MUNMAP &&
	       (int)MAPWATCH_BY_MADVISE == (int)MAPWATCH_CAUSE_MADVISE &&
	       (int)MAPWATCH_BY_MREMAP == (int)MAPWATCH_CAUSE_MREMAP &&
	       (int)MAPWATCH_BY_FORK == (int)MAPWATCH_CAUSE_FORK &&
	       (int)MAPWATCH_BY_NUMA_SCAN == (int)MAPWATCH_CAUSE_NUMA_SCAN &&
	       (int)MAPWATCH_BY_KHUGEPAGED == (int)MAPWATCH_CAUSE_KHUGEPAGED &&
	       (int)MAPWATCH_BY_IOCTL == (int)MAPWATCH_CAUSE_IOCTL &&
	       (int)MAPWATCH_BY_KTHREAD == (int)MAPWATCH_CAUSE_KTHREAD &&
	       MAPWATCH_CAUSE_COUNT <= MAPWATCH_CHANGE_CAUSE_SLOTS,
	       "mapwatch.h's causes are the kernel's");

static const char *const reason_names[] = MAPWATCH_REASON_NAMES;
static const char *const cause_names[] = MAPWATCH_CAUSE_NAMES;
_Static_assert(sizeof(reason_names) / sizeof(reason_names[0]) ==
	       MAPWATCH_REASON_COUNT, "a name per reason");
_Static_assert(sizeof(cause_names) / sizeof(cause_names[0]) ==
	       MAPWATCH_CAUSE_COUNT, "a name per cause");

const char *mapwatch_reason_name(uint32_t reason)
{
	return reason < MAPWATCH_REASON_COUNT ? reason_names[reason] : NULL;
}

const char *mapwatch_cause_name(uint32_t cause)
{
	return cause < MAPWATCH_CAUSE_COUNT ? cause_names[cause] : NULL;
}

#define MW_EVENT_EX_SIZE_1_4 mw_offsetofend(struct mapwatch_event_ex, reserved)

/* Read in chunks through the backend's read, then spread each event over
 * the caller's stride: what it knows, zeros beyond. */
int mapwatch_read_events_ex(struct mapwatch *mw, struct mapwatch_event_ex *ev,
			    size_t max, size_t size)
{
	struct mapwatch_event k[64];
	uint32_t info[64];
	int ret = mw_check_owner(mw);
	size_t done = 0;

	if (ret)
		return ret;
	if ((max && !ev) || size < MW_EVENT_EX_SIZE_1_4) {
		mw_seterr(mw, "read_events_ex: %s", !ev ? "NULL array" :
			  "element size below struct mapwatch_event_ex of 1.4");
		return -EINVAL;
	}
	if (max > INT_MAX)
		max = INT_MAX;
	while (done < max) {
		size_t want = max - done < 64 ? max - done : 64;
		int n = mw->ops->read(mw, k, info, want);

		if (n < 0)	/* what was delivered is the answer */
			return done ? (int)done : n;
		for (int i = 0; i < n; i++) {
			struct mapwatch_event_ex x = {
				.addr = k[i].addr, .len = k[i].len,
				.cookie = k[i].cookie,
				.reason = MW_INFO_REASON(info[i]),
				.cause = MW_INFO_CAUSE(info[i]),
				.flags = MW_INFO_FLAGS(info[i]),
			};

			mw_struct_out((char *)ev + (done + i) * size, size,
				      &x, sizeof(x));
		}
		done += n;
		if ((size_t)n < want)
			break;
	}
	return (int)done;
}

int mapwatch_drain(struct mapwatch *mw,
		   void (*fn)(void *arg, const struct mapwatch_event *ev),
		   void *arg)
{
	struct mapwatch_event ev[64];
	int n, total = 0;

	if (!mw)
		return -EINVAL;
	if (!fn) {
		mw_seterr(mw, "drain: NULL callback");
		return -EINVAL;
	}
	while ((n = mapwatch_read_events(mw, ev, 64)) > 0) {
		for (int i = 0; i < n; i++)
			fn(arg, &ev[i]);
		total += n;
	}
	/* -ENOMSG (a read of only unknown records) only when nothing was
	 * delivered: what was, is the answer. */
	return n < 0 && !(n == -ENOMSG && total) ? n : total;
}

bool mapwatch_pending(const struct mapwatch *mw)
{
	return mw && mw->ops->pending(mw);
}

int mapwatch_fd(const struct mapwatch *mw)
{
	int ret = mw_check_owner(mw);

	return ret ? ret : mw->fd;
}

int mapwatch_get_stats_sized(const struct mapwatch *mw,
			     struct mapwatch_stats *s, size_t size)
{
	struct mapwatch_stats k = { 0 };

	if (!mw || !s)
		return -EINVAL;
	mw->ops->stats(mw, &k);
	mw_struct_out(s, size, &k, sizeof(k));
	return 0;
}

int mapwatch_invalidate(struct mapwatch *mw, const void *addr, size_t len)
{
	int ret = mw_check_owner(mw);

	if (ret)
		return ret;
	if (len && (uintptr_t)addr + len < (uintptr_t)addr) {
		mw_seterr(mw, "invalidate: wrapping range");
		return -EINVAL;
	}
	if (!len)
		return 0;
	return mw->ops->invalidate(mw, (uintptr_t)addr, (uintptr_t)addr + len);
}

int mapwatch_resize(struct mapwatch *mw, size_t max_watches)
{
	int ret = mw_check_owner(mw);

	if (ret)
		return ret;
	if (!max_watches) {
		mw_seterr(mw, "resize: 0 watches");
		return -EINVAL;
	}
	if (max_watches == mw->max)
		return 0;
	return mw->ops->resize(mw, max_watches);
}
