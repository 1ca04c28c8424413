// SPDX-License-Identifier: GPL-2.0-only
/*
 * Figure 12 of bench/README.md: libmapwatch's registration cache against its
 * peers, in one process, natively: UCX's ucs_rcache (Debian 12's UCX 1.13,
 * through its public API, its ucm hooks on) and libfabric 2.1.0's
 * ofi_mr_cache (its static archive and internal headers: ofi_mr_cache_init,
 * _search, _delete, with a no-op add_region/delete_region).
 *
 * The workload: a registration that does nothing; n entries of 4 KiB with a
 * 4 KiB gap between neighbours; get+put of exact hits, looked up in random
 * order (xorshift, the same sequence for every cache).  n = 1K, 64K, 512K.
 * Also a covering hit (a 4 KiB request in the middle of a 16 KiB entry),
 * and "floor": a dependent load chain through n 64-byte nodes in random
 * order, the cache misses no lookup over n entries can avoid.
 *
 * Monitors: libmapwatch's userfaultfd backend and libfabric's userfaultfd
 * monitor where the process can hold that many watched ranges (each splits
 * its VMA: 2 VMAs per entry, both caches together within vm.max_map_count);
 * above that libmapwatch's manual backend and a no-op libfabric monitor
 * (subscribe/unsubscribe do nothing, valid() is true).  The row says which.
 * UCX: UCM_EVENT_VM_UNMAPPED | UCM_EVENT_MEM_TYPE_FREE, as uct's rcache.
 *
 * Robust on a busy machine: the caches take turns (A B C A B C..., the
 * floor too) for `rounds` rounds; each turn is timed in this thread's CPU
 * time; the figure is each one's median, and the ratios are medians of the
 * per-round ratios (a peer measured next to it, in the same round).
 *
 * Also, per size: the miss path (a cache created and filled with n
 * entries, each get a miss with its no-op registration and its watch, then
 * put: the time per entry) and the memory each cache holds per entry (the
 * growth of the process's resident set and of malloc's in-use bytes over
 * the same create+fill), rounds taking turns as above; and the exact hit
 * while another thread maps, touches and unmaps unrelated 4 KiB pages in a
 * loop, against the same cache quiet in the same round ("noisy/quiet"),
 * the floor too: every munmap of a multi-threaded process interrupts the
 * other CPUs running it (a TLB shootdown), which no cache avoids.
 *
 * usage: peer_cache_bench [--quick] [--json FILE] [--sizes N,N,...]
 *                         [--monitor=auto|uffd|manual] [--threads]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <ucs/memory/rcache.h>
#include <ucm/api/ucm.h>
#include <ucp/api/ucp_version.h>

#include <rdma/fabric.h>
#include <ofi_mr.h>

#include "mapwatch.h"
#include "bench.h"

#define PAGE 4096UL
#define MAX_ROUNDS 64

static bool quick;
static FILE *json;
static int json_rows;

static void die(const char *what, int err)
{
	fprintf(stderr, "peer_cache_bench: %s: %s\n", what, strerror(err));
	exit(1);
}

static double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static char *reserve(size_t pages)
{
	char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		die("mmap", errno);
	return p;
}

/* --- the caches, behind one interface ------------------------------------ */

enum peer { MW, UCX, OFI, FLOOR, NPEERS };
static const char *peer_name[NPEERS] = { "libmapwatch", "ucs_rcache", "ofi_mr_cache", "floor" };

struct layout {
	size_t entry_pages, stride_pages, off_pages;
	const char *what;
};
static const struct layout exact = { 1, 2, 0, "exact hit" };
static const struct layout covering = { 4, 5, 2, "covering hit" };

struct cache {
	enum peer peer;
	size_t n;
	const struct layout *lay;
	char *base;
	const char *monitor;
	/* libmapwatch */
	struct mapwatch *mw;
	struct mapwatch_cache *mc;
	/* UCX */
	ucs_rcache_t *rc;
	/* libfabric */
	struct ofi_mr_cache ofi;
	/* floor: node i of the chain */
	struct node { struct node *next; char pad[56]; } *nodes;
};

