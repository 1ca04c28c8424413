// SPDX-License-Identifier: GPL-2.0-only
/*
 * Benchmarks of libmapwatch (figures 6 and 7 of bench/README.md).
 *
 * Figure 6, the registration cache: get+put on the hit path with 1K, 10K
 * and 100K cached entries, from 1 and 8 threads (random entries, exact
 * start; also requests inside larger entries, the covering path), and the
 * miss path with a registration that does nothing (watch, reg, insert,
 * evict, unwatch of the evicted), and the worst miss while 4 threads make
 * covering hits.
 *
 * Figure 7, the backends side by side (kernel and userfaultfd, whichever
 * this machine has): a watch+unwatch pair (and per region in batches of
 * 256), the cost added to mmap+touch+munmap of an unwatched page by many
 * watches elsewhere, and munmap of a watched page until mapwatch_changed()
 * is true (userfaultfd makes the unmapping thread wait for the library's
 * reader thread: that shows here).
 *
 * Every number is the median of repeated runs.  Nothing is asserted.
 * Under QEMU TCG absolute times are emulated: read the ratios.
 *
 * usage: cache_bench [--quick] [--backend=manual|userfaultfd|kernel] [--json FILE]
 *   --backend: the monitor under figure 6 (default: kernel, else
 *   userfaultfd, else manual).  Figure 7 always tries kernel and userfaultfd.
 */
#define _GNU_SOURCE
#include <errno.h>
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

#include "mapwatch.h"
#include "bench.h"

#define PAGE 4096UL
#define MAX_THREADS 8

static bool quick;
static int reps = 5;
static FILE *json;
static int json_rows;

/* This thread's CPU time: with more threads than CPUs, wall time per
 * operation would count the time a thread waits for a CPU. */
static double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "cache_bench: %s: %s\n", what, strerror(err));
	exit(1);
}

/* One printed row, and one JSON record.  ratio <= 0: none. */
static void row(const char *fig, const char *backend, const char *what,
		double value, const char *unit, double ratio,
		const char *baseline)
{
	char r[16] = "";

	if (ratio > 0)
		snprintf(r, sizeof(r), "%.2fx", ratio);
	printf("%-4s %-12s %-50s %11.1f %-7s %8s  %s\n", fig, backend, what,
	       value, unit, r, baseline);
	fflush(stdout);
	if (json)
		fprintf(json, "%s{\"figure\":\"%s\",\"backend\":\"%s\",\"what\":\"%s\","
			"\"value\":%.3f,\"unit\":\"%s\",\"ratio\":%.4f,\"baseline\":\"%s\"}",
			json_rows++ ? ",\n" : "", fig, backend, what, value, unit,
			ratio > 0 ? ratio : 0, baseline);
}

static struct mapwatch *open_monitor(enum mapwatch_backend b, size_t max,
				     bool must)
{
	struct mapwatch *mw;
	const char *why = NULL;
	int r = mapwatch_open(&mw, b, max, &why);

	if (r) {
		if (must) {
			fprintf(stderr, "cache_bench: %s backend: %s\n",
				mapwatch_backend_name(b), why ? why : strerror(-r));
			exit(1);
		}
		return NULL;
	}
	return mw;
}

/* A region nothing else uses: addresses for the entries and watches.
 * Never touched by the cache; userfaultfd needs it mapped. */
static char *reserve(size_t pages)
{
	char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		die("mmap", errno);
	return p;
}

/* The registration that costs nothing. */
static void *noop_reg(void *ctx, void *addr, size_t len, int flags)
{
	(void)ctx;
	(void)len;
	(void)flags;
	return addr ? addr : (void *)1;
}

static void noop_dereg(void *ctx, void *reg)
{
	(void)ctx;
	(void)reg;
}

static const struct mapwatch_cache_ops noop_ops = { .reg = noop_reg, .dereg = noop_dereg };

/* --- figure 6: the cache ---------------------------------------------------- */

struct hit_arg {
	struct mapwatch_cache *c;
	char *base;
	size_t n, stride;		/* entries, pages per entry */
	size_t off;			/* pages into an entry to ask for */
	unsigned int seed;
	_Atomic bool *go, *stop;
	uint64_t ops;
	double ns;
};

