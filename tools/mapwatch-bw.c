// SPDX-License-Identifier: GPL-2.0-only
/*
 * mapwatch-bw: RDMA bandwidth and correctness of a registration cache.
 *
 * A client (the sender) and a server (the receiver) on one RC connection.
 * Every message is a rendezvous: the receiver registers its target buffer
 * and SENDs a clear-to-send naming address and rkey, the sender fills its
 * source buffer with a pattern unique to the message, registers it and RDMA
 * WRITEs it (with immediate) or SENDs it, and the receiver checks every byte.
 * Both sides get their registrations from the strategy under test
 * (--cache), and with --workload=churn both free and re-map their buffer at
 * the same address before each message, as applications do.  A registration
 * cache that misses the unmap then hands out an MR that still pins the old
 * pages: the sender's NIC reads the old contents, the receiver's NIC writes
 * where nobody looks, and the check counts corrupt messages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bw.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define BW_MAGIC 0x6d776277u	/* "mwbw" */
#define PAGE 4096UL

enum {
	WR_CTS_RECV = 0x100,	/* | slot */
	WR_CTS_SEND = 0x200,
	WR_DATA_RECV = 0x300,
	WR_DATA_SEND = 0x400,
};

enum churn_side { CHURN_BOTH, CHURN_SENDER, CHURN_RECEIVER };

const char *const bw_workload_names[BW_NWORKLOAD] = { "static", "churn" };
const char *const bw_backend_names[3] = { "auto", "kernel", "userfaultfd" };
static const char *const churn_side_names[] = { "both", "sender", "receiver" };
static const char *const op_names[] = { "write", "send" };

/* One run (a cache mode x a workload), as the client asks the server. */
struct run_req {
	uint32_t magic;
	uint32_t quit;
	uint32_t run;
	uint32_t cache;
	uint32_t workload;
	uint32_t backend;
	uint32_t op;
	uint32_t churn_side;
	uint32_t churn_every;
	uint32_t iters;
	uint32_t nsizes;
	uint32_t pad;
	uint64_t sizes[BW_MAX_SIZES];
};

struct run_ack {
	int32_t status;
	char why[252];
};

/* What one side reports after a run. */
struct side_result {
	struct bw_stats st;
	uint64_t msgs;
	uint64_t bytes;
	uint64_t corrupt_msgs;
	uint64_t corrupt_bytes;
	uint64_t size_corrupt[BW_MAX_SIZES];
	char backend[32];
};

struct run_result {
	enum bw_cache_mode cache;
	enum bw_workload workload;
	double secs;
	double size_secs[BW_MAX_SIZES];
	struct side_result client, server;
};

static struct {
	enum { M_LOOPBACK, M_SERVER, M_CLIENT } mode;
	const char *host;
	const char *port;
	const char *dev;
	int ib_port;
	int gid_index;
	bool cache[BW_NCACHE];
	bool workload[BW_NWORKLOAD];
	bool backend[3];	/* the mapwatch cache's rows, one per backend */
	enum bw_op op;
	enum churn_side churn_side;
	unsigned int churn_every;
	unsigned int iters;
	unsigned int nsizes;
	uint64_t sizes[BW_MAX_SIZES];
	int timeout_s;
	int connect_s;
	bool json;
	bool per_size;
} opt = {
	.port = "18520", .ib_port = 1, .gid_index = -1,
	.churn_every = 1, .iters = 50, .timeout_s = 30,
};

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* --- the data pattern --------------------------------------------------- */

/*
 * Word i of message seq.  Two messages differ in every word (the
 * multiplier is odd), so any stale byte range is caught.
 */
static inline uint64_t pattern(uint32_t seq, size_t i)
{
	return ((uint64_t)seq + 1) * 0x9e3779b97f4a7c15ull +
	       (uint64_t)i * 0xc2b2ae3d27d4eb4full;
}

static void fill(void *buf, size_t len, uint32_t seq)
{
	uint64_t *w = buf;
	size_t n = len / 8, i;

	for (i = 0; i < n; i++)
		w[i] = pattern(seq, i);
	if (len % 8) {
		uint64_t last = pattern(seq, n);

		memcpy(w + n, &last, len % 8);
	}
}

/* Number of bytes of buf that are not message seq's. */
static uint64_t check(const void *buf, size_t len, uint32_t seq)
{
	const unsigned char *p = buf;
	uint64_t bad = 0;

	for (size_t i = 0; i * 8 < len; i++) {
		uint64_t want = pattern(seq, i), got = 0;
		size_t n = len - i * 8 < 8 ? len - i * 8 : 8;

		memcpy(&got, p + i * 8, n);
		if (got == want || (n < 8 && !memcmp(&got, &want, n)))
			continue;
		for (size_t b = 0; b < n; b++)
			bad += ((got >> (8 * b)) & 0xff) !=
			       ((want >> (8 * b)) & 0xff);
	}
	return bad;
}

