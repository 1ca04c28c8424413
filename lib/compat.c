// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The functions of release 1.0.0 whose calling convention changed, kept
 * for binaries linked against it (lib/libmapwatch.map, version
 * MAPWATCH_1.0).  1.0.0 passed its structs without a size: they are the
 * first release's layout, which every later struct begins with.  Only in
 * the shared library (lib/lib.mk builds this file with
 * MAPWATCH_BUILD_SHARED): a program linked today gets the *_sized()
 * functions through the inline wrappers of <mapwatch.h>.
 */
#ifdef MAPWATCH_BUILD_SHARED
#include "internal.h"

#define COMPAT_1_0(name) \
	__attribute__((symver(#name "@MAPWATCH_1.0"), visibility("default")))

COMPAT_1_0(mapwatch_get_stats)
void mw_get_stats_1_0(const struct mapwatch *mw, struct mapwatch_stats *s)
{
	mapwatch_get_stats_sized(mw, s, MW_STATS_SIZE_1_0);
}

COMPAT_1_0(mapwatch_cache_create)
struct mapwatch_cache *mw_cache_create_1_0(struct mapwatch *mw,
				const struct mapwatch_cache_ops *ops,
				const struct mapwatch_cache_config *cfg)
{
	return mapwatch_cache_create_sized(mw, ops, MW_CACHE_OPS_SIZE_1_0,
					   cfg, MW_CACHE_CONFIG_SIZE_1_0);
}

COMPAT_1_0(mapwatch_cache_get_stats)
void mw_cache_get_stats_1_0(struct mapwatch_cache *c,
			    struct mapwatch_cache_stats *s)
{
	mapwatch_cache_get_stats_sized(c, s, MW_CACHE_STATS_SIZE_1_0);
}
/*
 * In 1.0.0 MAPWATCH_BACKEND_AUTO meant "the kernel module, else
 * userfaultfd" (tests/abi/mapwatch-1.0.h); since MAPWATCH_1.3 it never
 * settles below MAPWATCH_F_SYNC, which is AUTO_ANY's old meaning here.  A
 * program built before then binds this definition (an unversioned
 * reference of 1.0.0's day binds MAPWATCH_1.0 too) and keeps the fallback
 * it was written for; *why says what it fell back to.  Review 2026-12-07
 * F17.
 */
COMPAT_1_0(mapwatch_open)
int mw_open_1_0(struct mapwatch **out, enum mapwatch_backend backend,
		size_t max_watches, const char **why)
{
	if (backend == MAPWATCH_BACKEND_AUTO)
		backend = MAPWATCH_BACKEND_AUTO_ANY;
	return mapwatch_open(out, backend, max_watches, why);
}
#endif /* MAPWATCH_BUILD_SHARED */
