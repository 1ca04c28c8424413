// SPDX-License-Identifier: MIT
/*
 * A registration cache the way a libfabric provider (or a UCX transport)
 * uses one, over ibverbs:
 *  - the access flags and protection domain of each registration come with
 *    the call (mapwatch_cache_get_arg -> ops.reg_ex), as fi_mr_reg's access
 *    and domain do.  Only the flags are part of the cache's key (a hit has
 *    at least the requested ones); arg is not: a hit returns the MR of
 *    whichever call missed first.  So one cache per protection domain (as
 *    UCX has one rcache per memory domain), all over one monitor;
 *  - the keys live in the entry's own storage (cfg.entry_size), no malloc;
 *  - when memory changes, the invalidate callback revokes the remote key
 *    from the peer (here a table standing for a peer's cache of rkeys)
 *    before the MR is deregistered, so no peer writes through it again.
 * The program writes with RDMA WRITE into a buffer through the cached rkey,
 * frees the buffer, maps new memory at the same address and writes again:
 * the data must land in the new memory, through a new registration.
 *
 * usage: verbs_provider [DEVICE]   (default: the first RDMA device)
 * Exits 0 when every check holds.  Build: make (pkg-config mapwatch,
 * -libverbs).  Needs an RDMA device: Soft-RoCE will do (rdma link add
 * rxe0 type rxe netdev eth0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <infiniband/verbs.h>
#include <mapwatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BUF (64 * 1024)

static int failed;

#define CHECK(cond, ...)						\
	do {								\
		if (cond) {						\
			printf("ok   " __VA_ARGS__);			\
		} else {						\
			printf("FAIL " __VA_ARGS__);			\
			failed = 1;					\
		}							\
		printf("\n");						\
	} while (0)

static void die(const char *what)
{
	fprintf(stderr, "verbs_provider: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* What reg_ex gets with each call: fi_mr_reg's domain and access.  The
 * access is also passed as the get's flags, which the cache matches; the
 * domain is always this cache's one PD (arg is not matched on a hit). */
struct reg_arg {
	struct ibv_pd *pd;
	int access;
};

/* The entry's storage: what the provider hands to fi_mr_key/fi_mr_desc. */
struct keys {
	uint32_t lkey, rkey;
};

/* A peer's cache of our remote keys (in a real job: on another node,
 * told through the provider's own messages). */
struct peer {
	uint32_t rkey[16];
	int n;
};

static void peer_learn(struct peer *p, uint32_t rkey)
{
	for (int i = 0; i < p->n; i++)
		if (p->rkey[i] == rkey)
			return;
	if (p->n < 16)
		p->rkey[p->n++] = rkey;
}

static int peer_knows(const struct peer *p, uint32_t rkey)
{
	for (int i = 0; i < p->n; i++)
		if (p->rkey[i] == rkey)
			return 1;
	return 0;
}

static void *reg_ex(void *ctx, void *addr, size_t len, int flags, void *arg,
		    void *data)
{
	struct reg_arg *a = arg;
	struct keys *k = data;
	struct ibv_mr *mr;

	(void)ctx;
	(void)flags;
	mr = ibv_reg_mr(a->pd, addr, len, a->access);
	if (!mr)
		return NULL;		/* errno says why: the get fails with it */
	k->lkey = mr->lkey;
	k->rkey = mr->rkey;
	return mr;
}

static void dereg(void *ctx, void *reg)
{
	(void)ctx;
	ibv_dereg_mr(reg);
}

/* Before the dereg: no peer may use the key any more. */
static void invalidate(void *ctx, struct mapwatch_cache_entry *e)
{
	struct peer *p = ctx;
	const struct keys *k = mapwatch_cache_entry_data(e);

	for (int i = 0; i < p->n; i++) {
		if (p->rkey[i] == k->rkey) {
			p->rkey[i] = p->rkey[--p->n];
			printf("     invalidate: rkey 0x%x revoked at the peer\n",
			       k->rkey);
			return;
		}
	}
}

struct rdma {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
};

