// SPDX-License-Identifier: GPL-2.0-only
/*
 * Preloaded after libmapwatch-ucx (LD_PRELOAD="libmapwatch-ucx.so.1
 * remap_stub.so"), so the shim's "real" ibv_reg_mr* is this one: it calls
 * libibverbs' and then, when the registered range holds the page at
 * REMAP_STUB_ADDR (set by tests/ucx/ucx_shim.c reg-window), unmaps that
 * page and maps a fresh one in its place, and sets REMAP_STUB_DONE=1.  A
 * change in the window between the NIC's pinning and the shim's watch
 * (review 2026-12-07, F2).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#undef ibv_reg_mr
#undef ibv_reg_mr_iova

static __thread int depth;

static void *next(const char *fn, const char *ver)
{
	void *p = dlvsym(RTLD_NEXT, fn, ver);

	if (!p)
		p = dlsym(RTLD_NEXT, fn);
	if (!p) {	/* libuct_ib loaded libibverbs RTLD_LOCAL */
		void *h = dlopen("libibverbs.so.1", RTLD_LAZY | RTLD_NOLOAD);

		p = h ? dlvsym(h, fn, ver) : NULL;
	}
	if (!p) {
		fprintf(stderr, "remap_stub: no %s after this library\n", fn);
		abort();
	}
	return p;
}

static struct ibv_mr *after(struct ibv_mr *mr, void *addr, size_t len)
{
	const char *s = getenv("REMAP_STUB_ADDR");
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t t;
	void *p;

	if (!mr || depth || !s)
		return mr;
	t = strtoul(s, NULL, 0);
	if (t < (uintptr_t)addr || t + page > (uintptr_t)addr + len)
		return mr;
	fprintf(stderr, "remap_stub: registered %p+%#zx, remapping the page at %#lx\n",
		addr, len, (unsigned long)t);
	if (munmap((void *)t, page) ||
	    (p = mmap((void *)t, page, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)) != (void *)t) {
		perror("remap_stub: munmap/mmap");
		abort();
	}
	memset(p, 0xa5, page);
	setenv("REMAP_STUB_DONE", "1", 1);
	return mr;
}

struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t len, int access)
{
	struct ibv_mr *(*f)(struct ibv_pd *, void *, size_t, int) =
		next("ibv_reg_mr", "IBVERBS_1.1");
	struct ibv_mr *mr;

	depth++;
	mr = f(pd, addr, len, access);
	depth--;
	return after(mr, addr, len);
}

struct ibv_mr *ibv_reg_mr_iova(struct ibv_pd *pd, void *addr, size_t len,
			       uint64_t iova, int access)
{
	struct ibv_mr *(*f)(struct ibv_pd *, void *, size_t, uint64_t, int) =
		next("ibv_reg_mr_iova", "IBVERBS_1.7");
	struct ibv_mr *mr;

	depth++;
	mr = f(pd, addr, len, iova, access);
	depth--;
	return after(mr, addr, len);
}

struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t len,
				uint64_t iova, unsigned int access)
{
	struct ibv_mr *(*f)(struct ibv_pd *, void *, size_t, uint64_t, unsigned int) =
		next("ibv_reg_mr_iova2", "IBVERBS_1.8");
	struct ibv_mr *mr;

	depth++;
	mr = f(pd, addr, len, iova, access);
	depth--;
	return after(mr, addr, len);
}
