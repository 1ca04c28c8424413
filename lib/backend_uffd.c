// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The userfaultfd backend, for machines without the module.
 *
 * Watched ranges are registered in write-protect mode and never actually
 * write-protected, so page faults are untouched; the registration only makes
 * the kernel send non-cooperative events: UNMAP (munmap, mremap shrink,
 * MAP_FIXED over, brk shrink), REMOVE (madvise DONTNEED/FREE/REMOVE) and
 * REMAP (mremap move).  The thread that causes such an event sleeps until it
 * is read, so a dedicated reader thread reads them and takes no lock that
 * any other code holds across anything that can unmap memory or wait for
 * the reader.
 *
 * One userfaultfd and one reader per process, shared by every monitor of
 * this library: a range can be registered with one userfaultfd only, so two
 * monitors (two caches) on the same buffer need the same one.  Another
 * library's userfaultfd on the same memory (libfabric's uffd monitor) still
 * makes our watch fail with EBUSY, and says so.
 *
 * When the reader has read an event the kernel lets the unmapping thread
 * go, a moment before the reader marks the watches changed: the reader's
 * sequence (mw_uffd_seq, internal.h) lets the cache wait out that moment,
 * so a thread whose munmap returned, and any thread ordered after that
 * return, never gets the old registration.  A bare mapwatch_changed() may
 * still turn true a moment late.  What that does not cover, and no user-
 * space code can (tests/host/uffd_windows.c shows both):
 *  - the kernel frees the range and drops mmap_lock before it queues the
 *    UNMAP event: another thread that maps new memory there before the
 *    reader has read the event, and gets it from the cache, gets the old
 *    registration.  We ship no user-space check for it: the only probe
 *    tried, UFFDIO_WRITEPROTECT with mode 0 over the hit's ends, is not
 *    one.  The kernel checks only that a VMA is registered in write-
 *    protect mode, not with which userfaultfd, so another library's
 *    registration passes it, and the call clears that library's uffd-wp
 *    bits; and it fails with EAGAIN on any unread event of the process.
 *    (Measured before it was removed: 6 to 9 us a hit on 6.18.)
 *  - madvise DONTNEED/FREE/REMOVE sends REMOVE before it zaps the pages: a
 *    registration of them made in between is never reported (until they
 *    change again).
 *
 * A watch over a range with holes is refused: UFFDIO_REGISTER skips holes,
 * and memory mapped into one later would send no event.
 *
 * A range stays registered while any watch of any monitor covers it, and is
 * unregistered when the last one goes (a registration splits the VMA, and
 * every later munmap of it waits for the reader) -- except memory an event
 * said was unmapped: the address may already belong to a new mapping, maybe
 * registered by someone else, which unregistering would strip.
 * UFFDIO_WRITEPROTECT does not check which userfaultfd a VMA is
 * registered with, and neither does UFFDIO_UNREGISTER on 6.12 (its
 * fs/userfaultfd.c, userfaultfd_unregister(), skips only VMAs registered
 * with none, and clears another context's registration and uffd-wp bits;
 * 5.10 and 6.1 are older; a 6.18 host refuses with EINVAL), so no ioctl
 * but REGISTER is ever issued over memory we cannot prove is ours.  Hence memory mremap moved stays registered with us: the
 * destination (which may be unmapped and reused by anyone before any later
 * call of ours), and the emptied source of MREMAP_DONTUNMAP.  Its
 * registration goes with the memory (munmap), or when the process's last
 * monitor closes the userfaultfd; until then its munmaps wait for the
 * reader and another library's userfaultfd gets EBUSY there.
 *
 * What userfaultfd cannot see (the module can): page migration (NUMA,
 * compaction, migrate_pages by another process), copy-on-write after fork,
 * KSM, swap, truncation and hole punching of shared files, changes by other
 * processes (process_madvise).  Memory that cannot be registered (SysV shm,
 * file-backed other than shmem) is refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

_Atomic uint32_t mw_uffd_seq;
static _Atomic uint32_t seq_waiters;

