// SPDX-License-Identifier: GPL-2.0-only
/*
 * Figure 13a: what one registration costs, pinned against On-Demand Paging,
 * on the first RDMA device (Soft-RoCE in the guest).  Per size, the median
 * of rounds of ibv_reg_mr()+ibv_dereg_mr() over an anonymous buffer whose
 * pages are all touched, pinned (the pages are pinned and mapped for the
 * NIC at registration) and with IBV_ACCESS_ON_DEMAND (nothing is pinned:
 * the NIC faults pages in when it first uses them), the two taking turns.
 * The faults an ODP MR takes later, at its first transfers, are not in
 * this figure; figure 13b's bandwidth has them.  Run where the
 * device has ODP (bench/run: the 7.x guest); elsewhere it says why and
 * exits 0 with no figure, so `make bench` goes on.
 *
 * Figure 13c: what the NIC writes into an ODP MR.  Two RC QPs of the
 * device connected to each other; one RDMA WRITE of 16 KiB from a pinned
 * MR into a pinned or an ODP MR, at path MTU 1024 and 4096; the bytes of
 * the target that differ from the source afterwards (0 is right).
 *
 *   odp_bench [--quick] [--json FILE]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <infiniband/verbs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

#define ROUNDS 9
#define ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE)

static double reg_dereg(struct ibv_pd *pd, void *buf, size_t len, int access,
			int reps)
{
	double t0 = now_ns();

	for (int i = 0; i < reps; i++) {
		struct ibv_mr *mr = ibv_reg_mr(pd, buf, len, access);

		if (!mr) {
			fprintf(stderr, "odp_bench: ibv_reg_mr(%zu, %s): %s\n",
				len, access & IBV_ACCESS_ON_DEMAND ? "ODP" : "pinned",
				strerror(errno));
			exit(1);
		}
		ibv_dereg_mr(mr);
	}
	return (now_ns() - t0) / reps;
}

/* --- figure 13c: one RDMA WRITE into an ODP MR ---------------------------- */

struct loop {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	union ibv_gid gid;
	int gid_index;
};

/* The port's GID to reach ourselves: RoCE v2 if there is one. */
static int pick_gid(struct loop *l)
{
	static const unsigned char zero[16];

	l->gid_index = -1;
	for (int i = 0; i < 16; i++) {
		struct ibv_gid_entry e;

		if (ibv_query_gid_ex(l->ctx, 1, (uint32_t)i, &e, 0) ||
		    !memcmp(e.gid.raw, zero, sizeof(zero)))
			continue;
		if (l->gid_index < 0 || e.gid_type == IBV_GID_TYPE_ROCE_V2) {
			l->gid_index = i;
			l->gid = e.gid;
			if (e.gid_type == IBV_GID_TYPE_ROCE_V2)
				break;
		}
	}
	return l->gid_index;
}

static struct ibv_qp *qp_init(struct loop *l)
{
	struct ibv_qp_init_attr ia = {
		.send_cq = l->cq, .recv_cq = l->cq, .qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1,
		.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE,
	};
	struct ibv_qp *qp = ibv_create_qp(l->pd, &ia);

	if (!qp || ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
				 IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		return NULL;
	return qp;
}

static int qp_connect(struct loop *l, struct ibv_qp *qp, uint32_t peer,
		      enum ibv_mtu mtu)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_RTR, .path_mtu = mtu, .dest_qp_num = peer,
		.max_dest_rd_atomic = 1, .min_rnr_timer = 12,
		.ah_attr = { .is_global = 1, .port_num = 1,
			     .grh = { .dgid = l->gid, .hop_limit = 1,
				      .sgid_index = (uint8_t)l->gid_index } },
	};

	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
			  IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		return -1;
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.max_rd_atomic = 1;
	return ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			     IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
			     IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

/* Bytes of the target wrong after one WRITE; -1 if it could not run. */
static long write_once(struct loop *l, size_t len, bool odp, enum ibv_mtu mtu)
{
	int acc = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
	unsigned char *src = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *dst = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ibv_mr *ms, *md;
	struct ibv_qp *a, *b;
	struct ibv_send_wr wr, *bad;
	struct ibv_sge sge;
	struct ibv_wc wc;
	long wrong = -1;

	if (src == MAP_FAILED || dst == MAP_FAILED)
		return -1;
	for (size_t i = 0; i < len; i++)
		src[i] = (unsigned char)(i * 7 + 3);
	memset(dst, 0xee, len);
	ms = ibv_reg_mr(l->pd, src, len, acc);
	md = ibv_reg_mr(l->pd, dst, len, acc | (odp ? IBV_ACCESS_ON_DEMAND : 0));
	a = qp_init(l);
	b = qp_init(l);
	if (!ms || !md || !a || !b || qp_connect(l, a, b->qp_num, mtu) ||
	    qp_connect(l, b, a->qp_num, mtu))
		goto out;
	sge = (struct ibv_sge){ .addr = (uintptr_t)src, .length = (uint32_t)len,
				.lkey = ms->lkey };
	wr = (struct ibv_send_wr){ .sg_list = &sge, .num_sge = 1,
				   .opcode = IBV_WR_RDMA_WRITE,
				   .send_flags = IBV_SEND_SIGNALED };
	wr.wr.rdma.remote_addr = (uintptr_t)dst;
	wr.wr.rdma.rkey = md->rkey;
	if (ibv_post_send(a, &wr, &bad))
		goto out;
	for (double t0 = now_ns(); !ibv_poll_cq(l->cq, 1, &wc);)
		if (now_ns() - t0 > 10e9)
			goto out;
	if (wc.status != IBV_WC_SUCCESS)
		goto out;
	wrong = 0;
	for (size_t i = 0; i < len; i++)
		wrong += dst[i] != src[i];
out:
	if (a)
		ibv_destroy_qp(a);
	if (b)
		ibv_destroy_qp(b);
	if (ms)
		ibv_dereg_mr(ms);
	if (md)
		ibv_dereg_mr(md);
	munmap(src, len);
	munmap(dst, len);
	return wrong;
}