static void *mw_reg(void *ctx, void *addr, size_t len, int flags)
{
	(void)ctx;
	(void)len;
	(void)flags;
	return addr;
}

static void mw_dereg(void *ctx, void *reg)
{
	(void)ctx;
	(void)reg;
}

static const struct mapwatch_cache_ops mw_ops = { .reg = mw_reg, .dereg = mw_dereg };

static ucs_status_t ucx_reg(void *context, ucs_rcache_t *rcache, void *arg,
			    ucs_rcache_region_t *region, uint16_t flags)
{
	(void)context;
	(void)rcache;
	(void)arg;
	(void)region;
	(void)flags;
	return UCS_OK;
}

static void ucx_dereg(void *context, ucs_rcache_t *rcache, ucs_rcache_region_t *region)
{
	(void)context;
	(void)rcache;
	(void)region;
}

static void ucx_dump(void *context, ucs_rcache_t *rcache, ucs_rcache_region_t *region,
		     char *buf, size_t max)
{
	(void)context;
	(void)rcache;
	(void)region;
	if (max)
		buf[0] = '\0';
}

static const ucs_rcache_ops_t ucx_ops = { ucx_reg, ucx_dereg, ucx_dump };

static int ofi_add(struct ofi_mr_cache *cache, struct ofi_mr_entry *entry)
{
	(void)cache;
	(void)entry;
	return 0;
}

static void ofi_del(struct ofi_mr_cache *cache, struct ofi_mr_entry *entry)
{
	(void)cache;
	(void)entry;
}

/* A libfabric monitor that sees nothing: for sizes userfaultfd cannot hold. */
static bool noop_valid(struct ofi_mem_monitor *m, const struct ofi_mr_info *info,
		       struct ofi_mr_entry *entry)
{
	(void)m;
	(void)info;
	(void)entry;
	return true;
}

static void noop_init(struct ofi_mem_monitor *m)
{
	ofi_monitor_init(m);
}

static void noop_cleanup(struct ofi_mem_monitor *m)
{
	(void)m;
}

static struct ofi_mem_monitor noop_monitor = {
	.init = noop_init,
	.cleanup = noop_cleanup,
	.start = ofi_monitor_start_no_op,
	.stop = ofi_monitor_stop_no_op,
	.subscribe = ofi_monitor_subscribe_no_op,
	.unsubscribe = ofi_monitor_unsubscribe_no_op,
	.valid = noop_valid,
	.name = "noop",
};

static inline void *req_addr(const struct cache *c, size_t i)
{
	return c->base + (i * c->lay->stride_pages + c->lay->off_pages) * PAGE;
}

/* One get+put of entry i (the request of the layout). */
static inline void get_put(struct cache *c, size_t i)
{
	switch (c->peer) {
	case MW: {
		struct mapwatch_cache_entry *e = mapwatch_cache_get(c->mc, req_addr(c, i), PAGE, 0);

		if (!e)
			die("mapwatch_cache_get", errno);
		mapwatch_cache_put(c->mc, e);
		break;
	}
	case UCX: {
		ucs_rcache_region_t *r;
		ucs_status_t s = ucs_rcache_get(c->rc, req_addr(c, i), PAGE,
						PROT_READ | PROT_WRITE, NULL, &r);

		if (s != UCS_OK)
			die("ucs_rcache_get", EIO);
		ucs_rcache_region_put(c->rc, r);
		break;
	}
	case OFI: {
		struct ofi_mr_info info;
		struct ofi_mr_entry *e;
		int r;

		memset(&info, 0, sizeof(info));
		info.iov.iov_base = req_addr(c, i);
		info.iov.iov_len = PAGE;
		info.iface = FI_HMEM_SYSTEM;
		r = ofi_mr_cache_search(&c->ofi, &info, &e);
		if (r)
			die("ofi_mr_cache_search", -r);
		ofi_mr_cache_delete(&c->ofi, e);
		break;
	}
	default:
		abort();
	}
}

static bool want_uffd(const char *mode, size_t n)
{
	long max_map = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");

	if (f) {
		if (fscanf(f, "%ld", &max_map) != 1)
			max_map = 65530;
		fclose(f);
	}
	if (!strcmp(mode, "manual"))
		return false;
	if (!strcmp(mode, "uffd"))
		return true;
	/* Two uffd caches, 2 VMAs per entry each, and room for the rest. */
	return (long)(4 * n + 4096) < max_map;
}

