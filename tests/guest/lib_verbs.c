// SPDX-License-Identifier: GPL-2.0-only
/*
 * libmapwatch-verbs on Soft-RoCE in the guest: the registration cache over
 * ibv_reg_mr with the kernel backend.  Hits and misses give the same or a
 * new MR; after munmap and a new mapping at the same address the next get
 * registers the new memory, and an RDMA WRITE through a loopback RC QP
 * proves it: through the new MR the data lands in the new buffer, through
 * the old (stale, still pinned) MR it does not.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <sys/mman.h>

#include "host/libtest.h"
#include "mapwatch_verbs.h"

#define ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | \
		IBV_ACCESS_REMOTE_READ)

struct rdma {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	int gid_index;
	union ibv_gid gid;
};

static void rdma_open(struct rdma *r)
{
	struct ibv_device **list;
	struct ibv_port_attr pa;
	int n = 0;

	tap_rxe_up();
	list = ibv_get_device_list(&n);
	if (!list || !n)
		NEED("rxe", "no RDMA device");
	for (int i = 0; i < n && !r->ctx; i++)
		if (!strcmp(ibv_get_device_name(list[i]), "rxe0"))
			r->ctx = ibv_open_device(list[i]);
	ibv_free_device_list(list);
	ASSERT_TRUE(r->ctx != NULL);
	r->pd = ibv_alloc_pd(r->ctx);
	ASSERT_TRUE(r->pd != NULL);
	ASSERT_OK(ibv_query_port(r->ctx, 1, &pa));
	r->gid_index = -1;
	for (int i = 0; i < pa.gid_tbl_len && i < 64; i++) {
		struct ibv_gid_entry ge;
		static const uint8_t zero[16];

		if (ibv_query_gid_ex(r->ctx, 1, i, &ge, 0) ||
		    !memcmp(ge.gid.raw, zero, 16))
			continue;
		if (r->gid_index < 0 || ge.gid_type == IBV_GID_TYPE_ROCE_V2) {
			r->gid_index = i;
			r->gid = ge.gid;
		}
	}
	ASSERT_GE(r->gid_index, 0);
}

/* One RC QP connected to itself. */
static void loopback_qp(struct rdma *r)
{
	struct ibv_qp_init_attr qa = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_port_attr pa;
	struct ibv_qp_attr a;

	r->cq = ibv_create_cq(r->ctx, 8, NULL, NULL, 0);
	ASSERT_TRUE(r->cq != NULL);
	qa.send_cq = qa.recv_cq = r->cq;
	r->qp = ibv_create_qp(r->pd, &qa);
	ASSERT_TRUE(r->qp != NULL);
	ASSERT_OK(ibv_query_port(r->ctx, 1, &pa));

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.port_num = 1;
	a.qp_access_flags = ACCESS;
	ASSERT_EQ(ibv_modify_qp(r->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				IBV_QP_PORT | IBV_QP_ACCESS_FLAGS), 0);
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = pa.active_mtu;
	a.dest_qp_num = r->qp->qp_num;
	a.rq_psn = 100;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 1;
	a.ah_attr.port_num = 1;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.hop_limit = 1;
	a.ah_attr.grh.sgid_index = (uint8_t)r->gid_index;
	a.ah_attr.grh.dgid = r->gid;
	ASSERT_EQ(ibv_modify_qp(r->qp, &a, IBV_QP_STATE | IBV_QP_AV |
				IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
				IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
				IBV_QP_MIN_RNR_TIMER), 0);
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = 100;
	a.max_rd_atomic = 1;
	ASSERT_EQ(ibv_modify_qp(r->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
				IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
				IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC), 0);
}

/* RDMA WRITE len bytes from (src, src_mr) to remote address dst through
 * rkey; waits for the completion. */
