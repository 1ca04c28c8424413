// SPDX-License-Identifier: MIT
/*
 * cache.c: a registration cache that never hands out a stale registration.
 *
 * libmapwatch's cache calls your reg/dereg callbacks (ibv_reg_mr and
 * ibv_dereg_mr in a real program; here they only count and print) and checks
 * every hit with one memory load.  When the application unmaps a buffer and
 * gets new memory at the same address, the old registration is not reused.
 *
 *   cc -o cache cache.c $(pkg-config --cflags --libs mapwatch)
 *   ./cache
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mapwatch.h>

struct fake_mr {
	void *addr;
	size_t len;
};

static void *reg(void *ctx, void *addr, size_t len, int flags)
{
	struct fake_mr *mr = malloc(sizeof(*mr));

	(void)flags;
	if (!mr)
		return NULL;
	mr->addr = addr;
	mr->len = len;
	++*(int *)ctx;
	printf("  register   %p+%zu\n", addr, len);
	return mr;
}

static void dereg(void *ctx, void *r)
{
	struct fake_mr *mr = r;

	(void)ctx;
	printf("  deregister %p+%zu\n", mr->addr, mr->len);
	free(mr);
}

/* Get a registration covering buf, "send" from it, give it back. */
static void send_buf(struct mapwatch_cache *c, void *buf, size_t len)
{
	struct mapwatch_cache_entry *e = mapwatch_cache_get(c, buf, len, 0);

	if (!e) {
		perror("cache: mapwatch_cache_get");
		exit(1);
	}
	/* ... post the RDMA operation with mapwatch_cache_entry_reg(e) ... */
	mapwatch_cache_put(c, e);
}

int main(void)
{
	size_t len = 16 * (size_t)sysconf(_SC_PAGESIZE);
	int registrations = 0;
	struct mapwatch_cache_ops ops = { .reg = reg, .dereg = dereg,
					  .ctx = &registrations };
	struct mapwatch_cache_config cfg = { .max_entries = 128 };
	struct mapwatch_cache_stats st;
	struct mapwatch_cache *c;
	struct mapwatch *mw;
	const char *why;
	char *buf;
	int ret;

	ret = mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO_ANY, 1024, &why);
	if (ret) {
		fprintf(stderr, "cache: cannot open a monitor: %s\n", why);
		return 1;
	}
	c = mapwatch_cache_create(mw, &ops, &cfg);
	if (!c) {
		perror("cache: mapwatch_cache_create");
		return 1;
	}
	printf("backend: %s\n", mapwatch_backend_name(mapwatch_backend(mw)));
	if (why)	/* settled for less than the module */
		printf("note: %s\n", why);

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("send twice from %p: one registration\n", (void *)buf);
	send_buf(c, buf, len);
	send_buf(c, buf, len);

	printf("free the buffer; new memory, perhaps at the same address\n");
	munmap(buf, len);
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("send from %p: registered again, never the stale one\n",
	       (void *)buf);
	send_buf(c, buf, len);

	mapwatch_cache_get_stats(c, &st);
	printf("hits %llu, misses %llu, registrations %d\n",
	       (unsigned long long)st.hits, (unsigned long long)st.misses,
	       registrations);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
	munmap(buf, len);
	return registrations == 2 ? 0 : 1;
}