static void *hit_thread(void *p)
{
	struct hit_arg *a = p;
	uint64_t x = a->seed * 0x9e3779b97f4a7c15ULL + 1, ops = 0;
	double t0;

	while (!atomic_load(a->go))
		;
	t0 = cpu_ns();
	while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
		for (int k = 0; k < 64; k++) {
			size_t i;
			struct mapwatch_cache_entry *e;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			i = x % a->n;
			e = mapwatch_cache_get(a->c, a->base + (i * a->stride + a->off) * PAGE,
					       PAGE, 0);
			if (!e)
				die("hit path get", errno);
			mapwatch_cache_put(a->c, e);
		}
		ops += 64;
	}
	a->ns = cpu_ns() - t0;
	a->ops = ops;
	return NULL;
}

/* CPU ns per get+put of each thread (median over threads), and the
 * wall-clock throughput of all threads together in Mops/s. */
static void hit_run(struct mapwatch_cache *c, char *base, size_t n,
		    size_t stride, size_t off, int threads, double secs,
		    double *ns_per_op, double *mops)
{
	pthread_t t[MAX_THREADS];
	struct hit_arg a[MAX_THREADS];
	_Atomic bool go = false, stop = false;
	double per[MAX_THREADS], t0, wall;
	uint64_t ops = 0;

	for (int i = 0; i < threads; i++) {
		a[i] = (struct hit_arg){ c, base, n, stride, off, (unsigned int)i + 1,
					 &go, &stop, 0, 0 };
		if (pthread_create(&t[i], NULL, hit_thread, &a[i]))
			die("pthread_create", errno);
	}
	t0 = now_ns();
	atomic_store(&go, true);
	usleep((useconds_t)(secs * 1e6));
	atomic_store(&stop, true);
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		per[i] = a[i].ns / a[i].ops;
		ops += a[i].ops;
	}
	wall = now_ns() - t0;
	*ns_per_op = median(per, threads);
	*mops = ops / (wall / 1e3);
}

/*
 * Misses while 4 threads make covering hits on the same cache: the worst
 * and the median wall time of one miss (get+put of a new range).  A
 * reader-preferring tree lock let the hits starve the misses' insertions.
 */
static void miss_latency_under_covering_hits(struct mapwatch_cache *c,
					     char *base, size_t n,
					     const char *bn)
{
	enum { HITTERS = 4 };
	size_t misses = quick ? 500 : 2000;
	pthread_t t[HITTERS];
	struct hit_arg a[HITTERS];
	_Atomic bool go = false, stop = false;
	char *fresh = reserve(misses);
	double *lat = malloc(misses * sizeof(*lat)), worst = 0;
	char what[96];

	if (!lat)
		die("malloc", ENOMEM);
	for (int i = 0; i < HITTERS; i++) {
		a[i] = (struct hit_arg){ c, base, n, 4, 2, (unsigned int)i + 1,
					 &go, &stop, 0, 0 };
		if (pthread_create(&t[i], NULL, hit_thread, &a[i]))
			die("pthread_create", errno);
	}
	atomic_store(&go, true);
	usleep(20 * 1000);
	for (size_t i = 0; i < misses; i++) {
		double t0 = now_ns();
		struct mapwatch_cache_entry *e =
			mapwatch_cache_get(c, fresh + i * PAGE, PAGE, 0);

		if (!e)
			die("miss under load", errno);
		mapwatch_cache_put(c, e);
		lat[i] = now_ns() - t0;
		if (lat[i] > worst)
			worst = lat[i];
	}
	atomic_store(&stop, true);
	for (int i = 0; i < HITTERS; i++)
		pthread_join(t[i], NULL);
	snprintf(what, sizeof(what), "worst miss of %zu, %d threads covering-hitting",
		 misses, HITTERS);
	row("6", bn, what, worst / 1e3, "us", 0, "wall clock");
	row("6", bn, "  median miss, same", median(lat, misses) / 1e3, "us", 0,
	    "wall clock");
	free(lat);
	munmap(fresh, misses * PAGE);
}