/*
 * The process's userfaultfd, its reader and the monitors that share it.
 * lock: open/close, watch/unwatch (the register ioctls and the slot states
 * they depend on), the list.  The reader takes mons_lock (read) to hand
 * events to the monitors, and lock only when it fails: neither is held
 * across anything that waits for it (no malloc or free either: a free that
 * trims the heap over watched memory waits for the reader).
 */
static struct {
	pthread_mutex_t lock;
	pthread_rwlock_t mons_lock;
	struct mapwatch *mons;
	int uffd;
	int wakefd;
	pthread_t reader;
	unsigned int users;
} proc_uffd = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.mons_lock = PTHREAD_RWLOCK_INITIALIZER,
	.uffd = -1, .wakefd = -1,
};

static long page_size(void)
{
	static long page;

	if (!page)
		page = sysconf(_SC_PAGESIZE);
	return page;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

void mw_uffd_settle_wait(uint32_t v)
{
	/* The reader applies a batch in microseconds: spin a little, then
	 * sleep (on one CPU, spinning only delays it). */
	for (int spin = 0; spin < 64; spin++) {
		if (atomic_load_explicit(&mw_uffd_seq, memory_order_acquire) != v)
			return;
		cpu_relax();
	}
	atomic_fetch_add(&seq_waiters, 1);
	while (atomic_load(&mw_uffd_seq) == v)
		syscall(SYS_futex, &mw_uffd_seq, FUTEX_WAIT_PRIVATE, v, NULL,
			NULL, 0);
	atomic_fetch_sub(&seq_waiters, 1);
}

static void seq_bump(void)
{
	atomic_fetch_add(&mw_uffd_seq, 1);
	if (atomic_load(&seq_waiters))
		syscall(SYS_futex, &mw_uffd_seq, FUTEX_WAKE_PRIVATE, INT32_MAX,
			NULL, NULL, 0);
}

static void dispatch(const struct uffd_msg *m)
{
	uintptr_t start, end;
	bool unmapped = true;
	uint32_t info;

	/* Why, as far as userfaultfd tells: UNMAP is also mmap(MAP_FIXED),
	 * brk or an mremap shrinking over the range, which it does not
	 * tell apart from munmap. */
	switch (m->event) {
	case UFFD_EVENT_UNMAP:
		start = m->arg.remove.start;
		end = m->arg.remove.end;
		info = MW_INFO(MAPWATCH_REASON_UNMAPPED, MAPWATCH_CAUSE_MUNMAP);
		break;
	case UFFD_EVENT_REMOVE:
		start = m->arg.remove.start;
		end = m->arg.remove.end;
		unmapped = false;	/* the VMA stays, registered */
		info = MW_INFO(MAPWATCH_REASON_UNMAPPED, MAPWATCH_CAUSE_MADVISE);
		break;
	case UFFD_EVENT_REMAP:
		/* Both ends stay registered with us (see the top). */
		start = m->arg.remap.from;
		end = m->arg.remap.from + m->arg.remap.len;
		info = MW_INFO(MAPWATCH_REASON_MOVED, MAPWATCH_CAUSE_MREMAP);
		break;
	default:
		return;
	}
	for (struct mapwatch *mw = proc_uffd.mons; mw; mw = mw->u.next)
		mw_user_invalidate_ex(mw, start, end, unmapped, info);
}

/*
 * The reader cannot go on (an error no retry helps): close the userfaultfd,
 * which releases every thread waiting for an event to be read and drops
 * every registration, and report every watch of every monitor changed.
 * Those monitors are dead from now on; a new one starts a new reader.
 */
static void reader_failed(int uffd, int wakefd, const char *what, int e)
{
	pthread_mutex_lock(&proc_uffd.lock);
	if (proc_uffd.uffd != uffd) {		/* closing: the closer cleans up */
		pthread_mutex_unlock(&proc_uffd.lock);
		return;
	}
	for (struct mapwatch *mw = proc_uffd.mons; mw; mw = mw->u.next) {
		snprintf(mw->err, sizeof(mw->err), "userfaultfd backend: the reader thread failed (%s: %s); every watch reported changed: open a new monitor",
			 what, strerror(e));
		atomic_store(&mw->u.dead, true);
		mw_user_invalidate(mw, 0, UINTPTR_MAX);
	}
	close(uffd);
	close(wakefd);
	proc_uffd.uffd = -1;
	proc_uffd.wakefd = -1;
	pthread_detach(pthread_self());
	pthread_mutex_unlock(&proc_uffd.lock);
}

struct reader_fds {
	int uffd, wakefd;
};

static void *uffd_reader(void *arg)
{
	struct reader_fds fds = *(struct reader_fds *)arg;
	int uffd = fds.uffd, wakefd = fds.wakefd;
	struct uffd_msg msg[16];

	free(arg);
	for (;;) {
		struct pollfd p[2] = { { .fd = uffd, .events = POLLIN },
				       { .fd = wakefd, .events = POLLIN } };
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			reader_failed(uffd, wakefd, "poll", errno);
			return NULL;
		}
		if (p[1].revents)
			return NULL;		/* the last monitor closes */
		if (p[0].revents & (POLLERR | POLLNVAL)) {
			reader_failed(uffd, wakefd, "poll", EIO);
			return NULL;
		}
		/* Odd before the read lets the unmapping threads go, even
		 * once their watches show the change. */
		seq_bump();
		n = read(uffd, msg, sizeof(msg));
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			int e = errno;

			seq_bump();
			reader_failed(uffd, wakefd, "read", e);
			return NULL;
		}
		pthread_rwlock_rdlock(&proc_uffd.mons_lock);
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++)
			dispatch(&msg[i]);
		pthread_rwlock_unlock(&proc_uffd.mons_lock);
		seq_bump();
	}
}

