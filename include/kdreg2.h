/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kdreg2-compatible user ABI, as served by mapwatch.ko.
 *
 * Names, layouts, ioctl request codes and inline helpers match HPE's kdreg2
 * header on x86-64, so a client built against either header works with
 * either module.  mapwatch's own additions live in <mapwatch_uapi.h>.
 *
 * Model: open the device, CONFIG_DATA(max_regions) maps a read-only status
 * area into the caller.  MONITOR(addr, length, cookie) returns
 * monitoring_params {location, generation}; the region is unchanged while
 * state[location] == generation (kdreg2_mapping_changed(), one load).  When
 * the translation of any byte of a monitored region changes, the region is
 * retired (its slot is freed, its generation moves on) and one
 * struct kdreg2_event with its cookie becomes readable from the fd.
 *
 * open() errors: EMFILE (the user has the module's max_user_contexts fds
 * open), EOPNOTSUPP (a 32-bit caller), ENOMEM.
 *
 * Errors common to every ioctl:
 *   EIO     the fd is used from another mm than the one that opened it
 *           (a forked child, an fd passed over a socket, after exec).
 *   EFAULT  the argument pointer is bad.
 *   ENOTTY  unknown request.
 */
#ifndef KDREG2_H
#define KDREG2_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/ioctl.h>
#define KDREG2_ATOMIC32 __u32
#define KDREG2_ATOMIC64 __u64
#else
#include <sys/ioctl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifndef __user
#define __user
#endif
/*
 * Plain integers, as in HPE's header, so that C++ (and C before C11) can
 * include this file; the module stores them with release semantics and the
 * helpers below load them with acquire (__atomic builtins: GCC, Clang).
 */
#define KDREG2_ATOMIC32 uint32_t
#define KDREG2_ATOMIC64 uint64_t
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t kdreg2_cookie_t;

/* The one cookie value MONITOR refuses (EINVAL). */
#define KDREG2_BAD_COOKIE_VALUE ((kdreg2_cookie_t)-1)

/* What MONITOR hands back; the key to the one-load validity check. */
struct kdreg2_monitoring_params {
	size_t location;	/* index into the monitoring-state array */
	uint32_t generation;	/* state value at the time of MONITOR */
};

/* One entry of the monitoring-state array (read-only to user space). */
struct kdreg2_monitoring_state {
	union {
		struct {
			unsigned int in_use : 1;
			unsigned int data : 31;
		} bits __attribute__((packed));
		uint32_t raw;
		KDREG2_ATOMIC32 state;
	} u;
};

struct kdreg2_status_data;

/*
 * CONFIG_DATA: size the context and map its status area.
 * in:  max_regions, how many regions may be monitored at once (0 allowed).
 * out: status_data, the read-only status area in the caller's memory.
 * May be called again to resize while no region is monitored and no event
 * is pending.  Errors: ENOSPC (max_regions above the module's
 * max_regions_limit parameter; the user's max_user_memory would be passed;
 * or the process already keeps 8 areas left behind by closed fds), ENOMEM,
 * EBUSY (regions monitored or events pending), EINTR (fatal signal), EIO.
 */
struct kdreg2_config_data {
	size_t max_regions;
	const struct kdreg2_status_data __user *status_data;
};

/* The read-only status area. Counters are read with kdreg2_read_counter(). */
struct kdreg2_status_data {
	uint64_t version;
	size_t max_regions;
	KDREG2_ATOMIC64 pending_events;	/* events readable right now */
	KDREG2_ATOMIC64 total_events;	/* events generated since open */
	KDREG2_ATOMIC64 num_active_regions;
	const struct kdreg2_monitoring_state __user *monitoring_state_base;
};

#ifndef __KERNEL__
static inline __attribute__((always_inline))
uint64_t kdreg2_read_counter(const KDREG2_ATOMIC64 *counter)
{
	return __atomic_load_n(counter, __ATOMIC_ACQUIRE);
}
#endif

/*
 * MONITOR: watch [addr, addr + length) under cookie.
 * Monitoring the same (addr, length, cookie) again returns the existing
 * params.  Errors: EINVAL (length 0, bad cookie, range wraps or leaves the
 * user address space), ENOSPC (max_regions monitored, no CONFIG_DATA yet,
 * or the user is at the module's max_user_regions), EBUSY (cookie already
 * used for another range), ENOMEM.
 */
struct kdreg2_ioctl_monitor {
	const void __user *addr;
	size_t length;
	kdreg2_cookie_t cookie;
	struct kdreg2_monitoring_params monitoring_params;	/* out */
};

#ifndef __KERNEL__
/* True once the region's translation changed (or the params are stale). */
static inline __attribute__((always_inline))
bool kdreg2_mapping_changed(const struct kdreg2_status_data *status_data,
			    const struct kdreg2_monitoring_params *params)
{
	const struct kdreg2_monitoring_state *ms;

	/* Same bound as kdreg2: location == max_regions is let through. */
	if (status_data->max_regions < params->location)
		return true;
	ms = status_data->monitoring_state_base + params->location;
	return __atomic_load_n(&ms->u.state, __ATOMIC_ACQUIRE) !=
	       params->generation;
}
#endif