static void figure6(enum mapwatch_backend b)
{
	static const size_t sizes[] = { 1000, 10000, 100000 };
	const char *bn = mapwatch_backend_name(b);
	double secs = quick ? 0.1 : 0.3;

	for (unsigned int si = 0; si < 3; si++) {
		size_t n = sizes[si];
		struct mapwatch *mw = open_monitor(b, n + 64, true);
		struct mapwatch_cache *c = mapwatch_cache_create(mw, &noop_ops, NULL);
		char *base = reserve(n * 4);
		struct mapwatch_cache_stats s;

		if (!c)
			die("mapwatch_cache_create", errno);
		/* n entries of 4 pages. */
		for (size_t i = 0; i < n; i++) {
			struct mapwatch_cache_entry *e =
				mapwatch_cache_get(c, base + i * 4 * PAGE, 4 * PAGE, 0);

			if (!e)
				die("filling the cache", errno);
			mapwatch_cache_put(c, e);
		}
		for (int threads = 1; threads <= MAX_THREADS; threads *= 8) {
			double ns[16], mops[16];
			char what[96];

			for (int r = 0; r < reps; r++)
				hit_run(c, base, n, 4, 0, threads, secs, &ns[r], &mops[r]);
			snprintf(what, sizeof(what), "hit get+put, %zuK entries, %d thread%s",
				 n / 1000, threads, threads > 1 ? "s" : "");
			row("6", bn, what, median(ns, reps), "ns/op", 0,
			    "CPU time per op");
			snprintf(what, sizeof(what), "  same, all %d together (wall clock)", threads);
			row("6", bn, what, median(mops, reps), "Mops/s", 0, "");
			if (n != 10000)
				continue;
			/* Inside an entry, not at its start: the covering path. */
			for (int r = 0; r < reps; r++)
				hit_run(c, base, n, 4, 2, threads, secs, &ns[r], &mops[r]);
			snprintf(what, sizeof(what), "covering hit, %zuK entries, %d thread%s",
				 n / 1000, threads, threads > 1 ? "s" : "");
			row("6", bn, what, median(ns, reps), "ns/op", 0, "CPU time per op");
		}
		if (n == 10000)
			miss_latency_under_covering_hits(c, base, n, bn);
		mapwatch_cache_get_stats(c, &s);
		if (n != 10000 && (s.misses != n || s.entries != n))
			fprintf(stderr, "cache_bench: unexpected misses %llu / entries %llu\n",
				(unsigned long long)s.misses, (unsigned long long)s.entries);
		mapwatch_cache_destroy(c);
		mapwatch_close(mw);
		munmap(base, n * 4 * PAGE);
	}

	/* Misses with a no-op registration, in a full cache of 1K entries:
	 * watch, reg, insert, evict one (unwatch), put. */
	{
		size_t n = quick ? 20000 : 100000;
		struct mapwatch *mw = open_monitor(b, 2048, true);
		struct mapwatch_cache_config cfg = { .max_entries = 1000 };
		struct mapwatch_cache *c = mapwatch_cache_create(mw, &noop_ops, &cfg);
		char *base = reserve(n);
		double v[16];

		if (!c)
			die("mapwatch_cache_create", errno);
		for (int r = 0; r < reps; r++) {
			size_t per = n / reps;
			double t0 = now_ns();

			for (size_t i = r * per; i < (r + 1) * per; i++) {
				struct mapwatch_cache_entry *e =
					mapwatch_cache_get(c, base + i * PAGE, PAGE, 0);

				if (!e)
					die("miss path get", errno);
				mapwatch_cache_put(c, e);
			}
			v[r] = (now_ns() - t0) / per;
		}
		row("6", bn, "miss get+put, no-op reg, evicting (1K cached)",
		    median(v, reps), "ns/op", 0, "");
		mapwatch_cache_destroy(c);
		mapwatch_close(mw);
		munmap(base, n * PAGE);
	}
}