static void setup(struct cache *c, enum peer p, size_t n, const struct layout *lay,
		  const char *monitor_mode)
{
	bool uffd = want_uffd(monitor_mode, n);

	memset(c, 0, sizeof(*c));
	c->peer = p;
	c->n = n;
	c->lay = lay;
	if (p == FLOOR) {
		size_t *perm = malloc(n * sizeof(*perm));

		c->nodes = aligned_alloc(64, n * sizeof(*c->nodes));
		if (!perm || !c->nodes)
			die("malloc", ENOMEM);
		for (size_t i = 0; i < n; i++)
			perm[i] = i;
		srand(12345);
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = ((size_t)rand() << 16 ^ (size_t)rand()) % (i + 1), t = perm[i];

			perm[i] = perm[j];
			perm[j] = t;
		}
		for (size_t i = 0; i < n; i++)
			c->nodes[perm[i]].next = &c->nodes[perm[(i + 1) % n]];
		free(perm);
		c->monitor = "-";
		return;
	}
	c->base = reserve(n * lay->stride_pages + 1);
	switch (p) {
	case MW: {
		const char *why = NULL;
		enum mapwatch_backend b = uffd ? MAPWATCH_BACKEND_USERFAULTFD : MAPWATCH_BACKEND_MANUAL;
		int r = mapwatch_open(&c->mw, b, n + 64, &why);

		if (r && uffd) {
			fprintf(stderr, "peer_cache_bench: libmapwatch userfaultfd: %s; manual instead\n",
				why ? why : strerror(-r));
			b = MAPWATCH_BACKEND_MANUAL;
			r = mapwatch_open(&c->mw, b, n + 64, &why);
		}
		if (r)
			die(why ? why : "mapwatch_open", -r);
		c->mc = mapwatch_cache_create(c->mw, &mw_ops, NULL);
		if (!c->mc)
			die("mapwatch_cache_create", errno);
		c->monitor = mapwatch_backend_name(b);
		break;
	}
	case UCX: {
		ucs_rcache_params_t rp;
		ucs_status_t s;

		memset(&rp, 0, sizeof(rp));
		rp.region_struct_size = sizeof(ucs_rcache_region_t);
		rp.alignment = PAGE;
		rp.max_alignment = PAGE;
		rp.ucm_events = UCM_EVENT_VM_UNMAPPED | UCM_EVENT_MEM_TYPE_FREE;
		rp.ucm_event_priority = 1000;
		rp.ops = &ucx_ops;
		rp.context = NULL;
		rp.flags = 0;
		rp.max_regions = ULONG_MAX;
		rp.max_size = SIZE_MAX;
		rp.max_unreleased = SIZE_MAX;
		s = ucs_rcache_create(&rp, "peer_cache_bench", NULL, &c->rc);
		if (s != UCS_OK)
			die("ucs_rcache_create", EIO);
		c->monitor = "ucm hooks";
		break;
	}
	case OFI: {
		struct ofi_mem_monitor *mons[OFI_HMEM_MAX] = { 0 };
		int r;

		cache_params.max_cnt = 2 * n + 1024;
		cache_params.max_size = SIZE_MAX;
		mons[FI_HMEM_SYSTEM] = uffd ? uffd_monitor : &noop_monitor;
		c->ofi.add_region = ofi_add;
		c->ofi.delete_region = ofi_del;
		c->ofi.entry_data_size = 0;
		r = ofi_mr_cache_init(NULL, mons, &c->ofi);
		if (r && uffd) {
			fprintf(stderr, "peer_cache_bench: libfabric uffd monitor: %s; no-op monitor instead\n",
				fi_strerror(-r));
			memset(&c->ofi, 0, sizeof(c->ofi));
			c->ofi.add_region = ofi_add;
			c->ofi.delete_region = ofi_del;
			mons[FI_HMEM_SYSTEM] = &noop_monitor;
			uffd = false;
			r = ofi_mr_cache_init(NULL, mons, &c->ofi);
		}
		if (r)
			die("ofi_mr_cache_init", -r);
		c->monitor = uffd ? "uffd" : "noop";
		break;
	}
	default:
		abort();
	}
	/* Fill: one miss per entry, then every entry is cached. */
	for (size_t i = 0; i < n; i++) {
		void *a = c->base + i * lay->stride_pages * PAGE;
		size_t len = lay->entry_pages * PAGE;

		if (p == MW) {
			struct mapwatch_cache_entry *e = mapwatch_cache_get(c->mc, a, len, 0);

			if (!e)
				die("filling libmapwatch", errno);
			mapwatch_cache_put(c->mc, e);
		} else if (p == UCX) {
			ucs_rcache_region_t *r;

			if (ucs_rcache_get(c->rc, a, len, PROT_READ | PROT_WRITE, NULL, &r) != UCS_OK)
				die("filling ucs_rcache", EIO);
			ucs_rcache_region_put(c->rc, r);
		} else {
			struct ofi_mr_info info = { 0 };
			struct ofi_mr_entry *e;
			int r;

			info.iov.iov_base = a;
			info.iov.iov_len = len;
			info.iface = FI_HMEM_SYSTEM;
			r = ofi_mr_cache_search(&c->ofi, &info, &e);
			if (r)
				die("filling ofi_mr_cache", -r);
			ofi_mr_cache_delete(&c->ofi, e);
		}
	}
}

