// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The kernel backend: mapwatch.ko through /dev/mapwatch (or any kdreg2
 * device).  The state word a handle points at lives in the module's
 * read-only status area, so mapwatch_changed() is one load.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* A handle on state word @slot of the module's status area. */
static void kernel_handle(const struct mapwatch *mw, uint64_t slot,
			  uint32_t gen, uint64_t cookie,
			  struct mapwatch_handle *h)
{
	h->word = &mw->st->monitoring_state_base[slot].u.raw;
	h->gen = gen;
	h->slot = slot;
	h->cookie = cookie;
}

static void watch_seterr(struct mapwatch *mw, const char *what, int e)
{
	mw_seterr(mw, "%s: %s%s", what, strerror(e),
		  e == EBUSY ? " (cookie already watched)" :
		  e == ENOSPC ? " (all watches in use)" : "");
}

static int kernel_watch(struct mapwatch *mw, uintptr_t addr, size_t len,
			uint64_t cookie, struct mapwatch_handle *h)
{
	struct kdreg2_ioctl_monitor m = {
		.addr = (const void *)addr, .length = len, .cookie = cookie,
	};

	if (ioctl(mw->fd, KDREG2_IOCTL_MONITOR, &m)) {
		int e = errno;

		watch_seterr(mw, "watch", e);
		return -e;
	}
	kernel_handle(mw, m.monitoring_params.location,
		      m.monitoring_params.generation, cookie, h);
	return 0;
}

static int kernel_unwatch(struct mapwatch *mw, const struct mapwatch_handle *h)
{
	struct kdreg2_ioctl_unmonitor u = {
		.cookie = h->cookie,
		.monitoring_params = { .location = h->slot, .generation = h->gen },
	};

	if (!ioctl(mw->fd, KDREG2_IOCTL_UNMONITOR, &u))
		return 0;
	/* The module retires a watch with its event, and an unwatched one
	 * has moved on too: nothing left to do. */
	if ((errno == ESRCH || errno == EBADSLT) && mapwatch_changed(h))
		return 0;
	{
		int e = errno;

		mw_seterr(mw, "unwatch: %s", strerror(e));
		return -e;
	}
}

/* A batch of at most CHUNK entries per ioctl: no allocation, bounded stack. */
#define CHUNK 128

static int kernel_watch_batch(struct mapwatch *mw, struct mapwatch_watch_req *req,
			      size_t n)
{
	struct mapwatch_monitor_entry ent[CHUNK];
	int ok = 0;

	for (size_t done = 0; done < n;) {
		size_t k = 0, idx[CHUNK];
		struct mapwatch_batch b = {
			.size = sizeof(b), .entry_size = sizeof(ent[0]),
			.entries = (uintptr_t)ent,
		};

		/* Requests the library refuses never reach the module. */
		for (; done < n && k < CHUNK; done++) {
			struct mapwatch_watch_req *r = &req[done];

			r->status = mw_check_range(mw, r->addr, r->len,
						   r->cookie);
			if (r->status)
				continue;
			ent[k] = (struct mapwatch_monitor_entry){
				.addr = (uintptr_t)r->addr, .length = r->len,
				.cookie = r->cookie,
			};
			idx[k++] = done;
		}
		if (!k)
			continue;
		b.count = k;
		if (ioctl(mw->fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b) < 0) {
			int e = errno;

			mw_seterr(mw, "watch_batch: %s", strerror(e));
			/* The header is ours and valid: only EIO (or EFAULT on
			 * our own stack) can happen; nothing was watched. */
			for (size_t i = 0; i < k; i++)
				req[idx[i]].status = -e;
			continue;
		}
		for (size_t i = 0; i < k; i++) {
			struct mapwatch_watch_req *r = &req[idx[i]];

			r->status = ent[i].status;
			if (r->status) {
				watch_seterr(mw, "watch_batch", -r->status);
				continue;
			}
			kernel_handle(mw, ent[i].location, ent[i].generation,
				      r->cookie, &r->h);
			ok++;
		}
	}
	return ok;
}