static void rdma_write(struct rdma *r, void *src, struct ibv_mr *src_mr,
		       void *dst, uint32_t rkey, size_t len)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)src, .length = (uint32_t)len, .lkey = src_mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = 1, .sg_list = &sge, .num_sge = 1,
		.opcode = IBV_WR_RDMA_WRITE, .send_flags = IBV_SEND_SIGNALED,
		.wr.rdma = { .remote_addr = (uintptr_t)dst, .rkey = rkey },
	}, *bad;
	struct ibv_wc wc;
	double end = now_s() + 10;
	int n;

	ASSERT_EQ(ibv_post_send(r->qp, &wr, &bad), 0);
	while ((n = ibv_poll_cq(r->cq, 1, &wc)) == 0) {
		ASSERT_TRUE(now_s() < end);
		usleep(100);
	}
	ASSERT_EQ(n, 1);
	if (wc.status != IBV_WC_SUCCESS)
		tap_diag("completion: %s", ibv_wc_status_str(wc.status));
	ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
}

static struct mapwatch *kernel_monitor(void)
{
	return open_backend(MAPWATCH_BACKEND_KERNEL, 1024);
}

static char *map_pages(void *at, size_t n, int extra)
{
	char *p = mmap(at, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	return p;
}

static struct mapwatch_cache_stats cstats(struct mapwatch_cache *c)
{
	struct mapwatch_cache_stats s;

	mapwatch_cache_get_stats(c, &s);
	return s;
}

TEST(hit_miss_and_covering_mr)
{
	struct rdma r = { 0 };
	struct mapwatch *mw;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e1, *e2, *e3;
	struct ibv_mr *mr;
	char *p;

	rdma_open(&r);
	mw = kernel_monitor();
	c = mapwatch_verbs_cache_create(mw, r.pd, ACCESS, NULL);
	ASSERT_TRUE(c != NULL);
	p = map_pages(NULL, 8, 0);
	memset(p, 1, 8 * PAGE);
	e1 = mapwatch_cache_get(c, p + 10, 3 * PAGE, 0);
	ASSERT_TRUE(e1 != NULL);
	mr = mapwatch_verbs_mr(e1);
	ASSERT_TRUE(mr != NULL);
	ASSERT_TRUE(mr->pd == r.pd);
	ASSERT_TRUE(mr->addr == p);			/* whole pages */
	ASSERT_EQ(mr->length, 4 * PAGE);
	mapwatch_cache_put(c, e1);
	e2 = mapwatch_cache_get(c, p, 2 * PAGE, 0);	/* same start: hit */
	ASSERT_TRUE(e2 == e1);
	e3 = mapwatch_cache_get(c, p + PAGE, PAGE, 0);	/* inside: hit */
	ASSERT_TRUE(e3 == e1);
	ASSERT_EQ(mapwatch_verbs_mr(e3)->lkey, mr->lkey);
	mapwatch_cache_put(c, e2);
	mapwatch_cache_put(c, e3);
	e2 = mapwatch_cache_get(c, p, 8 * PAGE, 0);	/* larger: miss */
	ASSERT_TRUE(e2 != e1);
	ASSERT_EQ(mapwatch_verbs_mr(e2)->length, 8 * PAGE);
	mapwatch_cache_put(c, e2);
	ASSERT_EQ(cstats(c).hits, 2);
	ASSERT_EQ(cstats(c).misses, 2);
	ASSERT_EQ(cstats(c).registrations, 2);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
	ibv_dealloc_pd(r.pd);
	ibv_close_device(r.ctx);
}

TEST(invalidated_by_munmap)
{
	struct rdma r = { 0 };
	struct mapwatch *mw;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *e;
	char *p;

	rdma_open(&r);
	mw = kernel_monitor();
	c = mapwatch_verbs_cache_create(mw, r.pd, ACCESS, NULL);
	ASSERT_TRUE(c != NULL);
	p = map_pages(NULL, 4, 0);
	memset(p, 1, 4 * PAGE);
	e = mapwatch_cache_get(c, p, 4 * PAGE, 0);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_put(c, e);
	/* The MR pins the pages; the module sees the unmap all the same. */
	ASSERT_OK(munmap(p + PAGE, PAGE));
	ASSERT_TRUE(mapwatch_pending(mw));
	ASSERT_TRUE(mapwatch_cache_entry_changed(e));	/* idle, still cached */
	e = mapwatch_cache_get(c, p, PAGE, 0);		/* events read: gone */
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(cstats(c).invalidations, 1);
	ASSERT_EQ(cstats(c).deregistrations, 1);	/* ibv_dereg_mr done */
	ASSERT_EQ(cstats(c).registrations, 2);
	mapwatch_cache_put(c, e);
	/* Unmapped memory cannot be registered: ibv_reg_mr's errno. */
	errno = 0;
	ASSERT_TRUE(mapwatch_cache_get(c, p + PAGE, PAGE, 0) == NULL);
	tap_diag("ibv_reg_mr of unmapped memory: %s", strerror(errno));
	ASSERT_NE(errno, 0);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
	ibv_dealloc_pd(r.pd);
	ibv_close_device(r.ctx);
}

/* The stale-registration scenario end to end, with real RDMA. */
TEST(new_memory_at_the_same_address_gets_a_new_mr)
{
	struct rdma r = { 0 };
	struct mapwatch *mw;
	struct mapwatch_cache *c;
	struct mapwatch_cache_entry *old, *e;
	struct ibv_mr *src_mr;
	char *p, *q, *src;

	rdma_open(&r);
	loopback_qp(&r);
	mw = kernel_monitor();
	c = mapwatch_verbs_cache_create(mw, r.pd, ACCESS, NULL);
	ASSERT_TRUE(c != NULL);
	src = map_pages(NULL, 1, 0);
	memset(src, 'N', PAGE);
	src_mr = ibv_reg_mr(r.pd, src, PAGE, IBV_ACCESS_LOCAL_WRITE);
	ASSERT_TRUE(src_mr != NULL);

	p = map_pages(NULL, 4, 0);
	memset(p, 'o', 4 * PAGE);
	old = mapwatch_cache_get(c, p, 4 * PAGE, 0);	/* held: stays pinned */
	ASSERT_TRUE(old != NULL);
	ASSERT_OK(munmap(p, 4 * PAGE));
	ASSERT_TRUE(mapwatch_cache_entry_changed(old));	/* synchronous */
	q = map_pages(p, 4, MAP_FIXED_NOREPLACE);
	ASSERT_TRUE(q == p);
	memset(q, 'n', 4 * PAGE);

	e = mapwatch_cache_get(c, q, 4 * PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(e != old);
	ASSERT_EQ(cstats(c).misses, 2);
	ASSERT_EQ(cstats(c).registrations, 2);
	/* Through the new MR: lands in the new memory. */
	rdma_write(&r, src, src_mr, q + PAGE, mapwatch_verbs_mr(e)->rkey, 64);
	ASSERT_EQ(q[PAGE], 'N');
	ASSERT_EQ(q[PAGE + 63], 'N');
	ASSERT_EQ(q[PAGE + 64], 'n');
	/* Through the stale MR a cache without mapwatch would have used:
	 * the old pages get it, the application never sees it. */
	memset(src, 'S', PAGE);
	rdma_write(&r, src, src_mr, q + 2 * PAGE, mapwatch_verbs_mr(old)->rkey, 64);
	ASSERT_EQ(q[2 * PAGE], 'n');
	mapwatch_cache_put(c, old);			/* deregistered now */
	ASSERT_EQ(cstats(c).deregistrations, 1);
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	ASSERT_EQ(ibv_dereg_mr(src_mr), 0);
	ibv_destroy_qp(r.qp);
	ibv_destroy_cq(r.cq);
	mapwatch_close(mw);
	ibv_dealloc_pd(r.pd);
	ibv_close_device(r.ctx);
}

TEST(bad_arguments)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 4);

	ASSERT_BAD_INPUT("mapwatch_verbs_cache_create", "NULL pd",
			 nul(mapwatch_verbs_cache_create(mw, NULL, ACCESS, NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_verbs_cache_create", "NULL monitor",
			 nul(mapwatch_verbs_cache_create(NULL, (struct ibv_pd *)1,
							 ACCESS, NULL)), EINVAL);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
