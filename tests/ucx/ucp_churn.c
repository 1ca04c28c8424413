// SPDX-License-Identifier: GPL-2.0-only
/*
 * Two UCP processes, an initiator and a target, moving data from buffers
 * that both sides give back and take again between messages, so new memory
 * keeps landing at addresses UCX's registration cache has seen:
 *
 *   static   one buffer for the whole run (the cache's good case)
 *   malloc   malloc/free
 *   mmap     mmap/munmap through glibc
 *   brk      sbrk(+n) / sbrk(-n): the heap top grows and shrinks
 *   syscall  syscall(SYS_mmap) / syscall(SYS_munmap): no glibc symbol to
 *            patch, as language runtimes and some allocators do it
 *
 * For each variant, size and iteration:
 *   tag  the initiator fills its buffer with a pattern of (op, variant,
 *        iteration, size) and sends it (ucp_tag_send_nbx); the target
 *        receives into its own fresh, zeroed buffer (ucp_tag_recv_nbx);
 *   put  the target zeroes a fresh buffer, maps it (ucp_mem_map: a
 *        registration through UCX's cache) and passes its rkey; the
 *        initiator puts a fresh, filled buffer into it (ucp_put_nbx),
 *        flushes, and tells the target, which checks it.
 * The target checks every byte: data of another iteration, or none, is a
 * corrupt message (what a stale registration delivers).  Rendezvous and
 * zero-copy sizes (16 KiB and up over rc_verbs) register both buffers.
 *
 * Output, one line each (tests/ucx/run-guest judges them):
 *   target:    result op=tag variant=mmap messages=12 corrupt=0
 *   initiator: bw op=tag variant=static bytes=N seconds=S
 * (seconds: time inside the transfer calls until completion, so
 * registration or cache lookup plus the transfer).
 *
 * --external-unreported declares UCX's unmap events external
 * (ucm_set_external_event) and reports none: a cache nobody tells about
 * unmaps, the control that shows the test catches stale registrations.
 *
 * usage: ucp_churn --listen PORT | --connect ADDR PORT
 *                  [--iters N] [--sizes 16K,256K,1M] [--variants a,b,...]
 *                  [--ops tag,put] [--bw-iters N] [--bw-compare]
 *                  [--external-unreported] [--cm]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <ucm/api/ucm.h>
#include <ucp/api/ucp.h>

#define MAX_SIZES 16

enum variant { V_STATIC, V_MALLOC, V_MMAP, V_BRK, V_SYSCALL, V_COUNT };
static const char *const variant_names[V_COUNT] = {
	"static", "malloc", "mmap", "brk", "syscall"
};
enum op { OP_TAG, OP_PUT, OP_COUNT };
static const char *const op_names[OP_COUNT] = { "tag", "put" };

static size_t sizes[MAX_SIZES];
static int nsizes;
static size_t max_size;
static int iters = 4, bw_iters = 12;
static int variants[V_COUNT], nvariants;
static int ops[OP_COUNT], nops;
static int sock = -1;
static int initiator;
/* --cm: UCP endpoints made client-server through UCX's connection manager
 * (rdma_cm) on the out-of-band port + 1 (+ 2 for a second context), not from exchanged worker
 * addresses: RC is then wired up without UD's auxiliary lane. */
static int use_cm, cm_port;
static const char *cm_addr;
static ucp_listener_h listener;
static ucp_conn_request_h conn_request;
static ucp_context_h ctx;
static ucp_worker_h worker;
static ucp_ep_h ep;
static void *static_buf;

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "ucp_churn (%s): %s: %s\n", initiator ? "initiator" : "target",
		what, detail);
	exit(2);
}

static void ucs_check(ucs_status_t st, const char *what)
{
	if (st != UCS_OK)
		die(what, ucs_status_string(st));
}

/* --- arguments ------------------------------------------------------------ */

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'K': v <<= 10; end++; break;
	case 'M': v <<= 20; end++; break;
	}
	if (end == s || (*end && *end != ',') || v == 0 || v % 8 || v > (64ULL << 20))
		die("bad size (a multiple of 8 bytes, at most 64M; K and M suffixes)", s);
	return v;
}

/* Names in a comma-separated list -> indices of names[]. */
static int parse_names(const char *list, const char *const *names, int n, int *out)
{
	int count = 0;
	const char *p = list;

	for (;;) {
		size_t len = strcspn(p, ",");
		int i;

		for (i = 0; i < n; i++)
			if (strlen(names[i]) == len && !strncmp(names[i], p, len))
				break;
		if (i == n || count == n)
			die("unknown or repeated name in list", list);
		out[count++] = i;
		p += len;
		if (!*p)
			return count;
		p++;
	}
}

