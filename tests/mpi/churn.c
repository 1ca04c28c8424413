// SPDX-License-Identifier: GPL-2.0-only
/*
 * Pairs of MPI ranks: in each pair the first sends and the second receives
 * and checks every byte.  For each buffer variant the sender takes a fresh
 * buffer for every message, fills it with a pattern derived from (variant,
 * iteration, size) and gives the buffer back after the send, so new memory
 * keeps landing at addresses a registration cache has seen before:
 *
 *   static   one buffer for the whole run (the cache's good case)
 *   malloc   malloc/free (large sizes: glibc's mmap/munmap, or its heap)
 *   mmap     mmap/munmap through glibc (Open MPI's patcher sees these)
 *   brk      sbrk(+n) / sbrk(-n): the heap top grows and shrinks
 *   syscall  syscall(SYS_mmap) / syscall(SYS_munmap): no glibc symbol to
 *            patch, as language runtimes and some allocators do it
 *
 * A message whose bytes differ from the pattern of its own iteration is
 * corrupt (a stale registration delivers an older iteration's data).
 *
 * One pair per mpirun app context (MPMD: `mpirun -np 2 A : -np 2 B`), so
 * that each pair can run under its own environment in one job; the pairs
 * take turns, the others waiting without spinning.  Each pair's sender
 * prints one JSON line about itself, one per variant, and a last one:
 *   {"row": "mapwatch", "ranks": [0, 1], "hosts": [...], "libfabric": ...}
 *   {"row": "mapwatch", "variant": "mmap", "messages": 50, "corrupt": 0,
 *    "bytes": ..., "send_seconds": ..., "mb_per_s": ...}
 *   {"row": "mapwatch", "done": true}
 * send_seconds sums the time spent in MPI_Send only (registration or cache
 * lookup, and the transfer), not the filling or the checking.
 *
 * usage: mpirun -np 2 churn [--row NAME] [--iters N] [--sizes 4K,64K,...]
 *                           [--variants a,b] [: -np 2 churn --row NAME2 ...]
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <malloc.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZES 16
#define TAG_READY 1
#define TAG_DATA 2
#define TAG_COUNT 3
#define TAG_TURN 4

enum variant { V_STATIC, V_MALLOC, V_MMAP, V_BRK, V_SYSCALL, V_COUNT };
static const char *const variant_names[V_COUNT] = {
	"static", "malloc", "mmap", "brk", "syscall"
};

static MPI_Comm pair;	/* this pair: rank 0 sends, rank 1 receives */
static const char *row = "";
static size_t sizes[MAX_SIZES];
static int nsizes;
static size_t max_size;

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "churn: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	MPI_Abort(MPI_COMM_WORLD, 2);
	exit(2);
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'K': v <<= 10; end++; break;
	case 'M': v <<= 20; end++; break;
	}
	if (end == s || (*end && *end != ',') || v == 0 || v % 8 || v > (64ULL << 20))
		die("bad size in '%s' (a multiple of 8 bytes, at most 64M; K and M suffixes)", s);
	return v;
}

static void parse_sizes(const char *list)
{
	const char *p = list;

	nsizes = 0;
	for (;;) {
		if (nsizes == MAX_SIZES)
			die("too many sizes in '%s'", list);
		sizes[nsizes] = parse_size(p);
		if (sizes[nsizes] > max_size)
			max_size = sizes[nsizes];
		nsizes++;
		p = strchr(p, ',');
		if (!p)
			break;
		p++;
	}
}

static int variant_index(const char *name, size_t len)
{
	for (int v = 0; v < V_COUNT; v++)
		if (strlen(variant_names[v]) == len && !strncmp(variant_names[v], name, len))
			return v;
	return -1;
}

static uint64_t word(int v, int iter, int s, size_t i)
{
	/* Distinct for every message of the run and every word in it. */
	uint64_t msg = ((uint64_t)v << 24) | ((uint64_t)iter << 8) | (uint64_t)s;

	return (msg << 40) ^ (msg * 0x9e3779b97f4a7c15ULL) ^ i;
}

static void fill(void *buf, size_t len, int v, int iter, int s)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = word(v, iter, s, i);
}

static int check(const void *buf, size_t len, int v, int iter, int s)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != word(v, iter, s, i))
			return 1;
	return 0;
}

static size_t page_round(size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (len + page - 1) & ~(page - 1);
}

static void *static_buf;

