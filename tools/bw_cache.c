// SPDX-License-Identifier: GPL-2.0-only
/*
 * The three ways mapwatch-bw gets a memory registration for a message:
 *   none      ibv_reg_mr before, ibv_dereg_mr after: always right, slow;
 *   unsafe    a cache keyed by address that nobody tells about munmap: what
 *             a library without a memory monitor has, fast and wrong when
 *             the application frees and re-allocates its buffers;
 *   mapwatch  libmapwatch's registration cache; its reg/dereg callbacks are
 *             plain ibv_reg_mr/ibv_dereg_mr counted like the other modes'.
 *   odp       On-Demand Paging: the same table as unsafe, but each MR is
 *             registered with IBV_ACCESS_ON_DEMAND, so the NIC faults pages
 *             in through the mapping as it is now: no monitor, no pinning;
 *   odp-prefetch  odp, and every get asks ibv_advise_mr() to fault the
 *             range in before the transfer (PREFETCH_WRITE, synchronous).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bw.h"
#include "mapwatch.h"

#define BW_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE)
#define BW_ODP_NEED (IBV_ODP_SUPPORT_SEND | IBV_ODP_SUPPORT_RECV | \
		     IBV_ODP_SUPPORT_WRITE)
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
	int access;
};

const char *const bw_cache_names[BW_NCACHE] = { "none", "unsafe", "mapwatch",
						"odp", "odp-prefetch" };

static struct ibv_mr *reg(struct bw_cache *bc, void *addr, size_t len)
{
	struct ibv_mr *mr = ibv_reg_mr(bc->pd, addr, len, bc->access);

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

/* The device must do ODP for what a message needs (RC send, receive and
 * RDMA WRITE); with prefetch, ibv_advise_mr() must work too. */
static int odp_check(struct bw_cache *bc, char *why, size_t whylen)
{
	struct ibv_device_attr_ex a;
	struct ibv_mr *mr;
	struct ibv_sge sge;
	static char probe[4096] __attribute__((aligned(4096)));
	int err;

	memset(&a, 0, sizeof(a));
	err = ibv_query_device_ex(bc->pd->context, NULL, &a);
	if (err) {
		snprintf(why, whylen, "ibv_query_device_ex: %s", strerror(err));
		return -1;
	}
	if (!(a.odp_caps.general_caps & IBV_ODP_SUPPORT) ||
	    (a.odp_caps.per_transport_caps.rc_odp_caps & BW_ODP_NEED) !=
	    BW_ODP_NEED) {
		snprintf(why, whylen, "the device has no On-Demand Paging for RC send, receive and write (general caps %#llx, RC caps %#x): it needs a kernel whose driver has ODP (rdma_rxe from Linux 6.13 on)",
			 (unsigned long long)a.odp_caps.general_caps,
			 a.odp_caps.per_transport_caps.rc_odp_caps);
		return -1;
	}
	bc->access = BW_ACCESS | IBV_ACCESS_ON_DEMAND;
	if (bc->mode != BW_CACHE_ODP_PREFETCH)
		return 0;
	mr = ibv_reg_mr(bc->pd, probe, sizeof(probe), bc->access);
	if (!mr) {
		snprintf(why, whylen, "ibv_reg_mr(IBV_ACCESS_ON_DEMAND): %s",
			 strerror(errno));
		return -1;
	}
	sge = (struct ibv_sge){ .addr = (uintptr_t)probe,
				.length = sizeof(probe), .lkey = mr->lkey };
	err = ibv_advise_mr(bc->pd, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
			    IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);
	ibv_dereg_mr(mr);
	if (err) {
		snprintf(why, whylen, "ibv_advise_mr(PREFETCH_WRITE) on an ODP MR: %s (the user-space provider of this device does not implement it)",
			 strerror(err));
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
	bc->access = BW_ACCESS;
	if ((mode == BW_CACHE_ODP || mode == BW_CACHE_ODP_PREFETCH) &&
	    odp_check(bc, why, whylen)) {
		free(bc);
		return NULL;
	}
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

static int prefetch(struct bw_cache *bc, void *addr, size_t len,
		    struct bw_reg *r)
{
	struct ibv_sge sge = { .addr = (uintptr_t)addr, .length = (uint32_t)len,
			       .lkey = r->lkey };
	int err = ibv_advise_mr(bc->pd, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
				IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);

	if (err) {
		bw_err(NULL, "ibv_advise_mr(%p, %zu): %s", addr, len,
		       strerror(err));
		return -1;
	}
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
	case BW_CACHE_ODP:
		return unsafe_get(bc, addr, len, r);
	case BW_CACHE_ODP_PREFETCH:
		if (unsafe_get(bc, addr, len, r))
			return -1;
		return prefetch(bc, addr, len, r);
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