static int kernel_unwatch_batch(struct mapwatch *mw,
				const struct mapwatch_handle *h, size_t n,
				int *status)
{
	struct mapwatch_unmonitor_entry ent[CHUNK];
	int ok = 0;

	for (size_t done = 0; done < n;) {
		size_t k = 0, idx[CHUNK];
		struct mapwatch_batch b = {
			.size = sizeof(b), .entry_size = sizeof(ent[0]),
			.entries = (uintptr_t)ent,
		};

		for (; done < n && k < CHUNK; done++) {
			if (!h[done].word) {
				if (status)
					status[done] = -EINVAL;
				continue;
			}
			ent[k] = (struct mapwatch_unmonitor_entry){
				.cookie = h[done].cookie, .location = h[done].slot,
				.generation = h[done].gen,
			};
			idx[k++] = done;
		}
		if (!k)
			continue;
		b.count = k;
		if (ioctl(mw->fd, MAPWATCH_IOCTL_UNMONITOR_BATCH, &b) < 0) {
			int e = errno;

			mw_seterr(mw, "unwatch_batch: %s", strerror(e));
			for (size_t i = 0; i < k; i++)
				if (status)
					status[idx[i]] = -e;
			continue;
		}
		for (size_t i = 0; i < k; i++) {
			int r = ent[i].status;

			/* As in kernel_unwatch: gone already is fine. */
			if ((r == -ESRCH || r == -EBADSLT) &&
			    mapwatch_changed(&h[idx[i]]))
				r = 0;
			if (r)
				mw_seterr(mw, "unwatch_batch: %s", strerror(-r));
			if (status)
				status[idx[i]] = r;
			ok += !r;
		}
	}
	return ok;
}

/*
 * Only KDREG2_EVENT_MAPPING_CHANGE records are mapping changes; one of
 * another type (a newer module's) is skipped, never parsed as one, and the
 * monitor's error says so.  A batch of nothing else reads on; when records
 * were skipped and none was a change, -ENOMSG (as libfabric's kdreg2
 * monitor answers), once.
 */
static int kernel_read(struct mapwatch *mw, struct mapwatch_event *ev,
		       uint32_t *info, size_t max)
{
	struct kdreg2_event kev[64];
	uint32_t unknown_type = 0;
	size_t skipped = 0;
	ssize_t n;
	int k = 0;

	if (max > 64)
		max = 64;
	while (!k) {
		n = read(mw->fd, kev, max * sizeof(kev[0]));
		if (n < 0) {
			if (errno != EAGAIN)
				return -errno;
			break;
		}
		n /= sizeof(kev[0]);
		if (!n)
			break;
		for (ssize_t i = 0; i < n; i++) {
			const struct kdreg2_mapping_change *c =
				&kev[i].u.mapping_change;

			if (kev[i].type != KDREG2_EVENT_MAPPING_CHANGE) {
				unknown_type = kev[i].type;
				skipped++;
				continue;
			}
			ev[k].addr = (uintptr_t)c->addr;
			ev[k].len = c->len;
			ev[k].cookie = c->cookie == KDREG2_BAD_COOKIE_VALUE ?
				       MAPWATCH_COOKIE_RANGE : c->cookie;
			/* Why, when the module was asked to say (REASONS);
			 * else 0, kdreg2's padding. */
			if (info)
				info[k] = mw->reasons ? kev[i]._alignment : 0;
			k++;
		}
	}
	if (skipped)
		mw_seterr(mw, "read: skipped %zu kdreg2 record(s) of unknown type (type %u): not mapping changes (a newer module?)",
			  skipped, unknown_type);
	return k ? k : skipped ? -ENOMSG : 0;
}

static bool kernel_pending(const struct mapwatch *mw)
{
	return kdreg2_read_counter(&mw->st->pending_events) != 0;
}