/* --- out-of-band socket ---------------------------------------------------- */

static void xwrite(const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(sock, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("socket write", strerror(errno));
		p += n;
		len -= n;
	}
}

static void xread(void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(sock, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("socket read", n ? strerror(errno) : "peer closed");
		p += n;
		len -= n;
	}
}

static void send_blob(const void *buf, uint64_t len)
{
	xwrite(&len, sizeof(len));
	xwrite(buf, len);
}

static void *recv_blob(uint64_t *len)
{
	void *buf;

	xread(len, sizeof(*len));
	if (*len > (1 << 20))
		die("socket", "blob too large");
	buf = malloc(*len ? *len : 1);
	if (!buf)
		die("malloc", strerror(errno));
	xread(buf, *len);
	return buf;
}

static void barrier(void)
{
	char c = 1;

	xwrite(&c, 1);
	xread(&c, 1);
}

static void connect_oob(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1;

	if (initiator) {
		if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
			die("bad address", addr);
		for (int i = 0; i < 600; i++) {
			sock = socket(AF_INET, SOCK_STREAM, 0);
			if (!connect(sock, (struct sockaddr *)&sa, sizeof(sa)))
				break;
			close(sock);
			sock = -1;
			usleep(100000);
		}
		if (sock < 0)
			die("connect", strerror(errno));
	} else {
		int ls = socket(AF_INET, SOCK_STREAM, 0);

		sa.sin_addr.s_addr = htonl(INADDR_ANY);
		setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) || listen(ls, 1))
			die("listen", strerror(errno));
		sock = accept(ls, NULL, NULL);
		if (sock < 0)
			die("accept", strerror(errno));
		close(ls);
	}
	setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* --- UCP ------------------------------------------------------------------- */

static void on_conn_request(ucp_conn_request_h r, void *arg)
{
	(void)arg;
	conn_request = r;
}

static void flush_ep(void);

static void connect_cm(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(cm_port) };
	ucp_ep_params_t eparams = { 0 };

	if (initiator) {
		if (inet_pton(AF_INET, cm_addr, &sa.sin_addr) != 1)
			die("bad address", cm_addr);
		barrier();	/* the target listens */
		eparams.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR;
		eparams.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
		eparams.sockaddr.addr = (struct sockaddr *)&sa;
		eparams.sockaddr.addrlen = sizeof(sa);
	} else {
		ucp_listener_params_t lp = {
			.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR |
				      UCP_LISTENER_PARAM_FIELD_CONN_HANDLER,
			.sockaddr = { (struct sockaddr *)&sa, sizeof(sa) },
			.conn_handler = { on_conn_request, NULL },
		};

		sa.sin_addr.s_addr = htonl(INADDR_ANY);
		conn_request = NULL;
		ucs_check(ucp_listener_create(worker, &lp, &listener), "ucp_listener_create");
		barrier();
		while (!conn_request)
			ucp_worker_progress(worker);
		eparams.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST;
		eparams.conn_request = conn_request;
	}
	ucs_check(ucp_ep_create(worker, &eparams, &ep), "ucp_ep_create");
	flush_ep();	/* wired up */
	barrier();
	cm_port++;	/* --bw-compare's second context, alive beside this one */
}

/* reg_methods: NULL for UCX's default, else UCX_IB_REG_METHODS for this
 * context only (ucp_config_modify() passes it to the IB memory domain). */
static void setup_ucp(const char *reg_methods)
{
	ucp_params_t params = {
		.field_mask = UCP_PARAM_FIELD_FEATURES,
		.features = UCP_FEATURE_TAG | UCP_FEATURE_RMA,
	};
	ucp_worker_params_t wparams = {
		.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
		.thread_mode = UCS_THREAD_MODE_SINGLE,
	};
	ucp_address_t *addr;
	size_t addr_len;
	uint64_t peer_len;
	void *peer;
	ucp_config_t *config;

	ucs_check(ucp_config_read(NULL, NULL, &config), "ucp_config_read");
	if (reg_methods)
		ucs_check(ucp_config_modify(config, "IB_REG_METHODS", reg_methods),
			  "ucp_config_modify IB_REG_METHODS");
	ucs_check(ucp_init(&params, config, &ctx), "ucp_init");
	ucp_config_release(config);
	ucs_check(ucp_worker_create(ctx, &wparams, &worker), "ucp_worker_create");
	if (use_cm) {
		connect_cm();
		return;
	}
	ucs_check(ucp_worker_get_address(worker, &addr, &addr_len), "ucp_worker_get_address");
	send_blob(addr, addr_len);
	peer = recv_blob(&peer_len);
	ucp_worker_release_address(worker, addr);

	ucp_ep_params_t eparams = {
		.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS,
		.address = peer,
	};
	ucs_check(ucp_ep_create(worker, &eparams, &ep), "ucp_ep_create");
	free(peer);
}