/* --- the application's buffer ------------------------------------------ */

static size_t map_len(const struct run_req *r)
{
	return (r->sizes[r->nsizes - 1] + PAGE - 1) & ~(PAGE - 1);
}

static void *buf_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		bw_err(NULL, "mmap %zu bytes: %s", len, strerror(errno));
		return NULL;
	}
	return p;
}

/* Free the buffer and get fresh memory at the same address. */
static int buf_churn(void *buf, size_t len)
{
	void *p;

	if (munmap(buf, len)) {
		bw_err(NULL, "munmap: %s", strerror(errno));
		return -1;
	}
	p = mmap(buf, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == buf)
		return 0;
	bw_err(NULL, "could not re-map the buffer at %p: %s", buf,
	       p == MAP_FAILED ? strerror(errno) : "got another address");
	return -1;
}

static bool churns(const struct run_req *r, bool sender, uint32_t msg)
{
	if (r->workload != BW_CHURN || msg == 0 || msg % r->churn_every)
		return false;
	if (r->churn_side == CHURN_BOTH)
		return true;
	return sender == (r->churn_side == CHURN_SENDER);
}

/* --- the receiver ------------------------------------------------------- */

static void *ctrl_slot(struct bw_conn *c, unsigned int i)
{
	return (char *)c->ctrl + i * BW_CTRL_SLOT;
}

static int server_run(struct bw_conn *c, const struct run_req *r,
		      struct bw_cache *bc, struct side_result *res)
{
	size_t len = map_len(r);
	unsigned char *buf = buf_map(len);
	uint32_t msg = 0;
	int rc = -1;

	if (!buf)
		return -1;
	for (uint32_t s = 0; s < r->nsizes; s++) {
		for (uint32_t it = 0; it < r->iters; it++, msg++) {
			uint32_t size = (uint32_t)r->sizes[s];
			uint32_t seq = (r->run << 24) | msg;
			struct bw_cts *cts = ctrl_slot(c, BW_CTRL_SLOTS);
			bool sent = false, got = false;
			struct bw_reg reg;
			uint64_t bad;

			if (churns(r, false, msg) && buf_churn(buf, len))
				goto out;
			if (bw_cache_get(bc, buf, size, &reg))
				goto out;
			if (bw_post_recv(c, WR_DATA_RECV,
					 r->op == BW_OP_SEND ? buf : NULL,
					 size, reg.lkey))
				goto out;
			*cts = (struct bw_cts){ .addr = (uintptr_t)buf,
				.rkey = reg.rkey, .len = size, .seq = seq };
			if (bw_post_send(c, WR_CTS_SEND, IBV_WR_SEND, cts,
					 sizeof(*cts), c->ctrl_mr->lkey, 0, 0, 0))
				goto out;
			while (!sent || !got) {
				struct ibv_wc wc;

				if (bw_wait(c, &wc))
					goto out;
				if (wc.wr_id == WR_CTS_SEND) {
					sent = true;
				} else if (wc.wr_id == WR_DATA_RECV) {
					got = true;
					if (r->op == BW_OP_WRITE &&
					    ntohl(wc.imm_data) != seq) {
						bw_err(NULL, "message %u arrived as %u",
						       seq, ntohl(wc.imm_data));
						goto out;
					}
				}
			}
			bad = check(buf, size, seq);
			bw_cache_put(bc, &reg);
			res->msgs++;
			res->bytes += size;
			if (bad) {
				res->corrupt_msgs++;
				res->corrupt_bytes += bad;
				res->size_corrupt[s]++;
			}
		}
	}
	rc = 0;
out:
	munmap(buf, len);
	return rc;
}

static int serve(struct bw_conn *c)
{
	for (;;) {
		struct run_req r;
		struct run_ack ack = { 0 };
		struct side_result res = { 0 };
		struct bw_cache *bc;
		int rc;

		if (bw_oob_recv(c->oob, &r, sizeof(r)))
			return -1;
		if (r.magic != BW_MAGIC || r.nsizes == 0 ||
		    r.nsizes > BW_MAX_SIZES || r.cache >= BW_NCACHE) {
			bw_err(NULL, "bad request from the client (another version?)");
			return -1;
		}
		if (r.quit)
			return 0;
		bc = bw_cache_create(r.cache, r.backend, c->pd, ack.why,
				     sizeof(ack.why));
		ack.status = bc ? 0 : -1;
		if (bw_oob_send(c->oob, &ack, sizeof(ack)))
			return -1;
		if (!bc)
			continue;
		rc = server_run(c, &r, bc, &res);
		bw_cache_stats(bc, &res.st);
		snprintf(res.backend, sizeof(res.backend), "%s",
			 bw_cache_backend(bc));
		bw_cache_destroy(bc);
		if (rc)
			return -1;
		if (bw_oob_send(c->oob, &res, sizeof(res)))
			return -1;
	}
}

