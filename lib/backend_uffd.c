// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The userfaultfd backend, for machines without the module.
 *
 * Watched ranges are registered in write-protect mode and never actually
 * write-protected, so page faults are untouched; the registration only makes
 * the kernel send non-cooperative events: UNMAP (munmap, mremap shrink,
 * MAP_FIXED over, brk shrink), REMOVE (madvise DONTNEED/REMOVE) and REMAP
 * (mremap move).  The thread that causes such an event sleeps until it is
 * read, so a dedicated reader thread reads them and takes no lock that any
 * other code holds across anything that can unmap memory.
 *
 * MADV_FREE is seen too: the kernel sends REMOVE for it as for DONTNEED.
 *
 * What userfaultfd cannot see (the module can): page migration (NUMA,
 * compaction, migrate_pages by another process), copy-on-write after fork,
 * KSM, swap, truncation and hole punching of shared files, changes by other
 * processes (process_madvise).  Memory that cannot be registered (SysV shm,
 * file-backed other than shmem) is refused.  Not synchronous: the kernel
 * wakes the unmapping thread when the reader reads the event, before the
 * reader has bumped the generation (tests/guest/conformance shows "late").
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static void *uffd_reader(void *arg)
{
	struct mapwatch *mw = arg;
	struct mw_user *u = &mw->u;
	struct uffd_msg msg[16];

	for (;;) {
		struct pollfd p[2] = { { .fd = u->uffd, .events = POLLIN },
				       { .fd = u->wakefd, .events = POLLIN } };
		ssize_t n;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		n = read(u->uffd, msg, sizeof(msg));
		if (n < 0)
			continue;	/* EAGAIN, EINTR */
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
			const struct uffd_msg *m = &msg[i];

			switch (m->event) {
			case UFFD_EVENT_UNMAP:
				mw_user_invalidate(mw, m->arg.remove.start,
						   m->arg.remove.end);
				break;
			case UFFD_EVENT_REMOVE:
				mw_user_invalidate(mw, m->arg.remove.start,
						   m->arg.remove.end);
				break;
			case UFFD_EVENT_REMAP:
				mw_user_invalidate(mw, m->arg.remap.from,
						   m->arg.remap.from +
						   m->arg.remap.len);
				break;
			default:
				break;
			}
		}
	}
	return NULL;
}

static int uffd_watch(struct mapwatch *mw, uintptr_t addr, size_t len,
		      uint64_t cookie, struct mapwatch_handle *h)
{
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t start = addr & ~(uintptr_t)(page - 1);
	uintptr_t end = (addr + len + page - 1) & ~(uintptr_t)(page - 1);
	struct uffdio_register reg = {
		.range = { .start = start, .len = end - start },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	if (ioctl(mw->u.uffd, UFFDIO_REGISTER, &reg)) {
		int e = errno;

		mw_seterr(mw, "watch: userfaultfd cannot register %#lx+%#lx: %s%s",
			  (unsigned long)start, (unsigned long)(end - start),
			  strerror(e), e == EINVAL ?
			  " (unmapped, or memory userfaultfd cannot watch: use the kernel backend)" : "");
		return -e;
	}
	return mw_user_watch(mw, addr, len, cookie, h);
}

static void uffd_close(struct mapwatch *mw)
{
	struct mw_user *u = &mw->u;
	uint64_t one = 1;

	if (u->reader_started) {
		if (write(u->wakefd, &one, sizeof(one)) == sizeof(one))
			pthread_join(u->reader, NULL);
	}
	if (u->uffd >= 0)
		close(u->uffd);
	if (u->wakefd >= 0)
		close(u->wakefd);
	mw_user_fini(mw);
}

static const struct mw_ops uffd_ops = {
	.watch = uffd_watch,
	.unwatch = mw_user_unwatch,
	.read = mw_user_read,
	.pending = mw_user_pending,
	.stats = mw_user_stats,
	.close = uffd_close,
};

int mw_uffd_open(struct mapwatch *mw, const char **why)
{
	struct mw_user *u = &mw->u;
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE |
			    UFFD_FEATURE_EVENT_REMAP,
	};
	int ret, e;

	ret = mw_user_init(mw);
	if (ret) {
		if (why)
			*why = ret == -EINVAL ? "userfaultfd backend: max_watches too large" :
			       "userfaultfd backend: out of memory";
		return ret;
	}
	u->uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK |
			  UFFD_USER_MODE_ONLY);
	if (u->uffd < 0 && errno == EINVAL)	/* kernels before 5.11 */
		u->uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (u->uffd < 0) {
		e = errno;
		if (why)
			*why = e == ENOSYS ? "userfaultfd backend: kernel built without userfaultfd" :
			       e == EPERM ? "userfaultfd backend: not permitted (sysctl vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE, or a seccomp filter)" :
			       "userfaultfd backend: userfaultfd() failed";
		goto err;
	}
	if (ioctl(u->uffd, UFFDIO_API, &api)) {
		e = errno;
		if (why)
			*why = "userfaultfd backend: the kernel lacks the unmap/remove/remap events";
		goto err;
	}
	u->wakefd = eventfd(0, EFD_CLOEXEC);
	if (u->wakefd < 0 || pthread_create(&u->reader, NULL, uffd_reader, mw)) {
		e = errno ? errno : EAGAIN;
		if (why)
			*why = "userfaultfd backend: cannot start the reader thread";
		goto err;
	}
	u->reader_started = true;
	mw->backend = MAPWATCH_BACKEND_USERFAULTFD;
	mw->ops = &uffd_ops;
	return 0;
err:
	uffd_close(mw);
	return -e;
}