static void kernel_stats(const struct mapwatch *mw, struct mapwatch_stats *s)
{
	const struct mapwatch_status_ext *ext = mapwatch_status_ext(mw->st);

	if (mw->plain_kdreg2)	/* its status page ends at 48 bytes */
		ext = NULL;
	s->watched = kdreg2_read_counter(&mw->st->num_active_regions);
	s->events = kdreg2_read_counter(&mw->st->total_events);
	if (ext && ext->magic == MAPWATCH_STATUS_MAGIC) {
		s->overflows = kdreg2_read_counter(&ext->overflows);
		s->skipped = kdreg2_read_counter(&ext->skipped_invalidations);
	}
}

/*
 * The length of mapwatch.ko's status mapping at @addr, from the kernel's
 * own account of it (/proc/self/maps): CONFIG_DATA may have taken over a
 * larger spare than max_regions needs, and the module refuses to split its
 * mapping, so a length computed from max_regions would make munmap() fail
 * (EINVAL) and leave the area behind.  0 when what starts at @addr is not
 * the module's status mapping any more (the application unmapped it and
 * mapped its own there): nothing of ours to unmap.  @guess when /proc is
 * not there to ask.
 */
static size_t status_mapping_len(const void *addr, size_t guess)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char *line = NULL;
	size_t cap = 0, len = 0;
	unsigned long start, end;

	if (!f)
		return guess;
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%lx-%lx", &start, &end) != 2 ||
		    start != (uintptr_t)addr)
			continue;
		if (strstr(line, "[mapwatch-status]"))
			len = end - start;
		break;
	}
	free(line);
	fclose(f);
	return len;
}

static void kernel_close(struct mapwatch *mw)
{
	size_t size = MAPWATCH_STATE_ARRAY_OFFSET + (mw->st_max + 1) * 4;
	long page = sysconf(_SC_PAGESIZE);

	/* mapwatch.ko's status area (one mapping, its layout) outlives the
	 * fd: give its address space back, before the close, while it is
	 * still this context's (after it, another thread's CONFIG_DATA may
	 * take it over at the same address).  HPE's kdreg2 maps a status
	 * page and a separate array and unmaps both itself. */
	if (!mw->plain_kdreg2) {
		size = status_mapping_len(mw->st, (size + page - 1) / page * page);
		if (size)
			munmap((void *)mw->st, size);
	}
	close(mw->fd);
}

/* mapwatch.ko's INVALIDATE: the regions of the range retire as by a
 * munmap, with their events, before the ioctl returns. */
static int kernel_invalidate(struct mapwatch *mw, uintptr_t start, uintptr_t end)
{
	struct mapwatch_invalidate a = {
		.size = sizeof(a), .addr = start, .length = end - start,
	};

	if (!(mw->kfeatures & MAPWATCH_FEATURE_INVALIDATE)) {
		mw_seterr(mw, "invalidate: %s", mw->plain_kdreg2 ?
			  "HPE's kdreg2 has no INVALIDATE" :
			  "this mapwatch.ko predates INVALIDATE");
		return -EOPNOTSUPP;
	}
	if (ioctl(mw->fd, MAPWATCH_IOCTL_INVALIDATE, &a)) {
		int e = errno;

		mw_seterr(mw, "invalidate: %s", strerror(e));
		return -e;
	}
	return 0;
}

/* CONFIG_DATA again: the module allows it while no region is monitored
 * and no event is pending (EBUSY).  A size that fits keeps the area; a
 * larger one moves it and leaves the old one mapped (every watch it held
 * reading changed), which the module reuses for the next CONFIG_DATA of
 * this process that fits. */