/* --- the sender --------------------------------------------------------- */

struct cts_queue {
	struct bw_cts q[BW_CTRL_SLOTS];
	unsigned int head, tail;
};

/* Handle one completion on the client: a CTS arrived or our send finished. */
static int client_pump(struct bw_conn *c, struct cts_queue *cq, bool *sent)
{
	struct ibv_wc wc;
	unsigned int slot;

	if (bw_wait(c, &wc))
		return -1;
	if (wc.wr_id == WR_DATA_SEND) {
		*sent = true;
		return 0;
	}
	if ((wc.wr_id & ~0xffull) != WR_CTS_RECV)
		return 0;
	slot = wc.wr_id & 0xff;
	cq->q[cq->tail++ % BW_CTRL_SLOTS] = *(struct bw_cts *)ctrl_slot(c, slot);
	return bw_post_recv(c, WR_CTS_RECV | slot, ctrl_slot(c, slot),
			    BW_CTRL_SLOT, c->ctrl_mr->lkey);
}

static int client_run(struct bw_conn *c, const struct run_req *r,
		      struct bw_cache *bc, struct run_result *res)
{
	static struct cts_queue cq;
	size_t len = map_len(r);
	unsigned char *buf = buf_map(len);
	uint32_t msg = 0;
	double t0 = now(), ts = t0;
	int rc = -1;

	if (!buf)
		return -1;
	for (uint32_t s = 0; s < r->nsizes; s++) {
		for (uint32_t it = 0; it < r->iters; it++, msg++) {
			uint32_t size = (uint32_t)r->sizes[s];
			uint32_t seq = (r->run << 24) | msg;
			bool sent = false;
			struct bw_reg reg;
			struct bw_cts cts;

			while (cq.head == cq.tail)
				if (client_pump(c, &cq, &sent))
					goto out;
			cts = cq.q[cq.head++ % BW_CTRL_SLOTS];
			if (cts.seq != seq || cts.len != size) {
				bw_err(NULL, "out of step: receiver wants message %u (%u B), sender is at %u",
				       cts.seq, cts.len, seq);
				goto out;
			}
			if (churns(r, true, msg) && buf_churn(buf, len))
				goto out;
			fill(buf, size, seq);
			if (bw_cache_get(bc, buf, size, &reg))
				goto out;
			if (bw_post_send(c, WR_DATA_SEND,
					 r->op == BW_OP_WRITE ?
					 IBV_WR_RDMA_WRITE_WITH_IMM : IBV_WR_SEND,
					 buf, size, reg.lkey, cts.addr, cts.rkey,
					 seq))
				goto out;
			while (!sent)
				if (client_pump(c, &cq, &sent))
					goto out;
			bw_cache_put(bc, &reg);
			res->client.msgs++;
			res->client.bytes += size;
		}
		res->size_secs[s] = now() - ts;
		ts = now();
	}
	res->secs = now() - t0;
	rc = 0;
out:
	munmap(buf, len);
	return rc;
}

static int client_one(struct bw_conn *c, struct run_req *r,
		      struct run_result *res)
{
	char why[256] = "";
	struct run_ack ack;
	struct bw_cache *bc;
	int rc;

	res->cache = r->cache;
	res->workload = r->workload;
	bc = bw_cache_create(r->cache, r->backend, c->pd, why, sizeof(why));
	if (!bc) {
		bw_err(NULL, "--cache=%s: %s", bw_cache_names[r->cache], why);
		return -1;
	}
	if (bw_oob_send(c->oob, r, sizeof(*r)) ||
	    bw_oob_recv(c->oob, &ack, sizeof(ack))) {
		bw_cache_destroy(bc);
		return -1;
	}
	if (ack.status) {
		bw_err(NULL, "the server cannot run --cache=%s: %s",
		       bw_cache_names[r->cache], ack.why);
		bw_cache_destroy(bc);
		return -1;
	}
	rc = client_run(c, r, bc, res);
	bw_cache_stats(bc, &res->client.st);
	snprintf(res->client.backend, sizeof(res->client.backend), "%s",
		 bw_cache_backend(bc));
	bw_cache_destroy(bc);
	if (rc || bw_oob_recv(c->oob, &res->server, sizeof(res->server)))
		return -1;
	return 0;
}

/* --- output ------------------------------------------------------------- */

static void total(const struct run_result *r, struct bw_stats *st)
{
	st->registrations = r->client.st.registrations +
			    r->server.st.registrations;
	st->hits = r->client.st.hits + r->server.st.hits;
	st->invalidations = r->client.st.invalidations +
			    r->server.st.invalidations;
	for (int i = 0; i < MAPWATCH_CHANGE_REASON_SLOTS; i++)
		st->by_reason[i] = r->client.st.by_reason[i] +
				   r->server.st.by_reason[i];
	st->pages_kept = r->client.st.pages_kept + r->server.st.pages_kept;
}