static void check_and_teardown(struct cache *c)
{
	switch (c->peer) {
	case MW: {
		struct mapwatch_cache_stats s;

		mapwatch_cache_get_stats(c->mc, &s);
		if (s.misses != c->n || s.entries != c->n)
			fprintf(stderr, "peer_cache_bench: libmapwatch: %llu misses, %llu entries (expected %zu)\n",
				(unsigned long long)s.misses, (unsigned long long)s.entries, c->n);
		mapwatch_cache_destroy(c->mc);
		mapwatch_close(c->mw);
		break;
	}
	case UCX:
		ucs_rcache_destroy(c->rc);
		break;
	case OFI:
		if (c->ofi.cached_cnt != c->n || c->ofi.search_cnt - c->ofi.hit_cnt != c->n)
			fprintf(stderr, "peer_cache_bench: ofi_mr_cache: %zu cached, %zu misses (expected %zu)\n",
				c->ofi.cached_cnt, c->ofi.search_cnt - c->ofi.hit_cnt, c->n);
		ofi_mr_cache_cleanup(&c->ofi);
		break;
	case FLOOR:
		free(c->nodes);
		return;
	default:
		break;
	}
	munmap(c->base, (c->n * c->lay->stride_pages + 1) * PAGE);
}

/* ops get+puts in random order (or ops steps of the chain): ns per op. */
static struct node *volatile chain_sink;

static double run(struct cache *c, size_t ops, uint64_t seed, bool cpu_clock)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1, mask = c->n - 1;
	double t0 = cpu_clock ? cpu_ns() : now_ns();

	if (c->peer == FLOOR) {
		struct node *p = &c->nodes[seed % c->n];

		for (size_t k = 0; k < ops; k++)
			p = p->next;
		chain_sink = p;
	} else {
		for (size_t k = 0; k < ops; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			get_put(c, x & mask);
		}
	}
	return ((cpu_clock ? cpu_ns() : now_ns()) - t0) / ops;
}

/* --- two threads ----------------------------------------------------------- */

struct thr {
	struct cache *c;
	size_t ops;
	uint64_t seed;
	_Atomic int *go;
};

static void *thr_main(void *p)
{
	struct thr *t = p;

	while (!atomic_load(t->go))
		;
	run(t->c, t->ops, t->seed, false);
	return NULL;
}