/* Under proc_uffd.lock: unregister the pages of slot that no other watch of any
 * monitor needs.  One pass over the slots in use (up to each monitor's
 * high-water mark) collects the few that overlap; the rest is local. */
static void unregister_unused(struct mapwatch *mw, uint32_t slot,
			      uintptr_t start, uintptr_t last)
{
	uintptr_t pg = page_size();
	uintptr_t ps = start & ~(pg - 1), pe = (last | (pg - 1)) + 1;
	struct { uintptr_t a, b; } cover[32];
	size_t n = 0;
	bool overflow = false;

	for (const struct mapwatch *m = proc_uffd.mons; m; m = m->u.next) {
		if (m->u.dead)
			continue;
		for (size_t i = 0, hw = atomic_load(&m->u.hw); i < hw; i++) {
			const struct mw_slot *sl = &m->u.slots[i];
			uintptr_t a, b;

			/* An unmapped watch's memory took its registration
			 * with it: it keeps nothing registered. */
			if ((m == mw && i == slot) ||
			    atomic_load(&sl->state) == SLOT_FREE ||
			    atomic_load(&sl->unmapped))
				continue;
			a = atomic_load(&sl->start) & ~(pg - 1);
			b = (atomic_load(&sl->last) | (pg - 1)) + 1;
			if (b <= ps || a >= pe)
				continue;
			if (n == 32) {
				overflow = true;	/* keep it registered */
				break;
			}
			cover[n].a = a;
			cover[n++].b = b;
		}
	}
	if (overflow)
		return;
	/* Walk [ps, pe) in order: unregister up to the next covered page. */
	while (ps < pe) {
		uintptr_t gap_end = pe;
		bool moved = false;

		for (size_t i = 0; i < n; i++) {
			if (cover[i].a <= ps && ps < cover[i].b) {
				ps = cover[i].b;
				moved = true;
			} else if (cover[i].a > ps && cover[i].a < gap_end) {
				gap_end = cover[i].a;
			}
		}
		if (moved)
			continue;
		{
			struct uffdio_range r = { .start = ps, .len = gap_end - ps };

			/* Fails only where the memory is gone already. */
			(void)ioctl(proc_uffd.uffd, UFFDIO_UNREGISTER, &r);
		}
		ps = gap_end;
	}
}