/* A row's invalidations by reason, "unmapped:62 moved:2" ("-": none). */
static void reasons_text(const struct bw_stats *st, char *buf, size_t size)
{
	size_t used = 0;

	snprintf(buf, size, "-");
	for (unsigned int i = 0; i < MAPWATCH_CHANGE_REASON_SLOTS; i++) {
		const char *name = mapwatch_reason_name(i);
		char other[16];

		if (!st->by_reason[i])
			continue;
		if (!name) {
			snprintf(other, sizeof(other), "reason-%u", i);
			name = other;
		}
		used += (size_t)snprintf(buf + used, used < size ? size - used : 0,
					 "%s%s:%llu", used ? " " : "", name,
					 (unsigned long long)st->by_reason[i]);
	}
}

static const struct run_result *find(const struct run_result *res, int n,
				     enum bw_cache_mode m, enum bw_workload w)
{
	for (int i = 0; i < n; i++)
		if (res[i].cache == m && res[i].workload == w)
			return &res[i];
	return NULL;
}

static double mbps(const struct run_result *r)
{
	return (double)r->server.bytes / r->secs / 1e6;
}

/* Two lines that say what the table shows, when it has the rows for it. */
static void print_summary(const struct run_result *res, int n)
{
	const struct run_result *uc = find(res, n, BW_CACHE_UNSAFE, BW_CHURN);
	const struct run_result *mc = find(res, n, BW_CACHE_MAPWATCH, BW_CHURN);
	const struct run_result *ms = find(res, n, BW_CACHE_MAPWATCH, BW_STATIC);
	const struct run_result *us = find(res, n, BW_CACHE_UNSAFE, BW_STATIC);
	const struct run_result *ns = find(res, n, BW_CACHE_NONE, BW_STATIC);
	struct bw_stats mst;
	char why[256] = "";

	if (mc) {
		total(mc, &mst);
		reasons_text(&mst, why, sizeof(why));
	}

	if (uc)
		printf("=> unsafe cache under churn: %llu of %llu messages corrupt: its cached MRs still pin the freed pages, so the NIC used memory the application had given back.\n",
		       (unsigned long long)uc->server.corrupt_msgs,
		       (unsigned long long)uc->server.msgs);
	if (mc && ms && us && ns)
		printf("=> mapwatch cache: %llu corrupt under churn (%llu invalidations caught, by reason %s); static bandwidth %.0f%% of the unmonitored cache's, %.1fx registering every message.\n",
		       (unsigned long long)mc->server.corrupt_msgs,
		       (unsigned long long)(mc->client.st.invalidations +
					    mc->server.st.invalidations), why,
		       100.0 * mbps(ms) / mbps(us), mbps(ms) / mbps(ns));
	else if (mc)
		printf("=> mapwatch cache: %llu corrupt under churn (%llu invalidations caught, by reason %s).\n",
		       (unsigned long long)mc->server.corrupt_msgs,
		       (unsigned long long)(mc->client.st.invalidations +
					    mc->server.st.invalidations), why);
	for (int m = BW_CACHE_ODP; m <= BW_CACHE_ODP_PREFETCH; m++) {
		const struct run_result *oc = find(res, n, m, BW_CHURN);
		const struct run_result *os = find(res, n, m, BW_STATIC);

		if (oc)
			printf("=> %s (On-Demand Paging, no cache): %llu corrupt under churn, %llu registrations for %llu messages.\n",
			       bw_cache_names[m],
			       (unsigned long long)oc->server.corrupt_msgs,
			       (unsigned long long)(oc->client.st.registrations +
						    oc->server.st.registrations),
			       (unsigned long long)oc->server.msgs);
		if (os && ms)
			printf("=> %s static bandwidth: %.2fx the mapwatch cache's.\n",
			       bw_cache_names[m], mbps(os) / mbps(ms));
	}
	/* The other backends' churn rows (--backend=LIST). */
	for (int i = 0; mc && i < n; i++) {
		const struct run_result *r = &res[i];

		if (r == mc || r->cache != BW_CACHE_MAPWATCH ||
		    r->workload != BW_CHURN)
			continue;
		printf("=> mapwatch cache over %s: %llu corrupt under churn (%llu invalidations caught).\n",
		       r->client.backend,
		       (unsigned long long)r->server.corrupt_msgs,
		       (unsigned long long)(r->client.st.invalidations +
					    r->server.st.invalidations));
	}
}