/*
 * Pinned bytes for an overlapping workload (review F16): one 1 MiB buffer
 * sent as a growing prefix, 8 KiB, 16 KiB, ... 1 MiB, each get put before
 * the next (an MPI sending more and more of one buffer).  The registration
 * counts the bytes it holds; a cache that kept every prefix would pin
 * about twice the buffer, one that takes covered idle entries out on a
 * miss pins it once.  Baseline: the buffer's size.
 */
static long pinned_bytes;

static void *count_reg(void *ctx, void *addr, size_t len, int flags)
{
	size_t *r = malloc(sizeof(*r));

	(void)ctx, (void)addr, (void)flags;
	if (!r)
		return NULL;
	*r = len;
	pinned_bytes += (long)len;
	return r;
}

static void count_dereg(void *ctx, void *reg)
{
	(void)ctx;
	pinned_bytes -= (long)*(size_t *)reg;
	free(reg);
}

static void overlap_pinned(enum mapwatch_backend b)
{
	static const struct mapwatch_cache_ops ops = { .reg = count_reg, .dereg = count_dereg };
	const size_t buf_len = 1 << 20;
	struct mapwatch *mw = open_monitor(b, 256, true);
	struct mapwatch_cache *c = mapwatch_cache_create(mw, &ops, NULL);
	struct mapwatch_cache_stats st;
	char *buf = reserve(buf_len / PAGE), what[96];

	if (!c)
		die("mapwatch_cache_create", errno);
	pinned_bytes = 0;
	for (size_t len = 8192; len <= buf_len; len *= 2) {
		struct mapwatch_cache_entry *e = mapwatch_cache_get(c, buf, len, 0);

		if (!e)
			die("overlap get", errno);
		mapwatch_cache_put(c, e);
	}
	mapwatch_cache_get_stats(c, &st);
	snprintf(what, sizeof(what), "pinned, growing prefix 8K..1M of one buffer (%llu entries)",
		 (unsigned long long)st.entries);
	row("6", mapwatch_backend_name(b), what, pinned_bytes / 1024.0, "KiB",
	    (double)pinned_bytes / buf_len, "the buffer, 1024 KiB");
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
	munmap(buf, buf_len);
}

/* --- figure 7: the backends side by side -------------------------------------- */

/* Watch n adjacent pages of a fresh region (kept until close; adjacent so
 * that userfaultfd's registrations merge into one VMA). */
static char *watch_many(struct mapwatch *mw, size_t n, uint64_t cookie0)
{
	/*
	 * A PROT_NONE guard page below the watched pages: the next mmap lands
	 * just below them and would otherwise merge into their VMA, so every
	 * munmap measured after this would split a large VMA, a cost of the
	 * layout and not of the monitor.
	 */
	char *guard = reserve((n ? n : 1) + 1), *base = guard + PAGE;

	if (mprotect(guard, PAGE, PROT_NONE))
		die("mprotect", errno);
	struct mapwatch_watch_req req[256];

	for (size_t i = 0; i < n;) {
		size_t k = n - i < 256 ? n - i : 256;

		for (size_t j = 0; j < k; j++)
			req[j] = (struct mapwatch_watch_req){
				.addr = base + (i + j) * PAGE, .len = PAGE,
				.cookie = cookie0 + i + j,
			};
		if (mapwatch_watch_batch(mw, req, k) != (int)k)
			die("watching many", -req[0].status);
		i += k;
	}
	return base;
}

static double pair_cost(struct mapwatch *mw, char *page, int rounds)
{
	double t0 = now_ns();

	for (int i = 0; i < rounds; i++) {
		struct mapwatch_handle h;
		int r = mapwatch_watch(mw, page, PAGE, 1ULL << 40 | i, &h);

		if (r)
			die("watch", -r);
		mapwatch_unwatch(mw, &h);
	}
	return (now_ns() - t0) / rounds;
}