static ucs_status_t wait_req(ucs_status_ptr_t r)
{
	ucs_status_t st;

	if (r == NULL)
		return UCS_OK;
	if (UCS_PTR_IS_ERR(r))
		return UCS_PTR_STATUS(r);
	while ((st = ucp_request_check_status(r)) == UCS_INPROGRESS)
		ucp_worker_progress(worker);
	ucp_request_free(r);
	return st;
}

static void flush_ep(void)
{
	ucp_request_param_t p = { 0 };

	ucs_check(wait_req(ucp_ep_flush_nbx(ep, &p)), "ucp_ep_flush_nbx");
}

static void close_ucp(void)
{
	ucp_request_param_t p = {
		.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
		.flags = UCP_EP_CLOSE_FLAG_FORCE,
	};

	barrier();
	wait_req(ucp_ep_close_nbx(ep, &p));
	if (listener)
		ucp_listener_destroy(listener);
	listener = NULL;
	ucp_worker_destroy(worker);
	ucp_cleanup(ctx);
}

/* --- buffers and patterns -------------------------------------------------- */

static uint64_t word(int op, int v, int iter, int s, size_t i)
{
	/* Distinct for every message of the run and every word in it. */
	uint64_t msg = ((uint64_t)op << 32) | ((uint64_t)v << 24) |
		       ((uint64_t)iter << 8) | (uint64_t)s;

	return (msg << 40) ^ (msg * 0x9e3779b97f4a7c15ULL) ^ i ^ 1;
}

static void fill(void *buf, size_t len, int op, int v, int iter, int s)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = word(op, v, iter, s, i);
}

static int check(const void *buf, size_t len, int op, int v, int iter, int s)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != word(op, v, iter, s, i))
			return 1;
	return 0;
}

static size_t page_round(size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (len + page - 1) & ~(page - 1);
}