static void print_table(const struct bw_conn *c, const struct run_result *res,
			int n)
{
	printf("mapwatch-bw: %s%s, RDMA %s, %llu..%llu B, %u messages per size, churn side %s\n",
	       c->devname, c->software ? " (software RDMA: a CPU plays the NIC)" : "",
	       opt.op == BW_OP_WRITE ? "WRITE" : "SEND",
	       (unsigned long long)opt.sizes[0],
	       (unsigned long long)opt.sizes[opt.nsizes - 1], opt.iters,
	       churn_side_names[opt.churn_side]);
	printf("%-9s %-8s %-11s %10s %9s %6s %6s %7s %15s  %s\n", "cache", "workload",
	       "backend", "MB/s", "msg/s", "regs", "hits", "invals",
	       "corrupt msgs", "invals by reason");
	for (int i = 0; i < n; i++) {
		const struct run_result *r = &res[i];
		struct bw_stats st;
		char corrupt[32], why[256];

		total(r, &st);
		reasons_text(&st, why, sizeof(why));
		snprintf(corrupt, sizeof(corrupt), "%llu/%llu",
			 (unsigned long long)r->server.corrupt_msgs,
			 (unsigned long long)r->server.msgs);
		printf("%-9s %-8s %-11s %10.2f %9.0f %6llu %6llu %7llu %15s  %s\n",
		       bw_cache_names[r->cache], bw_workload_names[r->workload],
		       r->client.backend,
		       (double)r->server.bytes / r->secs / 1e6,
		       (double)r->server.msgs / r->secs,
		       (unsigned long long)st.registrations,
		       (unsigned long long)st.hits,
		       (unsigned long long)st.invalidations, corrupt, why);
		for (unsigned int s = 0; opt.per_size && s < opt.nsizes; s++)
			printf("  %9llu B %-16s %10.2f %9.0f %6s %6s %7s %15llu\n",
			       (unsigned long long)opt.sizes[s], "",
			       (double)opt.sizes[s] * opt.iters /
			       res[i].size_secs[s] / 1e6,
			       opt.iters / res[i].size_secs[s], "", "", "",
			       (unsigned long long)r->server.size_corrupt[s]);
	}
	printf("regs/hits/invals: both sides together; corrupt msgs: messages the receiver found wrong; invals by reason: why the cache dropped them (mapwatch(1), why).\n");
	print_summary(res, n);
}

static void print_json(const struct bw_conn *c, const struct run_result *res,
		       int n)
{
	printf("{\"device\":\"%s\",\"software\":%s,\"op\":\"%s\",\"churn_side\":\"%s\",\"churn_every\":%u,\"messages_per_size\":%u,\"sizes\":[",
	       c->devname, c->software ? "true" : "false", op_names[opt.op],
	       churn_side_names[opt.churn_side], opt.churn_every, opt.iters);
	for (unsigned int s = 0; s < opt.nsizes; s++)
		printf("%s%llu", s ? "," : "", (unsigned long long)opt.sizes[s]);
	printf("],\"results\":[");
	for (int i = 0; i < n; i++) {
		const struct run_result *r = &res[i];
		struct bw_stats st;

		total(r, &st);
		printf("%s{\"cache\":\"%s\",\"workload\":\"%s\",\"backend\":\"%s\",\"seconds\":%.6f,\"messages\":%llu,\"bytes\":%llu,\"mbytes_per_s\":%.3f,\"messages_per_s\":%.1f,\"registrations\":%llu,\"hits\":%llu,\"invalidations\":%llu,\"corrupt_messages\":%llu,\"corrupt_bytes\":%llu,",
		       i ? "," : "", bw_cache_names[r->cache],
		       bw_workload_names[r->workload], r->client.backend, r->secs,
		       (unsigned long long)r->server.msgs,
		       (unsigned long long)r->server.bytes,
		       (double)r->server.bytes / r->secs / 1e6,
		       (double)r->server.msgs / r->secs,
		       (unsigned long long)st.registrations,
		       (unsigned long long)st.hits,
		       (unsigned long long)st.invalidations,
		       (unsigned long long)r->server.corrupt_msgs,
		       (unsigned long long)r->server.corrupt_bytes);
		printf("\"invalidations_by_reason\":{");
		for (unsigned int k = 0, first = 1; k < MAPWATCH_CHANGE_REASON_SLOTS; k++) {
			const char *name = mapwatch_reason_name(k);

			if (!name && !st.by_reason[k])
				continue;
			if (name)
				printf("%s\"%s\":%llu", first ? "" : ",", name,
				       (unsigned long long)st.by_reason[k]);
			else
				printf("%s\"reason-%u\":%llu", first ? "" : ",", k,
				       (unsigned long long)st.by_reason[k]);
			first = 0;
		}
		printf("},\"pages_kept\":%llu,", (unsigned long long)st.pages_kept);
		printf("\"sender\":{\"registrations\":%llu,\"hits\":%llu,\"invalidations\":%llu},\"receiver\":{\"registrations\":%llu,\"hits\":%llu,\"invalidations\":%llu},\"per_size\":[",
		       (unsigned long long)r->client.st.registrations,
		       (unsigned long long)r->client.st.hits,
		       (unsigned long long)r->client.st.invalidations,
		       (unsigned long long)r->server.st.registrations,
		       (unsigned long long)r->server.st.hits,
		       (unsigned long long)r->server.st.invalidations);
		for (unsigned int s = 0; s < opt.nsizes; s++)
			printf("%s{\"size\":%llu,\"seconds\":%.6f,\"corrupt_messages\":%llu}",
			       s ? "," : "", (unsigned long long)opt.sizes[s],
			       r->size_secs[s],
			       (unsigned long long)r->server.size_corrupt[s]);
		printf("]}");
	}
	printf("]}\n");
}