static double batch_cost(struct mapwatch *mw, char *base, int batches)
{
	static struct mapwatch_watch_req req[256];
	static struct mapwatch_handle h[256];
	double t0 = now_ns();

	for (int b = 0; b < batches; b++) {
		for (int j = 0; j < 256; j++)
			req[j] = (struct mapwatch_watch_req){
				.addr = base + j * PAGE, .len = PAGE,
				.cookie = 1ULL << 41 | (uint64_t)b << 9 | j,
			};
		if (mapwatch_watch_batch(mw, req, 256) != 256)
			die("watch_batch", -req[0].status);
		for (int j = 0; j < 256; j++)
			h[j] = req[j].h;
		mapwatch_unwatch_batch(mw, h, 256, NULL);
	}
	return (now_ns() - t0) / batches / 256;
}

static double mmap_munmap_cost(int rounds)
{
	double t0 = now_ns();

	for (int i = 0; i < rounds; i++) {
		char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			die("mmap", errno);
		p[0] = 1;
		munmap(p, PAGE);
	}
	return (now_ns() - t0) / rounds;
}

/* munmap of a one-page mapping, watched when mw is not NULL: until munmap
 * returns, and until changed() is true. */
static void munmap_watched(struct mapwatch *mw, int rounds, double *ret_ns,
			   double *changed_ns, int *late)
{
	double *a = calloc(rounds, sizeof(double)), *b = calloc(rounds, sizeof(double));

	*late = 0;
	for (int i = 0; i < rounds; i++) {
		struct mapwatch_handle h;
		struct mapwatch_event ev[8];
		char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		double t0, t1, t2;
		int r;

		if (p == MAP_FAILED)
			die("mmap", errno);
		p[0] = 1;
		if (mw) {
			r = mapwatch_watch(mw, p, PAGE, 1ULL << 42 | i, &h);
			if (r)
				die("watch", -r);
		}
		t0 = now_ns();
		munmap(p, PAGE);
		t1 = now_ns();
		if (mw) {
			if (!mapwatch_changed(&h))
				(*late)++;
			while (!mapwatch_changed(&h))
				;
		}
		t2 = now_ns();
		a[i] = t1 - t0;
		b[i] = t2 - t0;
		if (mw) {
			mapwatch_unwatch(mw, &h);
			while (mapwatch_read_events(mw, ev, 8) > 0)
				;
		}
	}
	*ret_ns = median(a, rounds);
	*changed_ns = median(b, rounds);
	free(a);
	free(b);
}