/*
 * UNMONITOR: stop watching the region of cookie.
 * Errors: EINVAL (location out of range, or no CONFIG_DATA yet), ESRCH (no
 * region with this cookie: never monitored, already unmonitored, or already
 * reported by an event),
 * EBADSLT (params do not belong to this cookie's region).  A failed
 * UNMONITOR changes nothing.
 */
struct kdreg2_ioctl_unmonitor {
	kdreg2_cookie_t cookie;
	struct kdreg2_monitoring_params monitoring_params;
};

enum kdreg2_event_type {
	KDREG2_EVENT_MAPPING_CHANGE = 1,
};

/*
 * read() returns whole records.  A mapping-change record names one region;
 * if the module's per-fd event cap is ever reached, further regions are
 * folded into one record with cookie KDREG2_BAD_COOKIE_VALUE whose range
 * covers all of them.  Errors: EINVAL (buffer smaller than one record),
 * EAGAIN (O_NONBLOCK, and nothing pending or another reader busy), EACCES
 * (bad buffer, as kdreg2; the events stay queued), EIO.
 */
struct kdreg2_event {
	uint32_t type;
	uint32_t _alignment;
	union {
		struct kdreg2_mapping_change {
			const void __user *addr;
			size_t len;
			kdreg2_cookie_t cookie;
		} mapping_change;
	} u;
};

#define KDREG2_IOC_MAGIC 'k'
#define KDREG2_IOCTL_CONFIG_DATA \
	_IOWR(KDREG2_IOC_MAGIC, 1, struct kdreg2_config_data)
#define KDREG2_IOCTL_MONITOR \
	_IOWR(KDREG2_IOC_MAGIC, 2, struct kdreg2_ioctl_monitor)
#define KDREG2_IOCTL_UNMONITOR \
	_IOW(KDREG2_IOC_MAGIC, 3, struct kdreg2_ioctl_unmonitor)
/* Stop watching every region of this fd; pending events stay. */
#define KDREG2_IOCTL_UNMONITOR_ALL _IO(KDREG2_IOC_MAGIC, 4)
/* Discard every pending event. */
#define KDREG2_IOCTL_FLUSH _IO(KDREG2_IOC_MAGIC, 5)
/* Log this fd's counters to the kernel log. */
#define KDREG2_IOCTL_DUMP_STATS _IO(KDREG2_IOC_MAGIC, 6)

#ifndef KDREG2_MODNAME
#define KDREG2_MODNAME "kdreg2"
#endif
#define KDREG2_DEVICE_NAME "/dev/" KDREG2_MODNAME

#if defined(__x86_64__) && !defined(__cplusplus)
/* Pin the binary layout to kdreg2's on x86-64. */
_Static_assert(sizeof(struct kdreg2_config_data) == 16, "config_data");
_Static_assert(sizeof(struct kdreg2_status_data) == 48, "status_data");
_Static_assert(__builtin_offsetof(struct kdreg2_status_data, pending_events) == 16, "pending");
_Static_assert(__builtin_offsetof(struct kdreg2_status_data, monitoring_state_base) == 40, "base");
_Static_assert(sizeof(struct kdreg2_monitoring_params) == 16, "params");
_Static_assert(sizeof(struct kdreg2_monitoring_state) == 4, "state");
_Static_assert(sizeof(struct kdreg2_ioctl_monitor) == 40, "monitor");
_Static_assert(__builtin_offsetof(struct kdreg2_ioctl_monitor, monitoring_params) == 24, "monitor params");
_Static_assert(sizeof(struct kdreg2_ioctl_unmonitor) == 24, "unmonitor");
_Static_assert(sizeof(struct kdreg2_event) == 32, "event");
_Static_assert(__builtin_offsetof(struct kdreg2_event, u.mapping_change.cookie) == 24, "event cookie");
_Static_assert(KDREG2_IOCTL_CONFIG_DATA == 0xc0106b01, "CONFIG_DATA");
_Static_assert(KDREG2_IOCTL_MONITOR == 0xc0286b02, "MONITOR");
_Static_assert(KDREG2_IOCTL_UNMONITOR == 0x40186b03, "UNMONITOR");
_Static_assert(KDREG2_IOCTL_UNMONITOR_ALL == 0x6b04, "UNMONITOR_ALL");
_Static_assert(KDREG2_IOCTL_FLUSH == 0x6b05, "FLUSH");
_Static_assert(KDREG2_IOCTL_DUMP_STATS == 0x6b06, "DUMP_STATS");
#endif

#ifdef __cplusplus
}
#endif

#endif /* KDREG2_H */
