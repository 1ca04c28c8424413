/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mapwatch's own user ABI, on top of the kdreg2-compatible one in
 * <kdreg2.h>.  A client that uses none of this sees pure kdreg2 behaviour.
 *
 * Status area layout (one read-only mapping made by CONFIG_DATA):
 *   offset   0  struct kdreg2_status_data      (48 bytes, kdreg2's)
 *   offset  64  struct mapwatch_status_ext     (64 bytes)
 *   offset 128  monitoring-state array, max_regions + 1 entries of u32
 */
#ifndef MAPWATCH_UAPI_H
#define MAPWATCH_UAPI_H

#include "kdreg2.h"

#define MAPWATCH_DEVICE_NAME "/dev/mapwatch"

/* ABI version reported in kdreg2_status_data.version and the probe. */
#define MAPWATCH_ABI_VERSION 1

#define MAPWATCH_STATUS_EXT_OFFSET 64
#define MAPWATCH_STATE_ARRAY_OFFSET 128
#define MAPWATCH_STATUS_MAGIC 0x484354415750414dULL	/* "MAPWATCH" */

struct mapwatch_status_ext {
	uint64_t magic;			/* MAPWATCH_STATUS_MAGIC */
	uint64_t abi_version;		/* MAPWATCH_ABI_VERSION */
	/*
	 * Regions whose own event record could not be queued because the
	 * per-fd event cap was reached; they were folded into a covering
	 * event (cookie KDREG2_BAD_COOKIE_VALUE).  Their generation changed
	 * all the same.
	 */
	KDREG2_ATOMIC64 overflows;
	/* Invalidations skipped because they could not change a translation. */
	KDREG2_ATOMIC64 skipped_invalidations;
	uint64_t reserved[4];
};

#if defined(__x86_64__) && !defined(__cplusplus)
_Static_assert(sizeof(struct mapwatch_status_ext) == 64, "status_ext");
#endif

static inline const struct mapwatch_status_ext *
mapwatch_status_ext(const struct kdreg2_status_data *status)
{
	return (const struct mapwatch_status_ext *)
		((const char *)status + MAPWATCH_STATUS_EXT_OFFSET);
}

#endif /* MAPWATCH_UAPI_H */
