// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The verbs adaptor: cache callbacks over ibv_reg_mr/ibv_dereg_mr.  Built
 * into its own library (libmapwatch-verbs) by lib/lib.mk, only when
 * libibverbs is installed, so libmapwatch itself never needs libibverbs.
 * Elsewhere (builds that compile every file of lib/) this file is empty.
 */
#ifdef MAPWATCH_BUILD_VERBS
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "mapwatch_verbs.h"

struct verbs_ctx {
	struct ibv_pd *pd;
	int access;
};

static void *verbs_reg(void *ctx, void *addr, size_t len, int flags)
{
	struct verbs_ctx *v = ctx;
	struct ibv_mr *mr;

	errno = 0;
	mr = ibv_reg_mr(v->pd, addr, len, v->access | flags);
	if (!mr && !errno)
		errno = EIO;
	return mr;
}

static void verbs_dereg(void *ctx, void *reg)
{
	(void)ctx;
	/* Fails only for an MR still bound to a memory window: nothing
	 * the cache could do about it. */
	ibv_dereg_mr(reg);
}

static void verbs_release(void *ctx)
{
	free(ctx);
}

struct mapwatch_cache *mapwatch_verbs_cache_create_sized(struct mapwatch *mw,
			struct ibv_pd *pd, int access,
			const struct mapwatch_cache_config *cfg, size_t cfg_size)
{
	struct mapwatch_cache_ops ops = {
		.reg = verbs_reg, .dereg = verbs_dereg, .release = verbs_release,
	};
	struct mapwatch_cache *c;
	struct verbs_ctx *v;

	if (!mw || !pd) {
		errno = EINVAL;
		return NULL;
	}
	v = malloc(sizeof(*v));
	if (!v)
		return NULL;
	v->pd = pd;
	v->access = access;
	ops.ctx = v;
	c = mapwatch_cache_create_sized(mw, &ops, sizeof(ops), cfg, cfg_size);
	if (!c) {
		int e = errno;

		free(v);
		errno = e;
	}
	return c;
}

struct ibv_mr *mapwatch_verbs_mr(const struct mapwatch_cache_entry *e)
{
	return mapwatch_cache_entry_reg(e);
}

#ifdef MAPWATCH_BUILD_SHARED
/* Release 1.0.0 passed no size: its config is the first release's struct. */
__attribute__((symver("mapwatch_verbs_cache_create@MAPWATCH_VERBS_1.0"),
	       visibility("default")))
struct mapwatch_cache *mw_verbs_cache_create_1_0(struct mapwatch *mw,
			struct ibv_pd *pd, int access,
			const struct mapwatch_cache_config *cfg)
{
	return mapwatch_verbs_cache_create_sized(mw, pd, access, cfg,
		offsetof(struct mapwatch_cache_config, align) + sizeof(size_t));
}
#endif
#endif /* MAPWATCH_BUILD_VERBS */
