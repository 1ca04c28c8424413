// SPDX-License-Identifier: GPL-2.0-only
/*
 * mapwatch-bw: one reliable-connected QP between the two processes.  QP
 * numbers, PSNs and GIDs travel over the out-of-band socket (a socketpair in
 * --loopback mode, TCP otherwise), the way ibv_rc_pingpong does it: no
 * rdma_cm, so no IP address is needed on the RDMA netdev.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bw.h"

#define RXE_HINT \
	"no RDMA device. For Soft-RoCE on a veth pair:\n" \
	"  modprobe crc32_generic; modprobe rdma_rxe; modprobe veth\n" \
	"  ip link add veth0 type veth peer name veth1\n" \
	"  ip link set veth0 up; ip link set veth1 up\n" \
	"  rdma link add rxe0 type rxe netdev veth0"

int bw_quiet_eof;

void bw_err(const char *hint, const char *fmt, ...)
{
	va_list ap;

	fputs("mapwatch-bw: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (hint)
		fprintf(stderr, "hint: %s\n", hint);
}

int bw_oob_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			bw_err(NULL, "peer connection lost: %s",
			       n < 0 ? strerror(errno) : "closed");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int bw_oob_recv(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!bw_quiet_eof || n < 0)
				bw_err(NULL, "peer connection lost: %s",
				       n < 0 ? strerror(errno) : "peer exited");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

struct bw_qp_info {
	uint32_t qpn;
	uint32_t psn;
	uint16_t lid;
	uint16_t mtu;
	uint32_t pad;
	uint8_t gid[16];
};

static struct ibv_device *pick_device(struct ibv_device **list, const char *want)
{
	for (int i = 0; list[i]; i++)
		if (!want || !strcmp(ibv_get_device_name(list[i]), want))
			return list[i];
	return NULL;
}

/* The first populated GID, preferring RoCE v2 (routable over the veth). */
static int pick_gid(struct bw_conn *c, int port, int len, union ibv_gid *gid)
{
	int best = -1;

	for (int i = 0; i < len && i < 256; i++) {
		struct ibv_gid_entry e;
		static const uint8_t zero[16];

		if (ibv_query_gid_ex(c->ctx, (uint32_t)port, (uint32_t)i, &e, 0) ||
		    !memcmp(e.gid.raw, zero, 16))
			continue;
		if (best < 0 || e.gid_type == IBV_GID_TYPE_ROCE_V2) {
			best = i;
			*gid = e.gid;
			if (e.gid_type == IBV_GID_TYPE_ROCE_V2)
				break;
		}
	}
	return best;
}

static int qp_connect(struct bw_conn *c, int port, int gid_index,
		      const struct bw_qp_info *me, const struct bw_qp_info *peer)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT,
		.port_num = (uint8_t)port,
		.qp_access_flags = IBV_ACCESS_LOCAL_WRITE |
				   IBV_ACCESS_REMOTE_WRITE,
	};

	if (ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_ACCESS_FLAGS))
		return -1;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = (enum ibv_mtu)(me->mtu < peer->mtu ? me->mtu : peer->mtu);
	a.dest_qp_num = peer->qpn;
	a.rq_psn = peer->psn;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 1;
	a.ah_attr.dlid = peer->lid;
	a.ah_attr.port_num = (uint8_t)port;
	if (gid_index >= 0) {
		a.ah_attr.is_global = 1;
		a.ah_attr.grh.hop_limit = 1;
		a.ah_attr.grh.sgid_index = (uint8_t)gid_index;
		memcpy(a.ah_attr.grh.dgid.raw, peer->gid, 16);
	}
	/*
	 * On RoCE this resolves the peer's MAC from its GID; a neighbour
	 * table still warming up answers ETIMEDOUT: try again a few times.
	 */
	for (int tries = 0;; tries++) {
		if (!ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_AV |
				   IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
				   IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
				   IBV_QP_MIN_RNR_TIMER))
			break;
		if (errno != ETIMEDOUT || tries == 4)
			return -1;
		sleep(1);
	}

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = me->psn;
	a.max_rd_atomic = 1;
	return ibv_modify_qp(c->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			     IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
			     IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

static int open_resources(struct bw_conn *c, struct ibv_device *dev)
{
	struct ibv_qp_init_attr qa = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};
	const char *what;

	what = "ibv_open_device";
	c->ctx = ibv_open_device(dev);
	if (!c->ctx)
		goto fail;
	what = "ibv_alloc_pd";
	c->pd = ibv_alloc_pd(c->ctx);
	if (!c->pd)
		goto fail;
	what = "ibv_create_comp_channel";
	c->chan = ibv_create_comp_channel(c->ctx);
	if (!c->chan)
		goto fail;
	what = "ibv_create_cq";
	c->cq = ibv_create_cq(c->ctx, 64, NULL, c->chan, 0);
	if (!c->cq)
		goto fail;
	qa.send_cq = c->cq;
	qa.recv_cq = c->cq;
	what = "ibv_create_qp";
	c->qp = ibv_create_qp(c->pd, &qa);
	if (!c->qp)
		goto fail;
	what = "control area";
	c->ctrl = aligned_alloc(4096, BW_CTRL_SLOTS * BW_CTRL_SLOT * 2);
	if (!c->ctrl)
		goto fail;
	what = "ibv_reg_mr (control area)";
	c->ctrl_mr = ibv_reg_mr(c->pd, c->ctrl, BW_CTRL_SLOTS * BW_CTRL_SLOT * 2,
				IBV_ACCESS_LOCAL_WRITE);
	if (!c->ctrl_mr)
		goto fail;
	return 0;
fail:
	bw_err(NULL, "%s on %s: %s", what, c->devname, strerror(errno));
	return -1;
}