static int kernel_resize(struct mapwatch *mw, size_t max)
{
	struct kdreg2_config_data cfg = { .max_regions = max };

	if (ioctl(mw->fd, KDREG2_IOCTL_CONFIG_DATA, &cfg)) {
		int e = errno;

		mw_seterr(mw, "resize: %s%s", strerror(e),
			  e == EBUSY ? " (watches active or events pending)" :
			  e == ENOSPC ? " (above the module's max_regions_limit)" : "");
		return -e;
	}
	if (cfg.status_data != mw->st)
		mw->st_max = max;	/* the new area's size */
	mw->st = cfg.status_data;
	mw->max = max;
	return 0;
}

static const struct mw_ops kernel_ops = {
	.watch = kernel_watch,
	.unwatch = kernel_unwatch,
	.watch_batch = kernel_watch_batch,
	.unwatch_batch = kernel_unwatch_batch,
	.read = kernel_read,
	.invalidate = kernel_invalidate,
	.resize = kernel_resize,
	.pending = kernel_pending,
	.stats = kernel_stats,
	.close = kernel_close,
};

int mw_kernel_open(struct mapwatch *mw, const char **why)
{
	static const char *const devs[] = { MAPWATCH_DEVICE_NAME,
					    KDREG2_DEVICE_NAME };
	struct kdreg2_config_data cfg = { .max_regions = mw->max };
	struct mapwatch_probe probe = { .size = sizeof(probe) };
	int fd = -1, err = ENOENT;
	const char *no_batch;

	for (unsigned int i = 0; i < 2 && fd < 0; i++) {
		fd = open(devs[i], O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 && errno != ENOENT)
			err = errno;
	}
	if (fd < 0) {
		if (why)
			*why = err == ENOENT ?
			       "kernel backend: /dev/mapwatch missing (load the module: modprobe mapwatch)" :
			       err == EACCES ?
			       "kernel backend: no permission on /dev/mapwatch (udev rule missing?)" :
			       "kernel backend: cannot open /dev/mapwatch";
		return -err;
	}
	if (ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &cfg)) {
		err = errno;
		close(fd);
		if (why)
			*why = err == ENOSPC ?
			       "kernel backend: max_watches above the module's max_regions_limit" :
			       "kernel backend: CONFIG_DATA failed";
		return -err;
	}
	mw->fd = fd;
	mw->st = cfg.status_data;
	mw->st_max = mw->max;
	/* mapwatch.ko answers PROBE; HPE's kdreg2 does not. */
	mw->plain_kdreg2 = ioctl(fd, MAPWATCH_IOCTL_PROBE, &probe) != 0;
	mw->kfeatures = mw->plain_kdreg2 ? 0 : probe.features;
	mw->batch = !mw->plain_kdreg2 && (probe.features & MAPWATCH_FEATURE_BATCH);
	/* Why each region changed, in its record: only a module that offers
	 * it is asked (an older one refuses the unknown policy bit); without
	 * it every reason reads UNKNOWN.  No other policy of this fd is on:
	 * the library uses none, so setting REASONS alone changes nothing
	 * else. */
	if (mw->kfeatures & MAPWATCH_FEATURE_REASONS) {
		struct mapwatch_policy pol = {
			.size = sizeof(pol), .flags = MAPWATCH_POLICY_REASONS,
		};

		mw->reasons = !ioctl(fd, MAPWATCH_IOCTL_SET_POLICY, &pol);
	}
	no_batch = getenv("MAPWATCH_NO_BATCH");
	if (no_batch && *no_batch && strcmp(no_batch, "0"))
		mw->batch = false;
	/* HPE's kdreg2 defers an invalidation when its lock is contended:
	 * neither synchronous nor, then, complete at return. */
	mw->features = mw->plain_kdreg2 ? 0 :
		       MAPWATCH_F_SYNC | MAPWATCH_F_ALL_CHANGES |
		       (mw->batch ? MAPWATCH_F_BATCH : 0);
	mw->backend = MAPWATCH_BACKEND_KERNEL;
	mw->ops = &kernel_ops;
	return 0;
}