static void *take(int v, size_t len)
{
	void *p = NULL;

	switch (v) {
	case V_STATIC:
		p = static_buf;
		break;
	case V_MALLOC:
		p = malloc(len);
		break;
	case V_MMAP:
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		p = p == MAP_FAILED ? NULL : p;
		break;
	case V_BRK:
		p = sbrk((intptr_t)page_round(len));
		p = p == (void *)-1 ? NULL : p;
		break;
	case V_SYSCALL:
		p = (void *)syscall(SYS_mmap, NULL, len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		p = p == MAP_FAILED ? NULL : p;
		break;
	}
	if (!p)
		die("cannot take a buffer", variant_names[v]);
	return p;
}

static void give_back(int v, void *p, size_t len)
{
	switch (v) {
	case V_MALLOC:
		free(p);
		break;
	case V_MMAP:
		munmap(p, len);
		break;
	case V_BRK:
		/* Only if nobody grew the heap past our block since (malloc's
		 * top pad, set in main, makes that unlikely). */
		if (sbrk(0) != (char *)p + page_round(len))
			die("the heap grew past the sbrk block", "cannot shrink it");
		if (sbrk(-(intptr_t)page_round(len)) == (void *)-1)
			die("sbrk shrink", strerror(errno));
		break;
	case V_SYSCALL:
		syscall(SYS_munmap, p, len);
		break;
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- one message --------------------------------------------------------------- */

static ucp_tag_t tag_of(int v, int iter, int s)
{
	return ((ucp_tag_t)v << 32) | ((ucp_tag_t)iter << 8) | (ucp_tag_t)s;
}

/* Initiator: returns the seconds spent in the transfer calls. */
static double send_one(int op, int v, int iter, int s, int pattern_iter)
{
	size_t len = sizes[s];
	ucp_request_param_t p = { 0 };
	void *buf = take(v, len);
	double t0 = 0, dt = 0;

	fill(buf, len, op, v, pattern_iter, s);
	if (op == OP_TAG) {
		t0 = now();
		ucs_check(wait_req(ucp_tag_send_nbx(ep, buf, len, tag_of(v, iter, s), &p)),
			  "ucp_tag_send_nbx");
		dt = now() - t0;
	} else {
		uint64_t raddr, rkey_len;
		void *rkey_buf;
		ucp_rkey_h rkey;

		xread(&raddr, sizeof(raddr));
		rkey_buf = recv_blob(&rkey_len);
		ucs_check(ucp_ep_rkey_unpack(ep, rkey_buf, &rkey), "ucp_ep_rkey_unpack");
		free(rkey_buf);
		t0 = now();
		ucs_check(wait_req(ucp_put_nbx(ep, buf, len, raddr, rkey, &p)), "ucp_put_nbx");
		flush_ep();
		dt = now() - t0;
		ucp_rkey_destroy(rkey);
		xwrite("d", 1);
	}
	give_back(v, buf, len);
	return dt;
}

/* Target: returns 1 when the message arrived corrupt. */
static int recv_one(int op, int v, int iter, int s, int pattern_iter)
{
	size_t len = sizes[s];
	void *buf = take(v, len);
	int bad;

	memset(buf, 0, len);
	if (op == OP_TAG) {
		ucp_request_param_t p = { 0 };

		ucs_check(wait_req(ucp_tag_recv_nbx(worker, buf, len, tag_of(v, iter, s),
						    (ucp_tag_t)-1, &p)), "ucp_tag_recv_nbx");
	} else {
		ucp_mem_map_params_t mp = {
			.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS |
				      UCP_MEM_MAP_PARAM_FIELD_LENGTH,
			.address = buf,
			.length = len,
		};
		ucp_mem_h memh;
		void *rkey_buf;
		size_t rkey_len;
		uint64_t addr = (uintptr_t)buf;
		char c;

		ucs_check(ucp_mem_map(ctx, &mp, &memh), "ucp_mem_map");
		ucs_check(ucp_rkey_pack(ctx, memh, &rkey_buf, &rkey_len), "ucp_rkey_pack");
		xwrite(&addr, sizeof(addr));
		send_blob(rkey_buf, rkey_len);
		ucp_rkey_buffer_release(rkey_buf);
		/* The initiator flushed: the put is complete.  Progress
		 * meanwhile (transports without RDMA emulate it). */
		while (recv(sock, &c, 1, MSG_DONTWAIT) != 1) {
			if (errno != EAGAIN && errno != EINTR)
				die("socket read", strerror(errno));
			ucp_worker_progress(worker);
		}
		ucs_check(ucp_mem_unmap(ctx, memh), "ucp_mem_unmap");
	}
	bad = check(buf, len, op, v, pattern_iter, s);
	give_back(v, buf, len);
	return bad;
}

/*
 * --bw-compare: the static buffer's bandwidth with UCX's registration
 * cache and without it (a second context, IB_REG_METHODS=direct: every
 * message registers its buffer), side by side in one run: rounds of 4
 * messages alternate between the two, so a change in the host's load
 * weighs on both alike.  The initiator prints
 *   bwcmp cache_mb_s=X direct_mb_s=Y messages=N
 * and the target a result line for the messages it checked.
 */
static void bw_compare(void)
{
	struct { ucp_context_h ctx; ucp_worker_h worker; ucp_ep_h ep; } c[2];
	double secs[2] = { 0, 0 };
	size_t bytes[2] = { 0, 0 };
	int s = 0, corrupt = 0, n = 0;

	for (int i = 1; i < nsizes; i++)
		if (sizes[i] > sizes[s])
			s = i;
	c[0].ctx = ctx, c[0].worker = worker, c[0].ep = ep;
	setup_ucp("direct");
	c[1].ctx = ctx, c[1].worker = worker, c[1].ep = ep;
	barrier();
	for (int round = 0; round < (bw_iters + 3) / 4; round++)
		for (int k = 0; k < 2; k++) {
			ctx = c[k].ctx, worker = c[k].worker, ep = c[k].ep;
			for (int i = 0; i < 4; i++, n++) {
				if (initiator) {
					secs[k] += send_one(OP_TAG, V_STATIC, n % 256, s, n % 256);
					bytes[k] += sizes[s];
				} else {
					corrupt += recv_one(OP_TAG, V_STATIC, n % 256, s, n % 256);
				}
			}
		}
	if (initiator)
		printf("bwcmp cache_mb_s=%.2f direct_mb_s=%.2f messages=%d\n",
		       bytes[0] / secs[0] / 1e6, bytes[1] / secs[1] / 1e6, n);
	else
		printf("result op=tag variant=bw_compare messages=%d corrupt=%d\n", n, corrupt);
	fflush(stdout);
	close_ucp();
	ctx = c[0].ctx, worker = c[0].worker, ep = c[0].ep;
}

/* --- main ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	const char *addr = NULL, *size_list = "16K,256K,1M";
	const char *variant_list = "static,malloc,mmap,brk,syscall", *op_list = "tag,put";
	int port = 0, external = 0, compare = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--listen") && i + 1 < argc) {
			port = atoi(argv[++i]);
		} else if (!strcmp(a, "--connect") && i + 2 < argc) {
			initiator = 1;
			addr = argv[++i];
			port = atoi(argv[++i]);
		} else if (!strcmp(a, "--iters") && i + 1 < argc) {
			iters = atoi(argv[++i]);
		} else if (!strcmp(a, "--bw-iters") && i + 1 < argc) {
			bw_iters = atoi(argv[++i]);
		} else if (!strcmp(a, "--sizes") && i + 1 < argc) {
			size_list = argv[++i];
		} else if (!strcmp(a, "--variants") && i + 1 < argc) {
			variant_list = argv[++i];
		} else if (!strcmp(a, "--ops") && i + 1 < argc) {
			op_list = argv[++i];
		} else if (!strcmp(a, "--bw-compare")) {
			compare = 1;
		} else if (!strcmp(a, "--external-unreported")) {
			external = 1;
		} else if (!strcmp(a, "--cm")) {
			use_cm = 1;
		} else {
			fprintf(stderr, "usage: ucp_churn --listen PORT | --connect ADDR PORT "
				"[--iters N] [--sizes LIST] [--variants LIST] [--ops tag,put] "
				"[--bw-iters N] [--bw-compare] [--external-unreported] [--cm]\n");
			return 2;
		}
	}
	if (port <= 0 || port > 65533 || iters < 1 || iters > 255 || bw_iters < 0)
		die("bad arguments", "port 1-65533, iters 1-255, bw-iters >= 0");
	for (const char *p = size_list;; p++) {
		if (nsizes == MAX_SIZES)
			die("too many sizes", size_list);
		sizes[nsizes] = parse_size(p);
		if (sizes[nsizes] > max_size)
			max_size = sizes[nsizes];
		nsizes++;
		p = strchr(p, ',');
		if (!p)
			break;
	}
	nvariants = parse_names(variant_list, variant_names, V_COUNT, variants);
	nops = parse_names(op_list, op_names, OP_COUNT, ops);

	/* The brk variant moves the heap top itself: keep malloc from
	 * growing the heap in small steps between our sbrk calls. */
	mallopt(M_TOP_PAD, 64 << 20);
	static_buf = malloc(max_size);
	if (!static_buf)
		die("malloc", strerror(errno));
	if (external)
		ucm_set_external_event(UCM_EVENT_VM_UNMAPPED);
	connect_oob(addr, port);
	cm_addr = addr;
	cm_port = port + 1;
	setup_ucp(NULL);
	barrier();

	for (int o = 0; o < nops; o++) {
		int op = ops[o];

		for (int vi = 0; vi < nvariants; vi++) {
			int v = variants[vi], corrupt = 0, messages = 0;
			double secs = 0;
			size_t bytes = 0;

			for (int iter = 0; iter < iters; iter++)
				for (int s = 0; s < nsizes; s++) {
					if (initiator) {
						secs += send_one(op, v, iter, s, iter);
						bytes += sizes[s];
					} else {
						corrupt += recv_one(op, v, iter, s, iter);
					}
					messages++;
				}
			if (initiator)
				printf("bw op=%s variant=%s bytes=%zu seconds=%.6f\n",
				       op_names[op], variant_names[v], bytes, secs);
			else
				printf("result op=%s variant=%s messages=%d corrupt=%d\n",
				       op_names[op], variant_names[v], messages, corrupt);
			fflush(stdout);
			barrier();
		}
	}
	/* Bandwidth of the cache's good case: the static buffer, the largest
	 * size, tag messages (iterations past 255 reuse the pattern: fine, the
	 * buffer is the same and is checked each time). */
	if (bw_iters) {
		int s = 0, corrupt = 0;
		double secs = 0;

		for (int i = 1; i < nsizes; i++)
			if (sizes[i] > sizes[s])
				s = i;
		for (int i = 0; i < bw_iters; i++) {
			if (initiator)
				secs += send_one(OP_TAG, V_STATIC, i % 256, s, i % 256);
			else
				corrupt += recv_one(OP_TAG, V_STATIC, i % 256, s, i % 256);
		}
		if (initiator)
			printf("bw op=tag variant=static_bw bytes=%zu seconds=%.6f\n",
			       sizes[s] * bw_iters, secs);
		else
			printf("result op=tag variant=static_bw messages=%d corrupt=%d\n",
			       bw_iters, corrupt);
		fflush(stdout);
	}
	if (compare && bw_iters)
		bw_compare();
	close_ucp();
	printf("done\n");
	return 0;
}