static void rdma_open(struct rdma *r, const char *name)
{
	struct ibv_device **list;
	struct ibv_qp_init_attr qa = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_port_attr pa;
	struct ibv_qp_attr a;
	union ibv_gid gid;
	int n = 0, gix = -1;

	list = ibv_get_device_list(&n);
	for (int i = 0; list && i < n && !r->ctx; i++)
		if (!name || !strcmp(ibv_get_device_name(list[i]), name))
			r->ctx = ibv_open_device(list[i]);
	if (list)
		ibv_free_device_list(list);
	if (!r->ctx)
		die("no RDMA device");
	r->pd = ibv_alloc_pd(r->ctx);
	r->cq = ibv_create_cq(r->ctx, 8, NULL, NULL, 0);
	if (!r->pd || !r->cq || ibv_query_port(r->ctx, 1, &pa))
		die("pd/cq/port");
	/* RoCE needs a GID: the first one set (Soft-RoCE's link-local). */
	for (int i = 0; i < pa.gid_tbl_len && i < 64 && gix < 0; i++)
		if (!ibv_query_gid(r->ctx, 1, i, &gid) &&
		    (gid.global.subnet_prefix || gid.global.interface_id))
			gix = i;
	if (gix < 0)
		die("no GID");
	qa.send_cq = qa.recv_cq = r->cq;
	r->qp = ibv_create_qp(r->pd, &qa);
	if (!r->qp)
		die("ibv_create_qp");
	/* One RC QP connected to itself: the "peer" is this process. */
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.port_num = 1;
	a.qp_access_flags = IBV_ACCESS_REMOTE_WRITE;
	if (ibv_modify_qp(r->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		die("QP to INIT");
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = pa.active_mtu;
	a.dest_qp_num = r->qp->qp_num;
	a.rq_psn = 1;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 1;
	a.ah_attr.port_num = 1;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.hop_limit = 1;
	a.ah_attr.grh.sgid_index = (uint8_t)gix;
	a.ah_attr.grh.dgid = gid;
	if (ibv_modify_qp(r->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		die("QP to RTR");
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = 1;
	a.max_rd_atomic = 1;
	if (ibv_modify_qp(r->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			  IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
			  IBV_QP_MAX_QP_RD_ATOMIC))
		die("QP to RTS");
}

/* RDMA WRITE len bytes from src (lkey) to dst (rkey); 0 on success. */
static int rdma_write(struct rdma *r, void *src, uint32_t lkey, void *dst,
		      uint32_t rkey, size_t len)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)src, .length = (uint32_t)len, .lkey = lkey,
	};
	struct ibv_send_wr wr = {
		.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE,
		.send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = (uintptr_t)dst, .rkey = rkey },
	}, *bad;
	struct ibv_wc wc;
	time_t end = time(NULL) + 20;
	int n;

	if (ibv_post_send(r->qp, &wr, &bad))
		return -1;
	while ((n = ibv_poll_cq(r->cq, 1, &wc)) == 0 && time(NULL) < end)
		usleep(100);
	return n == 1 && wc.status == IBV_WC_SUCCESS ? 0 : -1;
}

static void *map_at(void *at)
{
	void *p = mmap(at, BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE |
		       MAP_ANONYMOUS | (at ? MAP_FIXED_NOREPLACE : 0), -1, 0);

	if (p == MAP_FAILED || (at && p != at))
		die("mmap");
	return p;
}