int bw_check_device(const char *devname)
{
	struct ibv_device **list;
	int n = 0, rc = 0;

	list = ibv_get_device_list(&n);
	if (!list || n == 0) {
		bw_err(RXE_HINT, "no RDMA device found");
		rc = -1;
	} else if (!pick_device(list, devname)) {
		bw_err("ibv_devices lists the devices",
		       "no RDMA device named %s", devname);
		rc = -1;
	}
	if (list)
		ibv_free_device_list(list);
	return rc;
}

int bw_conn_open(struct bw_conn *c, const char *devname, int port, int gid_index)
{
	struct ibv_device **list;
	struct ibv_device *dev;
	struct ibv_port_attr pa;
	struct bw_qp_info me = { 0 }, peer;
	union ibv_gid gid = { 0 };
	int n = 0, rc = -1;

	if (bw_check_device(devname))
		return -1;
	list = ibv_get_device_list(&n);
	dev = list ? pick_device(list, devname) : NULL;
	if (!dev) {
		bw_err(NULL, "RDMA device %s disappeared", devname);
		goto out;
	}
	snprintf(c->devname, sizeof(c->devname), "%s",
		 ibv_get_device_name(dev));
	c->software = !strncmp(c->devname, "rxe", 3) ||
		      !strncmp(c->devname, "siw", 3);
	if (open_resources(c, dev))
		goto out;
	if (ibv_query_port(c->ctx, (uint8_t)port, &pa)) {
		bw_err(NULL, "%s port %d: %s", c->devname, port,
		       strerror(errno));
		goto out;
	}
	if (pa.state != IBV_PORT_ACTIVE) {
		bw_err("bring its netdev up: ip link set DEV up (both ends of a veth pair)",
		       "%s port %d is not active (state %d)", c->devname,
		       port, pa.state);
		goto out;
	}
	if (gid_index < 0)
		gid_index = pick_gid(c, port, pa.gid_tbl_len, &gid);
	else if (ibv_query_gid(c->ctx, (uint8_t)port, gid_index, &gid))
		gid_index = -1;
	if (gid_index < 0 && pa.link_layer == IBV_LINK_LAYER_ETHERNET) {
		bw_err("an up netdev gets an IPv6 link-local address, which gives a GID",
		       "%s has no usable GID", c->devname);
		goto out;
	}
	srand48(getpid() ^ time(NULL));
	me.qpn = c->qp->qp_num;
	me.psn = (uint32_t)lrand48() & 0xffffff;
	me.lid = pa.lid;
	me.mtu = (uint16_t)pa.active_mtu;
	memcpy(me.gid, gid.raw, 16);
	if (bw_oob_send(c->oob, &me, sizeof(me)) ||
	    bw_oob_recv(c->oob, &peer, sizeof(peer)))
		goto out;
	if (qp_connect(c, port, gid_index, &me, &peer)) {
		bw_err(NULL, "connecting the QP on %s: %s", c->devname,
		       strerror(errno));
		goto out;
	}
	rc = 0;
out:
	ibv_free_device_list(list);
	return rc;
}