/*
 * UFFDIO_REGISTER succeeds when any VMA is in the range and skips the
 * holes; memory mapped into a hole later is not registered, so its munmap
 * would send no event.  So after registering: a hole (msync() fails with
 * ENOMEM there) refuses the watch.  Memory mapped into a hole after the
 * register and before the msync is not registered either: a second
 * register takes it in (over what is registered already it changes
 * nothing and walks no page tables), and a second msync makes sure no
 * hole opened in between.  What is left needs a page unmapped, mapped and
 * unmapped again, by other threads, within these four calls.  The watch is
 * live throughout, so any unmap of registered memory is seen.
 */
static int register_holes(struct uffdio_register *reg)
{
	void *start = (void *)(uintptr_t)reg->range.start;
	size_t len = reg->range.len;

	if (msync(start, len, MS_ASYNC))
		return EINVAL;
	if (ioctl(proc_uffd.uffd, UFFDIO_REGISTER, reg))
		return errno;
	if (msync(start, len, MS_ASYNC))
		return EINVAL;
	return 0;
}

static int uffd_watch(struct mapwatch *mw, uintptr_t addr, size_t len,
		      uint64_t cookie, struct mapwatch_handle *h)
{
	uintptr_t pg = page_size();
	uintptr_t start = addr & ~(pg - 1);
	uintptr_t end = (addr + len + pg - 1) & ~(pg - 1);
	struct uffdio_register reg = {
		.range = { .start = start, .len = end - start },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	bool freed;
	int ret, e;

	if (end <= start)	/* the last page of the address space */
		end = 0, reg.range.len = -start;
	pthread_mutex_lock(&proc_uffd.lock);
	if (mw->u.dead) {
		pthread_mutex_unlock(&proc_uffd.lock);
		mw_seterr(mw, "%s", mw->err);
		return -EIO;
	}
	/* Live first: a change landing while the range is being registered
	 * is then seen, never lost. */
	ret = mw_user_watch(mw, addr, len, cookie, h);
	if (ret) {
		pthread_mutex_unlock(&proc_uffd.lock);
		return ret;
	}
	if (ioctl(proc_uffd.uffd, UFFDIO_REGISTER, &reg)) {
		/*
		 * The kernel checks every VMA of the range before it changes
		 * any (EBUSY, EINVAL, EPERM: nothing registered; EBUSY also
		 * means another userfaultfd's registration lies in the range,
		 * which an unregister would strip), then registers VMA by
		 * VMA: ENOMEM (a split beyond vm.max_map_count) leaves the
		 * VMAs before the failing one registered.  Take back what no
		 * other watch needs; the range held no other context's
		 * registration a moment ago.
		 */
		e = errno;
		mw_user_unwatch_freed(mw, h, &freed);
		if (e == ENOMEM && freed)
			unregister_unused(mw, h->slot, addr, addr + len - 1);
	} else if ((e = register_holes(&reg))) {
		/* Part of the range is registered now: take back what no
		 * one else needs. */
		mw_user_unwatch_freed(mw, h, &freed);
		if (freed)
			unregister_unused(mw, h->slot, addr, addr + len - 1);
	} else {
		pthread_mutex_unlock(&proc_uffd.lock);
		return 0;
	}
	pthread_mutex_unlock(&proc_uffd.lock);
	mw_seterr(mw, "watch: userfaultfd cannot register %#lx+%#lx: %s%s",
		  (unsigned long)start, (unsigned long)reg.range.len, strerror(e),
		  e == EINVAL ? " (a hole, or memory userfaultfd cannot watch: use the kernel backend)" :
		  e == EBUSY ? " (another userfaultfd, of another library in this process, watches this memory: use the kernel backend)" :
		  e == ENOMEM ? " (too many VMAs: vm.max_map_count)" : "");
	return -e;
}

static int uffd_unwatch(struct mapwatch *mw, const struct mapwatch_handle *h)
{
	uintptr_t start = 0, last = 0;
	bool freed, unmapped = true;
	int ret;

	pthread_mutex_lock(&proc_uffd.lock);
	if (mw->u.dead) {
		/* Every registration went with the userfaultfd. */
		ret = mw_user_unwatch(mw, h);
		pthread_mutex_unlock(&proc_uffd.lock);
		return ret;
	}
	if (h->slot < mw->max && h->word == &mw->u.gens[h->slot]) {
		const struct mw_slot *s = &mw->u.slots[h->slot];

		start = atomic_load(&s->start);
		last = atomic_load(&s->last);
		unmapped = atomic_load(&s->unmapped);
	}
	ret = mw_user_unwatch_freed(mw, h, &freed);
	if (freed && !unmapped)
		unregister_unused(mw, h->slot, start, last);
	pthread_mutex_unlock(&proc_uffd.lock);
	return ret;
}

static void uffd_close(struct mapwatch *mw)
{
	int uffd = -1, wakefd = -1;
	pthread_t reader;
	uint64_t one = 1;

	pthread_mutex_lock(&proc_uffd.lock);
	pthread_rwlock_wrlock(&proc_uffd.mons_lock);
	for (struct mapwatch **pp = &proc_uffd.mons; *pp; pp = &(*pp)->u.next) {
		if (*pp == mw) {
			*pp = mw->u.next;
			break;
		}
	}
	pthread_rwlock_unlock(&proc_uffd.mons_lock);
	/* Out of the list: unregister what no other monitor watches. */
	for (uint32_t i = 0; i < atomic_load(&mw->u.hw) && !mw->u.dead; i++) {
		const struct mw_slot *s = &mw->u.slots[i];

		if (atomic_load(&s->state) != SLOT_FREE &&
		    !atomic_load(&s->unmapped))
			unregister_unused(mw, i, atomic_load(&s->start),
					  atomic_load(&s->last));
	}
	if (!--proc_uffd.users && proc_uffd.uffd >= 0) {
		uffd = proc_uffd.uffd;
		wakefd = proc_uffd.wakefd;
		reader = proc_uffd.reader;
		proc_uffd.uffd = -1;
		proc_uffd.wakefd = -1;
	}
	pthread_mutex_unlock(&proc_uffd.lock);
	if (uffd >= 0) {
		if (write(wakefd, &one, sizeof(one)) == sizeof(one))
			pthread_join(reader, NULL);
		close(uffd);
		close(wakefd);
	}
	mw_user_fini(mw);
}

/*
 * The reader walks every monitor's slots under mons_lock: keep it out
 * while the tables change.  Allocate before and free after: a free() that
 * trims the heap over watched memory waits for the reader, which may be
 * waiting for mons_lock with an event in hand.
 */
static int uffd_resize(struct mapwatch *mw, size_t max)
{
	struct mw_user_tables t;
	int ret = mw_user_resize_prepare(max, &t);

	if (ret)
		return ret;
	pthread_mutex_lock(&proc_uffd.lock);
	pthread_rwlock_wrlock(&proc_uffd.mons_lock);
	ret = mw_user_resize_swap(mw, max, &t);
	pthread_rwlock_unlock(&proc_uffd.mons_lock);
	pthread_mutex_unlock(&proc_uffd.lock);
	mw_user_resize_free(&t);
	return ret;
}

static const struct mw_ops uffd_ops = {
	.watch = uffd_watch,
	.unwatch = uffd_unwatch,
	.read = mw_user_read,
	.invalidate = mw_user_invalidate_op,
	.resize = uffd_resize,
	.pending = mw_user_pending,
	.stats = mw_user_stats,
	.close = uffd_close,
};

/* Under proc_uffd.lock: the process's userfaultfd and its reader, or -errno. */
static int uffd_start(const char **why)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE |
			    UFFD_FEATURE_EVENT_REMAP,
	};
	struct reader_fds *fds;
	int uffd, wakefd = -1, e;

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK |
		       UFFD_USER_MODE_ONLY);
	if (uffd < 0 && errno == EINVAL)	/* kernels before 5.11 */
		uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0) {
		e = errno;
		*why = e == ENOSYS ? "userfaultfd backend: kernel built without userfaultfd" :
		       e == EPERM ? "userfaultfd backend: not permitted (sysctl vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE, or a seccomp filter)" :
		       "userfaultfd backend: userfaultfd() failed";
		return -e;
	}
	if (ioctl(uffd, UFFDIO_API, &api)) {
		e = errno;
		*why = "userfaultfd backend: the kernel lacks the unmap/remove/remap events";
		goto err;
	}
	/* Watches register in write-protect mode: without it (an
	 * architecture or a kernel lacking userfaultfd-wp) every watch would
	 * fail. */
	if (!(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP) ||
	    !(api.ioctls & (1ULL << _UFFDIO_REGISTER))) {
		e = EOPNOTSUPP;
		*why = "userfaultfd backend: the kernel lacks userfaultfd write-protect (needed to watch without intercepting faults)";
		goto err;
	}
	wakefd = eventfd(0, EFD_CLOEXEC);
	if (wakefd < 0) {
		e = errno;
		*why = "userfaultfd backend: eventfd failed";
		goto err;
	}
	fds = malloc(sizeof(*fds));
	if (!fds) {
		e = ENOMEM;
		*why = "userfaultfd backend: out of memory";
		goto err;
	}
	*fds = (struct reader_fds){ uffd, wakefd };
	/* pthread_create returns its error; errno is not set. */
	e = pthread_create(&proc_uffd.reader, NULL, uffd_reader, fds);
	if (e) {
		free(fds);
		*why = "userfaultfd backend: cannot start the reader thread";
		goto err;
	}
	pthread_setname_np(proc_uffd.reader, "mapwatch-uffd");
	proc_uffd.uffd = uffd;
	proc_uffd.wakefd = wakefd;
	return 0;