int main(int argc, char **argv)
{
	struct rdma r = { 0 };
	struct peer peer = { .n = 0 };
	struct mapwatch *mw;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *se, *de, *de2;
	const struct keys *sk, *dk;
	struct mapwatch_cache_stats st;
	const char *why = NULL;
	char *src, *dst;
	uint32_t old_rkey;
	int ret;
	struct mapwatch_cache_ops ops = {
		.reg_ex = reg_ex, .dereg = dereg, .invalidate = invalidate,
		.ctx = &peer,
	};
	struct mapwatch_cache_config cfg = { .entry_size = sizeof(struct keys) };

	rdma_open(&r, argc > 1 ? argv[1] : NULL);
	struct reg_arg local = { r.pd, IBV_ACCESS_LOCAL_WRITE };
	struct reg_arg remote = { r.pd, IBV_ACCESS_LOCAL_WRITE |
				  IBV_ACCESS_REMOTE_WRITE };

	/* The module if loaded, else what the system offers (why says). */
	ret = mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO_ANY, 1024, &why);
	if (ret) {
		fprintf(stderr, "verbs_provider: no monitor: %s\n", why);
		return 2;
	}
	printf("     monitor: %s%s%s\n", mapwatch_backend_name(mapwatch_backend(mw)),
	       why ? ": " : "", why ? why : "");
	c = mapwatch_cache_create(mw, &ops, &cfg);
	if (!c)
		die("mapwatch_cache_create");

	src = map_at(NULL);
	dst = map_at(NULL);
	memset(src, 'A', BUF);
	memset(dst, 0, BUF);
	/* The flags argument of a get (here the access bits) must be matched
	 * by a hit: a local-only MR is never handed out for a remote write. */
	se = mapwatch_cache_get_arg(c, src, BUF, IBV_ACCESS_LOCAL_WRITE, &local);
	de = mapwatch_cache_get_arg(c, dst, BUF, IBV_ACCESS_REMOTE_WRITE, &remote);
	if (!se || !de)
		die("mapwatch_cache_get_arg");
	sk = mapwatch_cache_entry_data(se);
	dk = mapwatch_cache_entry_data(de);
	peer_learn(&peer, dk->rkey);		/* the rkey goes to the peer */
	CHECK(!rdma_write(&r, src, sk->lkey, dst, dk->rkey, BUF) && dst[0] == 'A' &&
	      dst[BUF - 1] == 'A', "write through the cached rkey 0x%x", dk->rkey);
	mapwatch_cache_put(c, de);
	/* The next transfer to the same buffer: a hit, the same keys. */
	de2 = mapwatch_cache_get_arg(c, dst, BUF, IBV_ACCESS_REMOTE_WRITE, &remote);
	CHECK(de2 == de, "second get of the buffer is a hit");
	mapwatch_cache_put(c, de2);

	/* The application frees the buffer; new memory lands at its address. */
	old_rkey = dk->rkey;
	if (munmap(dst, BUF))
		die("munmap");
	dst = map_at(dst);
	memset(dst, 0, BUF);
	/* The provider's progress (its monitor thread in libfabric). */
	mapwatch_cache_progress(c);
	CHECK(!peer_knows(&peer, old_rkey), "the old rkey 0x%x is revoked at the peer",
	      old_rkey);
	memset(src, 'B', BUF);
	de = mapwatch_cache_get_arg(c, dst, BUF, IBV_ACCESS_REMOTE_WRITE, &remote);
	if (!de)
		die("mapwatch_cache_get_arg");
	dk = mapwatch_cache_entry_data(de);
	peer_learn(&peer, dk->rkey);
	CHECK(!rdma_write(&r, src, sk->lkey, dst, dk->rkey, BUF) && dst[0] == 'B' &&
	      dst[BUF - 1] == 'B', "write lands in the new memory (rkey 0x%x)", dk->rkey);
	mapwatch_cache_put(c, de);
	mapwatch_cache_put(c, se);

	mapwatch_cache_get_stats(c, &st);
	printf("     cache: %llu hits, %llu misses, %llu invalidations, %llu registrations\n",
	       (unsigned long long)st.hits, (unsigned long long)st.misses,
	       (unsigned long long)st.invalidations,
	       (unsigned long long)st.registrations);
	CHECK(st.hits == 1 && st.invalidations == 1 && st.registrations == 3,
	      "1 hit, 1 invalidation, 3 registrations");
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
	ibv_destroy_qp(r.qp);
	ibv_destroy_cq(r.cq);
	ibv_dealloc_pd(r.pd);
	ibv_close_device(r.ctx);
	munmap(src, BUF);
	munmap(dst, BUF);
	return failed;
}
