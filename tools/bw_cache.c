// SPDX-License-Identifier: GPL-2.0-only
/*
 * The three ways mapwatch-bw gets a memory registration for a message:
 *   none      ibv_reg_mr before, ibv_dereg_mr after: always right, slow;
 *   unsafe    a cache keyed by address that nobody tells about munmap: what
 *             a library without a memory monitor has, fast and wrong when
 *             the application frees and re-allocates its buffers;
 *   mapwatch  libmapwatch's registration cache; its reg/dereg callbacks are
 *             plain ibv_reg_mr/ibv_dereg_mr counted like the other modes'.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bw.h"
#include "mapwatch.h"

#define BW_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE)
#define UNSAFE_SLOTS 64

struct unsafe_entry {
	void *addr;
	size_t len;
	struct ibv_mr *mr;
};

struct bw_cache {
	enum bw_cache_mode mode;
	struct ibv_pd *pd;
	struct bw_stats st;
	struct unsafe_entry slot[UNSAFE_SLOTS];
	unsigned int next_victim;
	struct mapwatch *mw;
	struct mapwatch_cache *mc;
};

const char *const bw_cache_names[BW_NCACHE] = { "none", "unsafe", "mapwatch" };

static struct ibv_mr *reg(struct bw_cache *bc, void *addr, size_t len)
{
	struct ibv_mr *mr = ibv_reg_mr(bc->pd, addr, len, BW_ACCESS);

	if (!mr)
		bw_err(NULL, "ibv_reg_mr(%p, %zu): %s", addr, len,
		       strerror(errno));
	else
		bc->st.registrations++;
	return mr;
}

static void dereg(struct bw_cache *bc, struct ibv_mr *mr)
{
	ibv_dereg_mr(mr);
	bc->st.deregistrations++;
}

/* libmapwatch's callbacks: plain verbs registration on our PD. */
static void *mw_reg(void *ctx, void *addr, size_t len, int flags)
{
	struct bw_cache *bc = ctx;

	(void)flags;
	return reg(bc, addr, len);
}

static void mw_dereg(void *ctx, void *mr)
{
	dereg(ctx, mr);
}

static int mapwatch_create(struct bw_cache *bc, enum bw_backend backend,
			   char *why, size_t whylen)
{
	static const enum mapwatch_backend be[] = {
		[BW_BACKEND_AUTO] = MAPWATCH_BACKEND_AUTO,
		[BW_BACKEND_KERNEL] = MAPWATCH_BACKEND_KERNEL,
		[BW_BACKEND_UFFD] = MAPWATCH_BACKEND_USERFAULTFD,
	};
	struct mapwatch_cache_ops ops = {
		.reg = mw_reg, .dereg = mw_dereg, .ctx = bc,
	};
	struct mapwatch_cache_config cfg = { .max_entries = UNSAFE_SLOTS };
	const char *reason = NULL;
	int err = mapwatch_open(&bc->mw, be[backend], 4 * UNSAFE_SLOTS, &reason);

	if (err) {
		snprintf(why, whylen, "cannot open the %s monitor: %s%s",
			 bw_backend_names[backend],
			 reason ? reason : strerror(-err),
			 backend != BW_BACKEND_UFFD ?
			 " (--backend=userfaultfd needs no module)" : "");
		return -1;
	}
	bc->mc = mapwatch_cache_create(bc->mw, &ops, &cfg);
	if (!bc->mc) {
		snprintf(why, whylen, "mapwatch_cache_create: %s",
			 strerror(errno));
		mapwatch_close(bc->mw);
		return -1;
	}
	return 0;
}

struct bw_cache *bw_cache_create(enum bw_cache_mode mode,
				 enum bw_backend backend, struct ibv_pd *pd,
				 char *why, size_t whylen)
{
	struct bw_cache *bc = calloc(1, sizeof(*bc));

	if (!bc) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	bc->mode = mode;
	bc->pd = pd;
	if (mode == BW_CACHE_MAPWATCH &&
	    mapwatch_create(bc, backend, why, whylen)) {
		free(bc);
		return NULL;
	}
	return bc;
}

/* A naive cache: the address is the key, the MR's extent the only check. */
static int unsafe_get(struct bw_cache *bc, void *addr, size_t len,
		      struct bw_reg *r)
{
	struct unsafe_entry *e = NULL;

	for (int i = 0; i < UNSAFE_SLOTS; i++) {
		if (bc->slot[i].mr && bc->slot[i].addr == addr) {
			e = &bc->slot[i];
			break;
		}
	}
	if (e && e->len >= len) {
		bc->st.hits++;
	} else {
		if (!e) {
			e = &bc->slot[bc->next_victim++ % UNSAFE_SLOTS];
			if (e->mr)
				dereg(bc, e->mr);
		} else {
			dereg(bc, e->mr);	/* too short: replace it */
		}
		e->mr = reg(bc, addr, len);
		if (!e->mr)
			return -1;
		e->addr = addr;
		e->len = len;
	}
	r->lkey = e->mr->lkey;
	r->rkey = e->mr->rkey;
	r->priv = e->mr;
	return 0;
}

int bw_cache_get(struct bw_cache *bc, void *addr, size_t len,
		 struct bw_reg *r)
{
	struct ibv_mr *mr;

	switch (bc->mode) {
	case BW_CACHE_NONE:
		mr = reg(bc, addr, len);
		if (!mr)
			return -1;
		r->lkey = mr->lkey;
		r->rkey = mr->rkey;
		r->priv = mr;
		return 0;
	case BW_CACHE_UNSAFE:
		return unsafe_get(bc, addr, len, r);
	default:
		break;
	}
	r->priv = mapwatch_cache_get(bc->mc, addr, len, 0);
	if (!r->priv) {
		bw_err(NULL, "mapwatch_cache_get(%p, %zu): %s", addr, len,
		       strerror(errno));
		return -1;
	}
	mr = mapwatch_cache_entry_reg(r->priv);
	r->lkey = mr->lkey;
	r->rkey = mr->rkey;
	return 0;
}

void bw_cache_put(struct bw_cache *bc, struct bw_reg *r)
{
	if (bc->mode == BW_CACHE_NONE)
		dereg(bc, r->priv);
	else if (bc->mode == BW_CACHE_MAPWATCH)
		mapwatch_cache_put(bc->mc, r->priv);
	r->priv = NULL;
}

void bw_cache_stats(struct bw_cache *bc, struct bw_stats *st)
{
	struct mapwatch_cache_stats ms;

	*st = bc->st;
	if (bc->mode != BW_CACHE_MAPWATCH)
		return;
	mapwatch_cache_get_stats(bc->mc, &ms);
	st->hits = ms.hits;
	st->invalidations = ms.invalidations;
	memcpy(st->by_reason, ms.by_reason, sizeof(st->by_reason));
	st->pages_kept = ms.pages_kept;
}

const char *bw_cache_backend(struct bw_cache *bc)
{
	if (!bc->mw)
		return "-";
	return mapwatch_backend_name(mapwatch_backend(bc->mw));
}

void bw_cache_destroy(struct bw_cache *bc)
{
	if (!bc)
		return;
	for (int i = 0; i < UNSAFE_SLOTS; i++)
		if (bc->slot[i].mr)
			dereg(bc, bc->slot[i].mr);
	if (bc->mc)
		mapwatch_cache_destroy(bc->mc);
	if (bc->mw)
		mapwatch_close(bc->mw);
	free(bc);
}