/* --- the two roles ------------------------------------------------------ */

static int client(struct bw_conn *c)
{
	static struct run_result res[BW_NCACHE * BW_NWORKLOAD * 3];
	struct run_req r = {
		.magic = BW_MAGIC, .op = opt.op,
		.churn_side = opt.churn_side, .churn_every = opt.churn_every,
		.iters = opt.iters, .nsizes = opt.nsizes,
	};
	int n = 0, rc = 0;

	memcpy(r.sizes, opt.sizes, sizeof(r.sizes));
	for (unsigned int i = 0; i < BW_CTRL_SLOTS; i++)
		if (bw_post_recv(c, WR_CTS_RECV | i, ctrl_slot(c, i),
				 BW_CTRL_SLOT, c->ctrl_mr->lkey))
			return -1;
	for (int w = 0; w < BW_NWORKLOAD && !rc; w++) {
		for (int m = 0; m < BW_NCACHE && !rc; m++) {
			if (!opt.workload[w] || !opt.cache[m])
				continue;
			/* A row per backend for the mapwatch cache, one row
			 * (the first backend, unused) for the others.
			 */
			for (int b = 0; b < 3 && !rc; b++) {
				if (!opt.backend[b])
					continue;
				r.cache = (uint32_t)m;
				r.workload = (uint32_t)w;
				r.backend = (uint32_t)b;
				r.run = (uint32_t)n;
				if (!opt.json)
					fprintf(stderr, "mapwatch-bw: running cache=%s workload=%s%s%s ...\n",
						bw_cache_names[m], bw_workload_names[w],
						m == BW_CACHE_MAPWATCH ? " backend=" : "",
						m == BW_CACHE_MAPWATCH ? bw_backend_names[b] : "");
				rc = client_one(c, &r, &res[n]);
				if (!rc)
					n++;
				if (m != BW_CACHE_MAPWATCH)
					break;
			}
		}
	}
	r.quit = 1;
	bw_oob_send(c->oob, &r, sizeof(r));
	if (n && opt.json)
		print_json(c, res, n);
	else if (n)
		print_table(c, res, n);
	return rc;
}

static int run_role(int fd, bool is_server)
{
	struct bw_conn c = { .oob = fd, .timeout_ms = opt.timeout_s * 1000 };
	int rc;

	if (bw_conn_open(&c, opt.dev, opt.ib_port, opt.gid_index)) {
		bw_conn_close(&c);
		return -1;
	}
	rc = is_server ? serve(&c) : client(&c);
	bw_conn_close(&c);
	return rc;
}

static int loopback(void)
{
	int sv[2], status = 0, rc;
	pid_t pid;

	if (bw_check_device(opt.dev))
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
		bw_err(NULL, "socketpair: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		bw_err(NULL, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		bw_quiet_eof = 1;
		_exit(run_role(sv[1], true) ? 1 : 0);
	}
	close(sv[1]);
	rc = run_role(sv[0], false);
	close(sv[0]);
	waitpid(pid, &status, 0);
	if (!rc && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		bw_err(NULL, "the server process failed");
		rc = -1;
	}
	return rc;
}

/*
 * A listening socket on every address: IPv6 and dual-stack where the kernel
 * has IPv6, IPv4 otherwise.  One family per getaddrinfo() call, never
 * AF_UNSPEC: with two answers glibc sorts them by connect()ing a UDP socket
 * to "::" and then to 0.0.0.0, and Debian's 7.3.4 kernel crashes now and
 * then in that connect (udp_v6_rehash; seen in the two-node test).
 */
static int tcp_listen(int family, struct addrinfo **aip)
{
	struct addrinfo hints = { .ai_family = family,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	int one = 1, zero = 0, lfd, err;

	err = getaddrinfo(NULL, opt.port, &hints, aip);
	if (err) {
		if (family == AF_INET6 && err == EAI_FAMILY)
			return -2;
		bw_err(NULL, "port %s: %s", opt.port, gai_strerror(err));
		return -1;
	}
	lfd = socket(family, SOCK_STREAM, 0);
	if (lfd < 0 && family == AF_INET6 && errno == EAFNOSUPPORT) {
		freeaddrinfo(*aip);
		return -2;
	}
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (family == AF_INET6 &&
	     setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero))) ||
	    bind(lfd, (*aip)->ai_addr, (*aip)->ai_addrlen) || listen(lfd, 1)) {
		bw_err(NULL, "listening on port %s: %s", opt.port,
		       strerror(errno));
		if (lfd >= 0)
			close(lfd);
		freeaddrinfo(*aip);
		return -1;
	}
	return lfd;
}