/* Wall ns per op of two threads together (each doing ops). */
static double run2(struct cache *c, size_t ops, uint64_t seed)
{
	pthread_t tid[2];
	struct thr t[2];
	_Atomic int go = 0;
	double t0;

	for (int i = 0; i < 2; i++) {
		t[i] = (struct thr){ c, ops, seed + 7 * (uint64_t)i + 1, &go };
		if (pthread_create(&tid[i], NULL, thr_main, &t[i]))
			die("pthread_create", errno);
	}
	t0 = now_ns();
	atomic_store(&go, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	return (now_ns() - t0) / (2.0 * ops);
}

/* --- output ---------------------------------------------------------------- */

static void jrow(size_t n, const char *what, const char *peer, const char *monitor,
		 double ns, double vs_ucx, double vs_ofi, double vs_floor, int rounds)
{
	if (!json)
		return;
	fprintf(json, "%s{\"figure\":\"12\",\"entries\":%zu,\"what\":\"%s\",\"cache\":\"%s\","
		"\"monitor\":\"%s\",\"ns_per_op\":%.3f,\"ratio_to_ucs_rcache\":%.4f,"
		"\"ratio_to_ofi_mr_cache\":%.4f,\"ratio_to_floor\":%.4f,\"rounds\":%d}",
		json_rows++ ? ",\n" : "", n, what, peer, monitor, ns, vs_ucx, vs_ofi,
		vs_floor, rounds);
}

static double med_ratio(double (*a)[MAX_ROUNDS], int x, int y, int rounds)
{
	double r[MAX_ROUNDS];

	for (int i = 0; i < rounds; i++)
		r[i] = a[x][i] / a[y][i];
	return median(r, rounds);
}

static void figure(size_t n, const struct layout *lay, const char *monitor_mode,
		   int rounds, bool threads)
{
	static struct cache c[NPEERS];
	double v[NPEERS][MAX_ROUNDS], med[NPEERS], tmp[MAX_ROUNDS];
	size_t ops = quick ? 200000 : 500000;
	char what[64];

	if (n > 100000)
		ops *= 2;
	for (int p = 0; p < NPEERS; p++)
		setup(&c[p], p, n, lay, monitor_mode);
	for (int r = 0; r < rounds; r++) {
		/* Rotate who goes first: A B C F, B C F A, ... */
		for (int k = 0; k < NPEERS; k++) {
			int p = (k + r) % NPEERS;

			run(&c[p], n < ops / 4 ? n : ops / 4, r + 100, true);	/* warm */
			v[p][r] = run(&c[p], ops, r + 1, true);
		}
	}
	snprintf(what, sizeof(what), "%s, %zuK entries", lay->what, n / 1024);
	for (int p = 0; p < NPEERS; p++) {
		memcpy(tmp, v[p], sizeof(tmp));
		med[p] = median(tmp, rounds);
	}
	for (int p = 0; p < NPEERS; p++) {
		double ru = med_ratio(v, p, UCX, rounds), ro = med_ratio(v, p, OFI, rounds),
		       rf = med_ratio(v, p, FLOOR, rounds);

		printf("%-28s %-13s %-10s %9.1f %9.2fx %9.3fx %9.2fx\n", what, peer_name[p],
		       c[p].monitor, med[p], ru, ro, rf);
		jrow(n, lay->what, peer_name[p], c[p].monitor, med[p], ru, ro, rf, rounds);
	}
	fflush(stdout);
	if (threads) {
		/* Two threads of one process, wall time per op of both together,
		 * against one thread's wall time in the same round. */
		double one[NPEERS][MAX_ROUNDS], two[NPEERS][MAX_ROUNDS];
		int tr = rounds < 5 ? rounds : 5;

		for (int r = 0; r < tr; r++)
			for (int k = 0; k < NPEERS - 1; k++) {
				int p = (k + r) % (NPEERS - 1);

				one[p][r] = run(&c[p], ops, r + 1, false);
				two[p][r] = run2(&c[p], ops, r + 1);
			}
		for (int p = 0; p < NPEERS - 1; p++) {
			double g[MAX_ROUNDS];

			for (int r = 0; r < tr; r++)
				g[r] = one[p][r] / two[p][r];
			memcpy(tmp, two[p], sizeof(tmp));
			snprintf(what, sizeof(what), "2 threads, %zuK entries", n / 1024);
			printf("%-28s %-13s %-10s %9.1f   (2 threads = %.2fx one thread's throughput)\n",
			       what, peer_name[p], c[p].monitor, median(tmp, tr), median(g, tr));
			if (json)
				fprintf(json, ",\n{\"figure\":\"12\",\"entries\":%zu,\"what\":\"exact hit, 2 threads (wall ns per op, both)\","
					"\"cache\":\"%s\",\"monitor\":\"%s\",\"ns_per_op\":%.3f,\"gain_over_one_thread\":%.4f}",
					n, peer_name[p], c[p].monitor, median(tmp, tr), median(g, tr));
		}
	}
	for (int p = 0; p < NPEERS; p++)
		check_and_teardown(&c[p]);
}

/* --- the miss path and memory per entry ----------------------------------- */

static long rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f || fscanf(f, "%ld %ld", &pages, &rss) != 2)
		die("/proc/self/statm", EIO);
	fclose(f);
	return rss * (long)PAGE;
}

