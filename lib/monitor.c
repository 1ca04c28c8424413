// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The monitor API: backend choice, fork safety, and dispatch.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

void mw_seterr(struct mapwatch *mw, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(mw->err, sizeof(mw->err), fmt, ap);
	va_end(ap);
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
	}
	return "unknown";
}

int mapwatch_open(struct mapwatch **out, enum mapwatch_backend backend,
		  size_t max_watches, const char **why)
{
	static __thread char reason[400];
	struct mapwatch *mw;
	const char *kwhy = NULL;
	int ret;

	*out = NULL;
	if (why)
		*why = NULL;
	mw = calloc(1, sizeof(*mw));
	if (!mw)
		return -ENOMEM;
	mw->owner = getpid();
	mw->max = max_watches;
	mw->fd = -1;
	pthread_mutex_init(&mw->lock, NULL);
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
		ret = mw_kernel_open(mw, &kwhy);
		if (ret == -ENOENT || ret == -ENODEV || ret == -EACCES ||
		    ret == -EPERM || ret == -ENXIO) {
			const char *uwhy = NULL;

			ret = mw_uffd_open(mw, &uwhy);
			if (ret && why) {
				snprintf(reason, sizeof(reason), "%s; %s",
					 kwhy, uwhy);
				*why = reason;
			}
		} else if (ret && why) {
			*why = kwhy;
		}
		break;
	default:
		ret = -EINVAL;
		if (why)
			*why = "unknown backend";
	}
	if (ret) {
		pthread_mutex_destroy(&mw->lock);
		free(mw);
		return ret;
	}
	*out = mw;
	return 0;
}

/* A child after fork() owns none of the parent's watches. */
static int mw_check_owner(const struct mapwatch *mw)
{
	if (getpid() != mw->owner) {
		snprintf(((struct mapwatch *)mw)->err, sizeof(mw->err),
			 "monitor used in a child after fork(): open a new one");
		return -EIO;
	}
	return 0;
}

void mapwatch_close(struct mapwatch *mw)
{
	if (!mw)
		return;
	mw->ops->close(mw);
	pthread_mutex_destroy(&mw->lock);
	free(mw);
}

enum mapwatch_backend mapwatch_backend(const struct mapwatch *mw)
{
	return mw->backend;
}

const char *mapwatch_strerror(const struct mapwatch *mw)
{
	return mw->err[0] ? mw->err : "no error";
}

int mapwatch_watch(struct mapwatch *mw, const void *addr, size_t len,
		   uint64_t cookie, struct mapwatch_handle *h)
{
	int ret = mw_check_owner(mw);

	if (ret)
		return ret;
	if (!len || cookie == MAPWATCH_COOKIE_RANGE ||
	    (uintptr_t)addr + len - 1 < (uintptr_t)addr) {
		mw_seterr(mw, "watch: empty or wrapping range, or reserved cookie");
		return -EINVAL;
	}
	return mw->ops->watch(mw, (uintptr_t)addr, len, cookie, h);
}

int mapwatch_unwatch(struct mapwatch *mw, const struct mapwatch_handle *h)
{
	int ret = mw_check_owner(mw);

	return ret ? ret : mw->ops->unwatch(mw, h);
}

int mapwatch_read_events(struct mapwatch *mw, struct mapwatch_event *ev,
			 size_t max)
{
	int ret = mw_check_owner(mw);

	if (ret)
		return ret;
	return max ? mw->ops->read(mw, ev, max) : 0;
}

int mapwatch_drain(struct mapwatch *mw,
		   void (*fn)(void *arg, const struct mapwatch_event *ev),
		   void *arg)
{
	struct mapwatch_event ev[64];
	int n, total = 0;

	while ((n = mapwatch_read_events(mw, ev, 64)) > 0) {
		for (int i = 0; i < n; i++)
			fn(arg, &ev[i]);
		total += n;
	}
	return n < 0 ? n : total;
}

bool mapwatch_pending(const struct mapwatch *mw)
{
	return mw->ops->pending(mw);
}

int mapwatch_fd(const struct mapwatch *mw)
{
	return mw->fd;
}

void mapwatch_get_stats(const struct mapwatch *mw, struct mapwatch_stats *s)
{
	memset(s, 0, sizeof(*s));
	mw->ops->stats(mw, s);
}

int mapwatch_invalidate(struct mapwatch *mw, const void *addr, size_t len)
{
	int ret = mw_check_owner(mw);

	if (ret)
		return ret;
	if (mw->backend == MAPWATCH_BACKEND_KERNEL) {
		mw_seterr(mw, "the kernel backend sees every change by itself");
		return -EOPNOTSUPP;
	}
	if (len)
		mw_user_invalidate(mw, (uintptr_t)addr, (uintptr_t)addr + len);
	return 0;
}