static int tcp_server(void)
{
	struct addrinfo *ai;
	int lfd, fd, rc;

	lfd = tcp_listen(AF_INET6, &ai);
	if (lfd == -2)
		lfd = tcp_listen(AF_INET, &ai);
	if (lfd < 0)
		return -1;
	freeaddrinfo(ai);
	fprintf(stderr, "mapwatch-bw: waiting for a client on port %s\n",
		opt.port);
	fd = accept(lfd, NULL, NULL);
	close(lfd);
	if (fd < 0) {
		bw_err(NULL, "accept: %s", strerror(errno));
		return -1;
	}
	rc = run_role(fd, true);
	close(fd);
	return rc;
}

static int tcp_client(void)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai, *a;
	int fd = -1, err, rc, e = 0;

	err = getaddrinfo(opt.host, opt.port, &hints, &ai);
	if (err) {
		bw_err(NULL, "cannot resolve %s: %s", opt.host,
		       gai_strerror(err));
		return -1;
	}
	/* Retry for --connect-timeout seconds: nodes may start in any order. */
	for (double end = now() + opt.connect_s;;) {
		for (a = ai; a; a = a->ai_next) {
			fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
			if (fd >= 0 && !connect(fd, a->ai_addr, a->ai_addrlen))
				break;
			e = errno;
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		if (fd >= 0 || now() >= end)
			break;
		usleep(200000);
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		bw_err("start `mapwatch-bw --server` there first (same --port)",
		       "cannot reach the server at %s port %s: %s", opt.host,
		       opt.port, strerror(e));
		return -1;
	}
	rc = run_role(fd, false);
	close(fd);
	return rc;
}