static void figure7(void)
{
	static const enum mapwatch_backend bs[] = { MAPWATCH_BACKEND_KERNEL,
						    MAPWATCH_BACKEND_USERFAULTFD };
	int rounds = quick ? 1000 : 5000;
	double base_mm[16], base_unmap, v[16];
	char what[96];

	/* Baselines, no monitor at all. */
	for (int r = 0; r < reps; r++)
		base_mm[r] = mmap_munmap_cost(rounds);
	{
		double x[16], unused;
		int late;

		for (int r = 0; r < reps; r++)
			munmap_watched(NULL, quick ? 200 : 1000, &x[r], &unused, &late);
		base_unmap = median(x, reps);
	}
	row("7", "none", "mmap+touch+munmap of a page (no monitor)",
	    median(base_mm, reps), "ns", 0, "baseline");
	row("7", "none", "munmap of a touched one-page mapping (no monitor)", base_unmap,
	    "ns", 0, "baseline");

	for (unsigned int bi = 0; bi < 2; bi++) {
		const char *bn = mapwatch_backend_name(bs[bi]);
		struct mapwatch *mw = open_monitor(bs[bi], 100000 + 1024, false);
		double pair0, mm0;
		char *page = reserve(256), *many;
		size_t watched = 0;

		if (!mw) {
			row("7", bn, "(backend unavailable here)", 0, "-", 0, "");
			munmap(page, 256 * PAGE);
			continue;
		}
		/* watch+unwatch pair, then per region in batches. */
		for (int r = 0; r < reps; r++)
			v[r] = pair_cost(mw, page, rounds);
		pair0 = median(v, reps);
		row("7", bn, "watch+unwatch pair, 0 other watches", pair0, "ns", 0, "");
		for (int r = 0; r < reps; r++)
			v[r] = batch_cost(mw, page, quick ? 4 : 16);
		row("7", bn, "watch+unwatch per region, batches of 256",
		    median(v, reps), "ns", pair0 / median(v, reps),
		    "gain over pairs");
		/* mmap+touch+munmap elsewhere, with 0 / 10K / 100K watches. */
		for (int r = 0; r < reps; r++)
			v[r] = mmap_munmap_cost(rounds);
		mm0 = median(v, reps);
		row("7", bn, "mmap+touch+munmap, unwatched page, 0 watches",
		    mm0, "ns", mm0 / median(base_mm, reps), "vs no monitor");
		many = NULL;
		for (size_t n = 10000; n <= (quick ? 10000 : 100000); n *= 10) {
			many = watch_many(mw, n - watched, 1ULL << 43 | watched);
			watched = n;
			for (int r = 0; r < reps; r++)
				v[r] = mmap_munmap_cost(rounds);
			snprintf(what, sizeof(what),
				 "mmap+touch+munmap, unwatched page, %zuK watches", n / 1000);
			row("7", bn, what, median(v, reps), "ns",
			    median(v, reps) / median(base_mm, reps), "vs no monitor");
		}
		(void)many;
		/* munmap of a watched page, until changed(). */
		{
			double ret[16], chg[16];
			int late, late_total = 0;

			for (int r = 0; r < reps; r++) {
				munmap_watched(mw, quick ? 200 : 1000, &ret[r], &chg[r], &late);
				late_total += late;
			}
			row("7", bn, "munmap of a watched page: until it returns",
			    median(ret, reps), "ns", median(ret, reps) / base_unmap,
			    "vs unwatched munmap");
			row("7", bn, "munmap of a watched page: until changed() true",
			    median(chg, reps), "ns", median(chg, reps) / base_unmap,
			    "vs unwatched munmap");
			snprintf(what, sizeof(what),
				 "  rounds where changed() was false at return");
			row("7", bn, what, late_total, "rounds", 0,
			    late_total ? "not synchronous" : "synchronous");
		}
		mapwatch_close(mw);
	}
}

int main(int argc, char **argv)
{
	enum mapwatch_backend b = MAPWATCH_BACKEND_AUTO;
	const char *json_path = NULL;
	struct mapwatch *probe;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			json_path = argv[++i];
		} else if (!strncmp(argv[i], "--backend=", 10)) {
			const char *n = argv[i] + 10;

			b = !strcmp(n, "kernel") ? MAPWATCH_BACKEND_KERNEL :
			    !strcmp(n, "userfaultfd") ? MAPWATCH_BACKEND_USERFAULTFD :
			    !strcmp(n, "manual") ? MAPWATCH_BACKEND_MANUAL :
			    (enum mapwatch_backend)-1;
			if ((int)b < 0) {
				fprintf(stderr, "cache_bench: unknown backend %s\n", n);
				return 2;
			}
		} else {
			fprintf(stderr, "usage: %s [--quick] [--backend=manual|userfaultfd|kernel] [--json FILE]\n",
				argv[0]);
			return 2;
		}
	}
	if (quick)
		reps = 3;
	if (b == MAPWATCH_BACKEND_AUTO) {
		probe = open_monitor(MAPWATCH_BACKEND_AUTO, 1, false);
		b = probe ? mapwatch_backend(probe) : MAPWATCH_BACKEND_MANUAL;
		mapwatch_close(probe);
	}
	if (json_path) {
		json = fopen(json_path, "w");
		if (!json)
			die(json_path, errno);
		fprintf(json, "[\n");
	}
	printf("libmapwatch figures 6 and 7, median of %d runs%s; %ld CPUs online\n",
	       reps, quick ? " (--quick)" : "", sysconf(_SC_NPROCESSORS_ONLN));
	printf("%-4s %-12s %-50s %11s %-7s %8s  %s\n", "fig", "backend", "what",
	       "value", "unit", "ratio", "ratio to");
	figure6(b);
	overlap_pinned(b);
	figure7();
	if (json) {
		fprintf(json, "\n]\n");
		fclose(json);
	}
	return 0;
}