static void miss_figure(size_t n, const char *monitor_mode, int rounds)
{
	double t[NPEERS][MAX_ROUNDS], rss[NPEERS][MAX_ROUNDS], heap[NPEERS][MAX_ROUNDS];
	double tmp[MAX_ROUNDS];
	const char *mon[NPEERS] = { 0 };
	char what[64];

	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < FLOOR; k++) {
			int p = (k + r) % FLOOR;
			static struct cache c;
			long rss0 = rss_bytes();
			size_t heap0 = mallinfo2().uordblks;
			double t0 = cpu_ns();

			setup(&c, p, n, &exact, monitor_mode);
			t[p][r] = (cpu_ns() - t0) / n;
			rss[p][r] = (double)(rss_bytes() - rss0) / n;
			heap[p][r] = ((double)mallinfo2().uordblks - (double)heap0) / n;
			mon[p] = c.monitor;
			check_and_teardown(&c);
		}
	}
	snprintf(what, sizeof(what), "miss (create+fill/n), %zuK", n / 1024);
	for (int p = 0; p < FLOOR; p++) {
		double ru = med_ratio(t, p, UCX, rounds), ro = med_ratio(t, p, OFI, rounds);
		double mr, mh;

		memcpy(tmp, t[p], sizeof(tmp));
		printf("%-28s %-13s %-10s %9.1f %9.2fx %9.3fx %10s\n", what, peer_name[p],
		       mon[p], median(tmp, rounds), ru, ro, "-");
		jrow(n, "miss, create+fill per entry", peer_name[p], mon[p],
		     median(tmp, rounds), ru, ro, 0, rounds);
		memcpy(tmp, rss[p], sizeof(tmp));
		mr = median(tmp, rounds);
		memcpy(tmp, heap[p], sizeof(tmp));
		mh = median(tmp, rounds);
		printf("%-28s %-13s %-10s   bytes per entry: %.0f resident, %.0f malloc'd\n",
		       "  memory per entry", peer_name[p], mon[p], mr, mh);
		if (json)
			fprintf(json, ",\n{\"figure\":\"12\",\"entries\":%zu,\"what\":\"memory per entry\","
				"\"cache\":\"%s\",\"monitor\":\"%s\",\"resident_bytes\":%.1f,\"malloc_bytes\":%.1f}",
				n, peer_name[p], mon[p], mr, mh);
	}
	fflush(stdout);
}

/* --- hits while another thread maps and unmaps unrelated memory ----------- */

static _Atomic int noise_stop;

static void *noise_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&noise_stop)) {
		char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			die("mmap (noise)", errno);
		*(volatile char *)p = 1;
		munmap(p, PAGE);
	}
	return NULL;
}