static void figure_13c(struct ibv_context *ctx, struct ibv_pd *pd, FILE *json)
{
	static const struct { enum ibv_mtu mtu; int bytes; } mtus[] = {
		{ IBV_MTU_1024, 1024 }, { IBV_MTU_4096, 4096 },
	};
	struct loop l = { .ctx = ctx, .pd = pd };
	const size_t len = 16384;

	l.cq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
	if (!l.cq || pick_gid(&l) < 0) {
		printf("figure 13c: no CQ or no GID on port 1: no figure\n");
		return;
	}
	printf("\nfigure 13c: one RDMA WRITE of %zu B into a fresh MR, bytes of the target wrong afterwards (0 is right)\n",
	       len);
	printf("%-10s %14s %14s\n", "path MTU", "pinned target", "ODP target");
	for (size_t m = 0; m < sizeof(mtus) / sizeof(mtus[0]); m++) {
		long pin = write_once(&l, len, false, mtus[m].mtu);
		long odp = write_once(&l, len, true, mtus[m].mtu);

		printf("%-10d %14ld %14ld\n", mtus[m].bytes, pin, odp);
		if (json)
			fprintf(json, ",{\"figure\":\"13c\",\"path_mtu\":%d,\"bytes\":%zu,\"pinned_wrong\":%ld,\"odp_wrong\":%ld}",
				mtus[m].bytes, len, pin, odp);
	}
	printf("(-1: the WRITE did not complete)\n");
	ibv_destroy_cq(l.cq);
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = { 4096, 65536, 1 << 20, 16 << 20 };
	const char *json_path = NULL;
	struct ibv_device_attr_ex a;
	struct ibv_device **list;
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	FILE *json = NULL;
	bool quick = false;
	int reps;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			json_path = argv[++i];
		} else {
			fprintf(stderr, "usage: odp_bench [--quick] [--json FILE]\n");
			return 2;
		}
	}
	reps = quick ? 20 : 100;
	list = ibv_get_device_list(NULL);
	if (!list || !list[0]) {
		printf("figure 13a: no RDMA device (tools/rxe-up brings up Soft-RoCE)\n");
		return 0;
	}
	ctx = ibv_open_device(list[0]);
	pd = ctx ? ibv_alloc_pd(ctx) : NULL;
	if (!pd) {
		fprintf(stderr, "odp_bench: cannot open %s\n",
			ibv_get_device_name(list[0]));
		return 1;
	}
	memset(&a, 0, sizeof(a));
	if (ibv_query_device_ex(ctx, NULL, &a) ||
	    !(a.odp_caps.general_caps & IBV_ODP_SUPPORT)) {
		printf("figure 13a: %s has no On-Demand Paging on this kernel (rxe has it from Linux 6.13): no figure\n",
		       ibv_get_device_name(list[0]));
		return 0;
	}
	if (json_path && !(json = fopen(json_path, "w"))) {
		fprintf(stderr, "odp_bench: %s: %s\n", json_path, strerror(errno));
		return 1;
	}
	printf("figure 13a: ibv_reg_mr+ibv_dereg_mr on %s, median of %d rounds of %d, pinned and ODP taking turns\n",
	       ibv_get_device_name(list[0]), ROUNDS, reps);
	printf("%-10s %14s %14s %10s\n", "size", "pinned ns", "ODP ns", "ODP/pinned");
	if (json)
		fprintf(json, "[");
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t len = sizes[s];
		double pin[ROUNDS], odp[ROUNDS], ratio[ROUNDS];
		char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (buf == MAP_FAILED) {
			perror("odp_bench: mmap");
			return 1;
		}
		memset(buf, 1, len);
		for (int r = 0; r < ROUNDS; r++) {
			if (r % 2) {
				odp[r] = reg_dereg(pd, buf, len, ACCESS | IBV_ACCESS_ON_DEMAND, reps);
				pin[r] = reg_dereg(pd, buf, len, ACCESS, reps);
			} else {
				pin[r] = reg_dereg(pd, buf, len, ACCESS, reps);
				odp[r] = reg_dereg(pd, buf, len, ACCESS | IBV_ACCESS_ON_DEMAND, reps);
			}
			ratio[r] = odp[r] / pin[r];
		}
		munmap(buf, len);
		{
			double mp = median(pin, ROUNDS), mo = median(odp, ROUNDS),
			       mr = median(ratio, ROUNDS);

			printf("%-10zu %14.0f %14.0f %9.2fx\n", len, mp, mo, mr);
			if (json)
				fprintf(json, "%s{\"figure\":\"13a\",\"size\":%zu,\"pinned_ns\":%.0f,\"odp_ns\":%.0f,\"ratio\":%.3f}",
					s ? "," : "", len, mp, mo, mr);
		}
	}
	figure_13c(ctx, pd, json);
	if (json) {
		fprintf(json, "]\n");
		fclose(json);
	}
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	ibv_free_device_list(list);
	return 0;
}