void bw_conn_close(struct bw_conn *c)
{
	if (c->qp)
		ibv_destroy_qp(c->qp);
	if (c->ctrl_mr)
		ibv_dereg_mr(c->ctrl_mr);
	if (c->cq)
		ibv_destroy_cq(c->cq);
	if (c->chan)
		ibv_destroy_comp_channel(c->chan);
	if (c->pd)
		ibv_dealloc_pd(c->pd);
	if (c->ctx)
		ibv_close_device(c->ctx);
	free(c->ctrl);
	memset(c, 0, sizeof(*c));
}

int bw_post_recv(struct bw_conn *c, uint64_t wr_id, void *buf, uint32_t len,
		 uint32_t lkey)
{
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = len,
			       .lkey = lkey };
	struct ibv_recv_wr wr = { .wr_id = wr_id, .sg_list = &sge,
				  .num_sge = buf ? 1 : 0 };
	struct ibv_recv_wr *bad;
	int err = ibv_post_recv(c->qp, &wr, &bad);

	if (err)
		bw_err(NULL, "ibv_post_recv: %s", strerror(err));
	return err ? -1 : 0;
}

int bw_post_send(struct bw_conn *c, uint64_t wr_id, enum ibv_wr_opcode op,
		 void *buf, uint32_t len, uint32_t lkey, uint64_t raddr,
		 uint32_t rkey, uint32_t imm)
{
	struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = len,
			       .lkey = lkey };
	struct ibv_send_wr wr = {
		.wr_id = wr_id, .sg_list = &sge, .num_sge = 1, .opcode = op,
		.send_flags = IBV_SEND_SIGNALED,
		.imm_data = htonl(imm),
		.wr.rdma = { .remote_addr = raddr, .rkey = rkey },
	};
	struct ibv_send_wr *bad;
	int err = ibv_post_send(c->qp, &wr, &bad);

	if (err)
		bw_err(NULL, "ibv_post_send: %s", strerror(err));
	return err ? -1 : 0;
}

/*
 * Sleep on the completion channel rather than spin: under an emulator the
 * two processes and the soft-RoCE kernel threads share very few CPUs.
 */
int bw_wait(struct bw_conn *c, struct ibv_wc *wc)
{
	for (;;) {
		struct pollfd p = { .fd = c->chan->fd, .events = POLLIN };
		struct ibv_cq *cq;
		void *cq_ctx;
		int n = ibv_poll_cq(c->cq, 1, wc);

		if (n < 0) {
			bw_err(NULL, "ibv_poll_cq failed");
			return -1;
		}
		if (n == 1)
			break;
		if (ibv_req_notify_cq(c->cq, 0)) {
			bw_err(NULL, "ibv_req_notify_cq failed");
			return -1;
		}
		n = ibv_poll_cq(c->cq, 1, wc);
		if (n == 1)
			break;
		n = poll(&p, 1, c->timeout_ms);
		if (n == 0) {
			bw_err("is the peer still running? (--timeout raises the limit)",
			       "no completion within %d ms: peer stalled or unreachable",
			       c->timeout_ms);
			return -1;
		}
		if (n < 0 && errno != EINTR) {
			bw_err(NULL, "poll: %s", strerror(errno));
			return -1;
		}
		if (n > 0) {
			if (ibv_get_cq_event(c->chan, &cq, &cq_ctx))
				return -1;
			ibv_ack_cq_events(cq, 1);
		}
	}
	if (wc->status != IBV_WC_SUCCESS) {
		const char *hint = NULL;

		if (wc->status == IBV_WC_RETRY_EXC_ERR)
			hint = "the peer is unreachable over RDMA: check both ends use the same fabric (GID/netdev)";
		bw_err(hint, "work request %llu failed: %s",
		       (unsigned long long)wc->wr_id,
		       ibv_wc_status_str(wc->status));
		return -1;
	}
	return 0;
}