err:
	close(uffd);
	if (wakefd >= 0)
		close(wakefd);
	return -e;
}

int mw_uffd_open(struct mapwatch *mw, const char **why)
{
	const char *reason = NULL;
	int ret;

	ret = mw_user_init(mw);
	if (ret) {
		if (why)
			*why = ret == -EINVAL ? "userfaultfd backend: max_watches too large" :
			       "userfaultfd backend: out of memory";
		return ret;
	}
	pthread_mutex_lock(&proc_uffd.lock);
	if (proc_uffd.uffd < 0) {
		ret = uffd_start(&reason);
		if (ret) {
			pthread_mutex_unlock(&proc_uffd.lock);
			if (why)
				*why = reason;
			mw_user_fini(mw);
			return ret;
		}
	}
	proc_uffd.users++;
	pthread_rwlock_wrlock(&proc_uffd.mons_lock);
	mw->u.next = proc_uffd.mons;
	proc_uffd.mons = mw;
	pthread_rwlock_unlock(&proc_uffd.mons_lock);
	pthread_mutex_unlock(&proc_uffd.lock);
	mw->backend = MAPWATCH_BACKEND_USERFAULTFD;
	mw->ops = &uffd_ops;
	return 0;
}

/* In the child after fork: the parent's reader did not come along, and the
 * child's copy of the userfaultfd must not keep the parent's context alive
 * (the parent's munmaps would wait for a reader that is gone). */
void mw_uffd_atfork_child(void)
{
	if (proc_uffd.uffd >= 0)
		close(proc_uffd.uffd);
	if (proc_uffd.wakefd >= 0)
		close(proc_uffd.wakefd);
	pthread_mutex_init(&proc_uffd.lock, NULL);
	pthread_rwlock_init(&proc_uffd.mons_lock, NULL);
	proc_uffd.uffd = -1;
	proc_uffd.wakefd = -1;
	proc_uffd.mons = NULL;
	proc_uffd.users = 0;
	atomic_store(&mw_uffd_seq, 0);
	atomic_store(&seq_waiters, 0);
}