static void noise_figure(size_t n, const char *monitor_mode, int rounds)
{
	static struct cache c[NPEERS];
	double quiet[NPEERS][MAX_ROUNDS], noisy[NPEERS][MAX_ROUNDS], g[MAX_ROUNDS];
	size_t ops = quick ? 200000 : 500000;
	char what[64];

	for (int p = 0; p < NPEERS; p++)
		setup(&c[p], p, n, &exact, monitor_mode);
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < NPEERS; k++) {
			int p = (k + r) % NPEERS;
			pthread_t tid;

			run(&c[p], n < ops / 4 ? n : ops / 4, r + 100, true);
			quiet[p][r] = run(&c[p], ops, r + 1, true);
			atomic_store(&noise_stop, 0);
			if (pthread_create(&tid, NULL, noise_main, NULL))
				die("pthread_create", errno);
			noisy[p][r] = run(&c[p], ops, r + 1, true);
			atomic_store(&noise_stop, 1);
			pthread_join(tid, NULL);
		}
	}
	snprintf(what, sizeof(what), "hit, unrelated munmaps, %zuK", n / 1024);
	for (int p = 0; p < NPEERS; p++) {
		for (int r = 0; r < rounds; r++)
			g[r] = noisy[p][r] / quiet[p][r];
		{
			double ratio = median(g, rounds), tmp[MAX_ROUNDS];

			memcpy(tmp, noisy[p], sizeof(tmp));
			printf("%-28s %-13s %-10s %9.1f   (noisy/quiet = %.2fx)\n", what,
			       peer_name[p], c[p].monitor, median(tmp, rounds), ratio);
			if (json)
				fprintf(json, ",\n{\"figure\":\"12\",\"entries\":%zu,\"what\":\"exact hit, another thread unmapping unrelated pages\","
					"\"cache\":\"%s\",\"monitor\":\"%s\",\"ns_per_op\":%.3f,\"noisy_over_quiet\":%.4f}",
					n, peer_name[p], c[p].monitor, median(tmp, rounds), ratio);
		}
	}
	for (int p = 0; p < NPEERS; p++)
		check_and_teardown(&c[p]);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	size_t sizes[8] = { 1024, 65536, 524288 };
	int nsizes = 3, rounds;
	const char *json_path = NULL, *monitor_mode = "auto";
	bool threads = false;
	struct fi_info *info = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--threads")) {
			threads = true;
		} else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			json_path = argv[++i];
		} else if (!strncmp(argv[i], "--monitor=", 10)) {
			monitor_mode = argv[i] + 10;
		} else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			char *s = argv[++i], *end;

			for (nsizes = 0; nsizes < 8 && *s; nsizes++) {
				sizes[nsizes] = strtoul(s, &end, 0);
				if (!sizes[nsizes] || (sizes[nsizes] & (sizes[nsizes] - 1))) {
					fprintf(stderr, "peer_cache_bench: sizes are powers of two\n");
					return 2;
				}
				s = *end == ',' ? end + 1 : end;
			}
		} else {
			fprintf(stderr, "usage: %s [--quick] [--json FILE] [--sizes N,N,...] "
				"[--monitor=auto|uffd|manual] [--threads]\n", argv[0]);
			return 2;
		}
	}
	rounds = quick ? 5 : 11;
	/* libfabric's own initialisation (fi_ini: monitors, hmem, params). */
	fi_getinfo(FI_VERSION(2, 1), NULL, NULL, 0, NULL, &info);
	if (info)
		fi_freeinfo(info);
	noop_monitor.init(&noop_monitor);
	if (json_path) {
		json = fopen(json_path, "w");
		if (!json)
			die(json_path, errno);
		fprintf(json, "[\n");
	}
	printf("figure 12: registration cache peers, one process, natively; median of %d interleaved rounds%s; "
	       "%ld CPUs online\n", rounds, quick ? " (--quick)" : "", sysconf(_SC_NPROCESSORS_ONLN));
	printf("UCX %d.%d (Debian's libucx0); libfabric %u.%u (static archive, internal API)\n",
	       UCP_API_MAJOR, UCP_API_MINOR, FI_MAJOR(fi_version()), FI_MINOR(fi_version()));
	printf("%-28s %-13s %-10s %9s %10s %10s %10s\n", "what", "cache", "monitor", "ns/op",
	       "/ucs_rcache", "/ofi_mr", "/floor");
	for (int s = 0; s < nsizes; s++) {
		figure(sizes[s], &exact, monitor_mode, rounds, threads);
		if (sizes[s] <= 65536)
			figure(sizes[s], &covering, monitor_mode, rounds, false);
		miss_figure(sizes[s], monitor_mode, rounds);
		if (sizes[s] <= 65536)
			noise_figure(sizes[s], monitor_mode, rounds);
	}
	if (json) {
		fprintf(json, "\n]\n");
		fclose(json);
	}
	return 0;
}