/* --- options ------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
"usage: mapwatch-bw [--loopback | --server | --client HOST] [options]\n"
"  RDMA bandwidth and correctness of memory-registration caching.\n"
"  --loopback            both processes here (default): forks the server\n"
"  --server | --client HOST   two hosts; TCP --port (default 18520) for setup\n"
"  --cache=LIST          none,unsafe,mapwatch (default: these three),\n"
"                        odp,odp-prefetch (On-Demand Paging MRs, no cache:\n"
"                        a device and kernel with ODP, e.g. rxe on Linux 7.x)\n"
"                          none: register and deregister every message\n"
"                          unsafe: cache keyed by address, no monitor\n"
"                          mapwatch: libmapwatch's registration cache\n"
"  --backend=LIST        auto,kernel,userfaultfd: the mapwatch cache's monitor,\n"
"                        a row for each (default: auto)\n"
"  --workload=LIST       static,churn (default both): reuse one buffer, or\n"
"                        free it and map fresh memory at the same address\n"
"                        before every message\n"
"  --churn-side=S        both|sender|receiver (default both)\n"
"  --churn-every=N       churn before every Nth message only (default 1)\n"
"  --op=write|send       RDMA WRITE with immediate (default) or SEND\n"
"  --size=MIN[:MAX]      message sizes, powers of two from MIN (default 4K:256K)\n"
"  --iters=N             messages per size (default 50)\n"
"  --dev=NAME --ib-port=N --gid-index=N   RDMA device (default: the first)\n"
"  --timeout=S           seconds to wait for one completion (default 30)\n"
"  --connect-timeout=S   client: keep trying to reach the server for S s\n"
"  --per-size            a line per message size under each row\n"
"  --json                machine-readable output\n"
"Exit status: 0 when every run completed (corruption is a result, not an\n"
"error), 1 on any error, 2 on bad usage.\n");
}

static int parse_list(const char *arg, const char *const *names, int n,
		      bool *set)
{
	char *copy = strdup(arg), *save = NULL;

	memset(set, 0, sizeof(bool) * (size_t)n);
	for (char *t = strtok_r(copy, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		int i;

		for (i = 0; i < n && strcmp(t, names[i]); i++)
			;
		if (i == n) {
			fprintf(stderr, "mapwatch-bw: unknown value '%s'\n", t);
			free(copy);
			return -1;
		}
		set[i] = true;
	}
	free(copy);
	return 0;
}

static int parse_one(const char *arg, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(arg, names[i]))
			return i;
	fprintf(stderr, "mapwatch-bw: unknown value '%s'\n", arg);
	return -1;
}

static uint64_t parse_size(const char *s, char **end)
{
	uint64_t v = strtoull(s, end, 0);

	switch (**end) {
	case 'k': case 'K': v <<= 10; (*end)++; break;
	case 'm': case 'M': v <<= 20; (*end)++; break;
	}
	return v;
}

static int parse_sizes(const char *arg)
{
	char *end;
	uint64_t lo = parse_size(arg, &end), hi = lo;

	if (*end == ':')
		hi = parse_size(end + 1, &end);
	if (*end || lo == 0 || hi < lo || hi > (1ull << 30)) {
		fprintf(stderr, "mapwatch-bw: bad --size '%s'\n", arg);
		return -1;
	}
	opt.nsizes = 0;
	for (uint64_t s = lo; s <= hi && opt.nsizes < BW_MAX_SIZES; s *= 2)
		opt.sizes[opt.nsizes++] = s;
	return 0;
}

static int parse_args(int argc, char **argv)
{
	enum { O_CACHE = 256, O_BACKEND, O_WORKLOAD, O_CHURN_SIDE,
	       O_CHURN_EVERY, O_OP, O_SIZE, O_ITERS, O_DEV, O_IB_PORT,
	       O_GID, O_TIMEOUT, O_PER_SIZE, O_JSON, O_LOOPBACK,
	       O_CONNECT_TIMEOUT };
	static const struct option lo[] = {
		{ "loopback", no_argument, NULL, O_LOOPBACK },
		{ "server", no_argument, NULL, 's' },
		{ "client", required_argument, NULL, 'c' },
		{ "port", required_argument, NULL, 'p' },
		{ "cache", required_argument, NULL, O_CACHE },
		{ "backend", required_argument, NULL, O_BACKEND },
		{ "workload", required_argument, NULL, O_WORKLOAD },
		{ "churn-side", required_argument, NULL, O_CHURN_SIDE },
		{ "churn-every", required_argument, NULL, O_CHURN_EVERY },
		{ "op", required_argument, NULL, O_OP },
		{ "size", required_argument, NULL, O_SIZE },
		{ "iters", required_argument, NULL, O_ITERS },
		{ "dev", required_argument, NULL, O_DEV },
		{ "ib-port", required_argument, NULL, O_IB_PORT },
		{ "gid-index", required_argument, NULL, O_GID },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT },
		{ "per-size", no_argument, NULL, O_PER_SIZE },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, v;

	for (int i = 0; i < BW_NDEFAULT_CACHE; i++)
		opt.cache[i] = true;
	for (int i = 0; i < BW_NWORKLOAD; i++)
		opt.workload[i] = true;
	opt.backend[BW_BACKEND_AUTO] = true;
	parse_sizes("4K:256K");
	while ((ch = getopt_long(argc, argv, "sc:p:h", lo, NULL)) != -1) {
		switch (ch) {
		case O_LOOPBACK: opt.mode = M_LOOPBACK; break;
		case 's': opt.mode = M_SERVER; break;
		case 'c': opt.mode = M_CLIENT; opt.host = optarg; break;
		case 'p': opt.port = optarg; break;
		case O_CACHE:
			if (parse_list(optarg, bw_cache_names, BW_NCACHE,
				       opt.cache))
				return -1;
			break;
		case O_WORKLOAD:
			if (parse_list(optarg, bw_workload_names, BW_NWORKLOAD,
				       opt.workload))
				return -1;
			break;
		case O_BACKEND:
			if (parse_list(optarg, bw_backend_names, 3,
				       opt.backend))
				return -1;
			if (!opt.backend[0] && !opt.backend[1] &&
			    !opt.backend[2]) {
				fprintf(stderr, "mapwatch-bw: --backend needs at least one of auto,kernel,userfaultfd\n");
				return -1;
			}
			break;
		case O_CHURN_SIDE:
			v = parse_one(optarg, churn_side_names, 3);
			if (v < 0)
				return -1;
			opt.churn_side = (enum churn_side)v;
			break;
		case O_OP:
			v = parse_one(optarg, op_names, 2);
			if (v < 0)
				return -1;
			opt.op = (enum bw_op)v;
			break;
		case O_CHURN_EVERY: opt.churn_every = (unsigned int)atoi(optarg); break;
		case O_SIZE:
			if (parse_sizes(optarg))
				return -1;
			break;
		case O_ITERS: opt.iters = (unsigned int)atoi(optarg); break;
		case O_DEV: opt.dev = optarg; break;
		case O_IB_PORT: opt.ib_port = atoi(optarg); break;
		case O_GID: opt.gid_index = atoi(optarg); break;
		case O_TIMEOUT: opt.timeout_s = atoi(optarg); break;
		case O_CONNECT_TIMEOUT: opt.connect_s = atoi(optarg); break;
		case O_PER_SIZE: opt.per_size = true; break;
		case O_JSON: opt.json = true; break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (optind != argc || opt.iters == 0 || opt.churn_every == 0 ||
	    opt.timeout_s <= 0 || opt.connect_s < 0 || opt.ib_port <= 0) {
		fprintf(stderr, "mapwatch-bw: bad arguments\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rc;

	if (parse_args(argc, argv)) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	switch (opt.mode) {
	case M_SERVER: rc = tcp_server(); break;
	case M_CLIENT: rc = tcp_client(); break;
	default: rc = loopback(); break;
	}
	return rc ? 1 : 0;
}
