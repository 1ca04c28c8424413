/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libmapwatch-verbs: libmapwatch's registration cache over ibverbs.
 *
 *   struct mapwatch *mw;   mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO, n, &why);
 *   struct mapwatch_cache *c =
 *           mapwatch_verbs_cache_create(mw, pd, IBV_ACCESS_LOCAL_WRITE, NULL);
 *   struct mapwatch_cache_entry *e = mapwatch_cache_get(c, buf, len, 0);
 *   struct ibv_mr *mr = mapwatch_verbs_mr(e);   ... lkey/rkey for the I/O ...
 *   mapwatch_cache_put(c, e);
 *   mapwatch_cache_destroy(c);  mapwatch_close(mw);
 *
 * Entries are ibv_reg_mr() registrations on pd of whole pages (or the
 * configured align) with the access flags given here ORed with the flags of
 * mapwatch_cache_get() (extra IBV_ACCESS_* bits: a hit needs an entry
 * registered with all of them).  An MR covers at least the request, and may
 * start below it: use the MR's lkey/rkey with the caller's own addresses.
 * Everything in <mapwatch.h> about the cache (policy, threads, callbacks)
 * holds, and so does its ABI (symbol versions MAPWATCH_VERBS_1.0, ...; the
 * config is passed with its size).  Link with -lmapwatch-verbs -lmapwatch
 * -libverbs.
 */
#ifndef MAPWATCH_VERBS_H
#define MAPWATCH_VERBS_H

#include <infiniband/verbs.h>

#include "mapwatch.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A cache over mw whose registrations are ibv_reg_mr(pd, ..., access |
 * flags).  NULL with errno set on failure (EINVAL: NULL mw or pd).  The PD
 * must outlive the cache; mapwatch_cache_destroy() releases everything.
 * The errno of a failed ibv_reg_mr (ENOMEM past RLIMIT_MEMLOCK, EFAULT,
 * EINVAL...) is what mapwatch_cache_get() fails with.
 */
MAPWATCH_EXPORT struct mapwatch_cache *
mapwatch_verbs_cache_create_sized(struct mapwatch *mw, struct ibv_pd *pd,
				  int access,
				  const struct mapwatch_cache_config *cfg,
				  size_t cfg_size);
static inline struct mapwatch_cache *
mapwatch_verbs_cache_create(struct mapwatch *mw, struct ibv_pd *pd, int access,
			    const struct mapwatch_cache_config *cfg)
{
	return mapwatch_verbs_cache_create_sized(mw, pd, access, cfg,
						 sizeof(*cfg));
}

/* The memory region of an entry of such a cache. */
MAPWATCH_EXPORT struct ibv_mr *
mapwatch_verbs_mr(const struct mapwatch_cache_entry *e);

#ifdef __cplusplus
}
#endif

#endif /* MAPWATCH_VERBS_H */