static void *take(int v, size_t len)
{
	void *p;

	switch (v) {
	case V_STATIC:
		return static_buf;
	case V_MALLOC:
		p = malloc(len);
		return p;
	case V_MMAP:
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	case V_BRK:
		p = sbrk((intptr_t)page_round(len));
		return p == (void *)-1 ? NULL : p;
	case V_SYSCALL:
		p = (void *)syscall(SYS_mmap, NULL, len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	return NULL;
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
		/*
		 * Shrink only if nobody grew the heap past our block since
		 * (malloc's top pad, set in main, makes that unlikely).
		 */
		if (sbrk(0) != (char *)p + page_round(len))
			die("the heap grew past the sbrk block (%s): cannot shrink it", "brk");
		if (sbrk(-(intptr_t)page_round(len)) == (void *)-1)
			die("sbrk shrink failed: %s", strerror(errno));
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

static int find_fabric(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	if (strstr(info->dlpi_name, "libfabric.so")) {
		*(const char **)data = info->dlpi_name;
		return 1;
	}
	return 0;
}

/* Which libfabric this rank really runs, and its version: the runner checks it. */
static void report_fabric(int world_rank, const char *hosts, double init_seconds)
{
	const char *path = NULL;
	uint32_t (*version)(void) = NULL;
	void *h;
	unsigned int ver = 0;

	dl_iterate_phdr(find_fabric, &path);
	if (path) {
		h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
		if (h)
			version = (uint32_t (*)(void))dlsym(h, "fi_version");
		if (version)
			ver = version();
	}
	printf("{\"row\": \"%s\", \"ranks\": [%d, %d], \"hosts\": [%s], "
	       "\"libfabric\": \"%s\", \"fi_version\": \"%u.%u\", \"init_seconds\": %.3f}\n",
	       row, world_rank, world_rank + 1, hosts, path ? path : "", ver >> 16,
	       ver & 0xffff, init_seconds);
	fflush(stdout);
}

static void sender(const int *variants, int nvariants, int iters, int quiet)
{
	for (int k = 0; k < nvariants; k++) {
		int v = variants[k], corrupt = 0, ready;
		double t = 0, t0;
		unsigned long long bytes = 0;

		for (int it = 0; it < iters; it++) {
			for (int s = 0; s < nsizes; s++) {
				void *buf = take(v, sizes[s]);

				if (!buf)
					die("cannot allocate a %s buffer", variant_names[v]);
				fill(buf, sizes[s], v, it, s);
				MPI_Recv(&ready, 1, MPI_INT, 1, TAG_READY, pair,
					 MPI_STATUS_IGNORE);
				t0 = now();
				MPI_Send(buf, (int)sizes[s], MPI_BYTE, 1, TAG_DATA, pair);
				t += now() - t0;
				bytes += sizes[s];
				give_back(v, buf, sizes[s]);
			}
		}
		MPI_Recv(&corrupt, 1, MPI_INT, 1, TAG_COUNT, pair, MPI_STATUS_IGNORE);
		if (quiet)
			continue;
		printf("{\"row\": \"%s\", \"variant\": \"%s\", \"messages\": %d, \"corrupt\": %d, "
		       "\"bytes\": %llu, \"send_seconds\": %.6f, \"mb_per_s\": %.2f}\n",
		       row, variant_names[v], iters * nsizes, corrupt, bytes, t,
		       t > 0 ? bytes / t / 1e6 : 0.0);
		fflush(stdout);
	}
}

static void receiver(const int *variants, int nvariants, int iters)
{
	unsigned char *buf = malloc(max_size);
	int ready = 1;

	if (!buf)
		die("cannot allocate the %s buffer", "receive");
	for (int k = 0; k < nvariants; k++) {
		int v = variants[k], corrupt = 0;

		for (int it = 0; it < iters; it++) {
			for (int s = 0; s < nsizes; s++) {
				/* Poison first: a message that never lands is corrupt too. */
				memset(buf, 0xa5, sizes[s]);
				MPI_Send(&ready, 1, MPI_INT, 0, TAG_READY, pair);
				MPI_Recv(buf, (int)sizes[s], MPI_BYTE, 0, TAG_DATA, pair,
					 MPI_STATUS_IGNORE);
				corrupt += check(buf, sizes[s], v, it, s);
			}
		}
		MPI_Send(&corrupt, 1, MPI_INT, 0, TAG_COUNT, pair);
	}
	free(buf);
}

/* Wait for a message without spinning: idle pairs leave the CPUs to the busy one. */
static void wait_turn(int from)
{
	struct timespec nap = { 0, 20 * 1000 * 1000 };
	MPI_Request req;
	int token, done = 0;

	MPI_Irecv(&token, 1, MPI_INT, from, TAG_TURN, MPI_COMM_WORLD, &req);
	for (;;) {
		MPI_Test(&req, &done, MPI_STATUS_IGNORE);
		if (done)
			return;
		nanosleep(&nap, NULL);
	}
}

int main(int argc, char **argv)
{
	int world_rank, world_size, rank, nranks, iters = 10, variants[V_COUNT], nvariants = 0;
	int *appnum, flag, npairs, p;
	double init_seconds;
	const char *vlist = "static,malloc,mmap,brk,syscall";
	char host[64] = "", hosts[2][64];
	MPI_Group world_group, pair_group;

	/*
	 * A big top pad keeps glibc from growing the heap while the brk
	 * variant's own block sits on top of it.
	 */
	mallopt(M_TOP_PAD, 64 << 20);
	init_seconds = now();
	MPI_Init(&argc, &argv);
	init_seconds = now() - init_seconds;
	MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world_size);
	parse_sizes("4K,64K,256K,1M,4M");
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
			iters = atoi(argv[++i]);
			if (iters <= 0 || iters > 100000)
				die("bad --iters '%s'", argv[i]);
		} else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			max_size = 0;
			parse_sizes(argv[++i]);
		} else if (!strcmp(argv[i], "--variants") && i + 1 < argc) {
			vlist = argv[++i];
		} else if (!strcmp(argv[i], "--row") && i + 1 < argc) {
			row = argv[++i];
			if (strpbrk(row, "\"\\"))
				die("bad --row '%s'", row);
		} else {
			die("usage: churn [--row NAME] [--iters N] [--sizes 4K,64K,...] [--variants %s]",
			    "static,malloc,mmap,brk,syscall");
		}
	}
	for (const char *q = vlist; *q;) {
		size_t len = strcspn(q, ",");
		int v = variant_index(q, len);

		if (v < 0 || nvariants == V_COUNT)
			die("bad --variants '%s'", vlist);
		variants[nvariants++] = v;
		q += len + (q[len] == ',');
	}

	/*
	 * Pair p is app context p, world ranks 2p and 2p+1.  A group
	 * communicator involves the pair only: no connection to the others.
	 */
	MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_APPNUM, &appnum, &flag);
	p = flag ? *appnum : 0;
	npairs = world_size / 2;
	if (world_size % 2 || world_rank / 2 != p)
		die("needs 2 ranks per app context (%s)", "mpirun -np 2 churn [: -np 2 churn]...");
	MPI_Comm_group(MPI_COMM_WORLD, &world_group);
	MPI_Group_incl(world_group, 2, (int[]){ 2 * p, 2 * p + 1 }, &pair_group);
	MPI_Comm_create_group(MPI_COMM_WORLD, pair_group, 0, &pair);
	MPI_Comm_rank(pair, &rank);
	MPI_Comm_size(pair, &nranks);

	static_buf = malloc(max_size);
	if (!static_buf)
		die("cannot allocate the %s buffer", "static");
	if (p > 0)
		wait_turn(2 * (p - 1));
	gethostname(host, sizeof(host) - 1);
	MPI_Gather(host, sizeof(host), MPI_CHAR, hosts, sizeof(host), MPI_CHAR, 0, pair);
	/*
	 * Warm up from the static buffer (never freed): the first message
	 * sets up the connection, which no variant's figure should carry.
	 */
	if (rank == 0)
		MPI_Send(static_buf, (int)max_size, MPI_BYTE, 1, TAG_DATA, pair);
	else
		MPI_Recv(static_buf, (int)max_size, MPI_BYTE, 0, TAG_DATA, pair, MPI_STATUS_IGNORE);
	/*
	 * And one untimed static pass: the emulator translates the send path
	 * the first time it runs, a cost the first pair alone would carry.
	 */
	if (rank == 0) {
		char list[160];

		sender((int[]){ V_STATIC }, 1, 1, 1);
		snprintf(list, sizeof(list), "\"%s\", \"%s\"", hosts[0], hosts[1]);
		report_fabric(world_rank, list, init_seconds);
		sender(variants, nvariants, iters, 0);
	} else {
		receiver((int[]){ V_STATIC }, 1, 1);
		receiver(variants, nvariants, iters);
	}
	MPI_Barrier(pair);
	if (rank == 0) {
		printf("{\"row\": \"%s\", \"done\": true}\n", row);
		fflush(stdout);
		/* Next pair's turn; the last pair lets everybody finish. */
		if (p + 1 < npairs) {
			for (int r = 2 * (p + 1); r < 2 * (p + 2); r++)
				MPI_Send(&p, 1, MPI_INT, r, TAG_TURN, MPI_COMM_WORLD);
		} else {
			for (int r = 0; r < world_size; r++)
				if (r / 2 != p)
					MPI_Send(&p, 1, MPI_INT, r, TAG_TURN, MPI_COMM_WORLD);
		}
	}
	if (p + 1 < npairs)
		wait_turn(2 * (npairs - 1));
	free(static_buf);
	MPI_Comm_free(&pair);
	MPI_Finalize();
	return 0;
}
