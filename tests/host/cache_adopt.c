// SPDX-License-Identifier: GPL-2.0-only
/*
 * What a communication library needs from the cache beyond get and put
 * (issue 16 section 2), each case named after the feature and the anchor
 * it matches in UCX's ucs_rcache or libfabric's ofi_mr_cache: a per-call
 * argument to the registration, per-entry storage, an invalidation
 * callback before deregistration, hold(), progress without a get, and
 * uncached pass-through.  MANUAL monitor (mapwatch_invalidate() plays the
 * kernel), except pass-through, which needs memory userfaultfd cannot
 * watch.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/mman.h>

#include "host/libtest.h"

#define BASE ((char *)0x100000000000UL)

#define ASSERT_STREQ(a, b)						\
	do {								\
		if (strcmp((a), (b)))					\
			tap_diag("%s = \"%s\", want \"%s\"", #a, (a), (b)); \
		TAP_CHECK(!strcmp((a), (b)), #a " == " #b, 1);		\
	} while (0)

/* A log of callbacks, in order: 'r'eg, 'i'nvalidate, 'd'ereg. */
struct rec {
	struct fake f;
	char log[64];
	_Atomic int n;
	void *last_arg, *last_data;
	struct mapwatch_cache_entry *invalidated;
	size_t entry_size;
	bool data_was_zero;
	size_t max_len;			/* reg refuses longer (EFAULT) */
};

static void note(struct rec *r, char c)
{
	int i = atomic_fetch_add(&r->n, 1);

	if (i < (int)sizeof(r->log) - 1)
		r->log[i] = c;
}

static void *rec_reg_ex(void *ctx, void *addr, size_t len, int flags,
			void *arg, void *data)
{
	struct rec *r = ctx;

	if (r->max_len && len > r->max_len) {
		note(r, 'x');
		errno = EFAULT;
		return NULL;
	}
	r->last_arg = arg;
	r->last_data = data;
	r->data_was_zero = true;
	for (size_t i = 0; data && i < r->entry_size; i++)
		r->data_was_zero &= !((unsigned char *)data)[i];
	if (data)
		memset(data, 0x5a, r->entry_size);	/* "keys" */
	note(r, 'r');
	return fake_reg(&r->f, addr, len, flags);
}

static void rec_dereg(void *ctx, void *reg)
{
	struct rec *r = ctx;

	note(r, 'd');
	fake_dereg(&r->f, reg);
}

static void rec_invalidate(void *ctx, struct mapwatch_cache_entry *e)
{
	struct rec *r = ctx;

	note(r, 'i');
	r->invalidated = e;
	/* Still registered when told. */
	ASSERT_FALSE(atomic_load(&reg_of(e)->dead));
}

static struct mapwatch_cache *rec_cache(struct mapwatch *mw, struct rec *r,
					size_t entry_size, uint64_t flags,
					size_t max_entries)
{
	struct mapwatch_cache_ops ops = {
		.reg_ex = rec_reg_ex, .dereg = rec_dereg,
		.invalidate = rec_invalidate, .ctx = r,
	};
	struct mapwatch_cache_config cfg = {
		.entry_size = entry_size, .flags = flags,
		.max_entries = max_entries,
	};
	struct mapwatch_cache *c;

	memset(r, 0, sizeof(*r));
	r->entry_size = entry_size;
	c = mapwatch_cache_create(mw, &ops, &cfg);
	ASSERT_TRUE(c != NULL);
	return c;
}

static struct mapwatch_cache_stats stats(struct mapwatch_cache *c)
{
	struct mapwatch_cache_stats s;

	ASSERT_EQ(mapwatch_cache_get_stats(c, &s), 0);
	return s;
}

/* UCX ucs_rcache_get(..., arg, ...) -> mem_reg(..., arg, ...). */
TEST(get_arg_reaches_reg_ex)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	int pd1, pd2;
	struct mapwatch_cache_entry *e;

	e = mapwatch_cache_get_arg(c, BASE, PAGE, 0, &pd1);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(r.last_arg == &pd1);
	ASSERT_TRUE(r.last_data == NULL);	/* no entry_size */
	ASSERT_TRUE(mapwatch_cache_entry_data(e) == NULL);
	mapwatch_cache_put(c, e);
	/* A hit does not register: the arg is not used. */
	e = mapwatch_cache_get_arg(c, BASE, PAGE, 0, &pd2);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(r.last_arg == &pd1);
	mapwatch_cache_put(c, e);
	/* mapwatch_cache_get() passes NULL. */
	e = mapwatch_cache_get(c, BASE + PAGE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(r.last_arg == NULL);
	mapwatch_cache_put(c, e);
	EXPECT_EQ(atomic_load(&r.f.nreg), 2);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* UCX region_struct_size, libfabric entry_data_size. */
TEST(entry_storage_given_to_reg_ex)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 100, 0, 0);
	struct mapwatch_cache_entry *e, *e2;
	unsigned char *d;

	e = mapwatch_cache_get(c, BASE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	d = mapwatch_cache_entry_data(e);
	ASSERT_TRUE(d != NULL);
	ASSERT_TRUE(d == r.last_data);
	ASSERT_TRUE(r.data_was_zero);
	EXPECT_EQ((uintptr_t)d % 16, 0);	/* any type fits */
	for (int i = 0; i < 100; i++)
		ASSERT_EQ(d[i], 0x5a);
	/* Another entry has its own storage. */
	e2 = mapwatch_cache_get(c, BASE + PAGE, PAGE, 0);
	ASSERT_TRUE(e2 != NULL);
	ASSERT_TRUE(mapwatch_cache_entry_data(e2) != d);
	mapwatch_cache_put(c, e2);
	/* Changed and gone: a recycled entry's storage is zeroed for reg. */
	mapwatch_cache_put(c, e);
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, 2 * PAGE), 0);
	ASSERT_EQ(mapwatch_cache_progress(c), 2);
	ASSERT_EQ(atomic_load(&r.f.ndereg), 2);
	e = mapwatch_cache_get(c, BASE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(r.data_was_zero);
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

TEST(bad_flags_and_entry_size_refused)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct mapwatch_cache_ops ops = { .reg = fake_reg, .dereg = fake_dereg };
	struct mapwatch_cache_config big = {
		.entry_size = MAPWATCH_CACHE_ENTRY_SIZE_MAX + 1,
	};
	struct mapwatch_cache_config flag = { .flags = 1ULL << 63 };
	struct mapwatch_cache_ops noreg = { .dereg = fake_dereg };

	ASSERT_BAD_INPUT("mapwatch_cache_create", "entry_size over the maximum",
			 nul(mapwatch_cache_create(mw, &ops, &big)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_create", "unknown config flag",
			 nul(mapwatch_cache_create(mw, &ops, &flag)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_create", "neither reg nor reg_ex",
			 nul(mapwatch_cache_create(mw, &noreg, NULL)), EINVAL);
	mapwatch_close(mw);
}

/* libfabric's delete_region after the monitor's notify; a changed entry
 * is announced once, before its dereg, also while it is held. */
TEST(invalidate_before_dereg)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	struct mapwatch_cache_entry *idle, *held;

	idle = mapwatch_cache_get(c, BASE, PAGE, 0);
	held = mapwatch_cache_get(c, BASE + 4 * PAGE, PAGE, 0);
	ASSERT_TRUE(idle && held);
	mapwatch_cache_put(c, idle);
	ASSERT_STREQ(r.log, "rr");
	/* Idle: invalidate, then dereg, in the same progress. */
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, PAGE), 0);
	ASSERT_EQ(mapwatch_cache_progress(c), 1);
	ASSERT_STREQ(r.log, "rrid");
	ASSERT_TRUE(r.invalidated == idle);
	/* Held: invalidate now, dereg at the put. */
	ASSERT_EQ(mapwatch_invalidate(mw, BASE + 4 * PAGE, PAGE), 0);
	ASSERT_EQ(mapwatch_cache_progress(c), 1);
	ASSERT_STREQ(r.log, "rridi");
	ASSERT_TRUE(r.invalidated == held);
	ASSERT_TRUE(mapwatch_cache_entry_changed(held));
	mapwatch_cache_put(c, held);
	ASSERT_STREQ(r.log, "rridid");
	EXPECT_EQ(stats(c).invalidations, 2);
	/* Flush and destroy are not invalidations. */
	mapwatch_cache_put(c, mapwatch_cache_get(c, BASE, PAGE, 0));
	mapwatch_cache_flush(c);
	ASSERT_STREQ(r.log, "rrididrd");
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* The other two ways the cache learns of a change: a lookup, a put. */
TEST(invalidate_from_lookup_and_put)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	struct mapwatch_cache_entry *e, *held;
	struct mapwatch_event ev[4];

	mapwatch_cache_put(c, mapwatch_cache_get(c, BASE, PAGE, 0));
	held = mapwatch_cache_get(c, BASE + PAGE, PAGE, 0);
	ASSERT_TRUE(held != NULL);
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, 2 * PAGE), 0);
	/* Take the events away, so only the one-load checks see it. */
	ASSERT_EQ(mapwatch_read_events(mw, ev, 4), 2);
	e = mapwatch_cache_get(c, BASE, PAGE, 0);	/* sees it changed */
	ASSERT_TRUE(e != NULL);
	ASSERT_STREQ(r.log, "rridr");
	mapwatch_cache_put(c, held);			/* sees it changed */
	ASSERT_STREQ(r.log, "rridrid");
	mapwatch_cache_put(c, e);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* UCX ucs_rcache_region_hold(). */
TEST(hold_takes_another_reference)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	struct mapwatch_cache_entry *e = mapwatch_cache_get(c, BASE, PAGE, 0);

	ASSERT_TRUE(e != NULL);
	mapwatch_cache_hold(c, e);
	mapwatch_cache_hold(c, e);
	EXPECT_EQ(stats(c).hits, 0);		/* not a lookup */
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, PAGE), 0);
	ASSERT_EQ(mapwatch_cache_progress(c), 1);
	mapwatch_cache_put(c, e);
	mapwatch_cache_put(c, e);
	ASSERT_STREQ(r.log, "ri");		/* one reference left */
	ASSERT_EQ(atomic_load(&r.f.ndereg), 0);
	mapwatch_cache_put(c, e);
	ASSERT_STREQ(r.log, "rid");
	mapwatch_cache_hold(NULL, e);		/* ignored */
	mapwatch_cache_hold(c, NULL);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* libfabric's monitor thread / UCX's rcache cleanup while the application
 * makes no get: the cache's fd says when. */
TEST(progress_releases_idle_memory_without_get)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	struct pollfd p = { .fd = mapwatch_cache_fd(c), .events = POLLIN };

	ASSERT_GE(p.fd, 0);
	ASSERT_EQ(p.fd, mapwatch_fd(mw));
	for (int i = 0; i < 3; i++)
		mapwatch_cache_put(c, mapwatch_cache_get(c, BASE + i * PAGE, PAGE, 0));
	ASSERT_EQ(poll(&p, 1, 0), 0);
	ASSERT_EQ(mapwatch_cache_progress(c), 0);	/* nothing pending */
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, 2 * PAGE), 0);
	ASSERT_EQ(poll(&p, 1, 1000), 1);
	ASSERT_EQ(atomic_load(&r.f.ndereg), 0);		/* nobody called get */
	ASSERT_EQ(mapwatch_cache_progress(c), 2);
	ASSERT_EQ(atomic_load(&r.f.ndereg), 2);
	ASSERT_EQ(stats(c).entries, 1);
	ASSERT_EQ(poll(&p, 1, 0), 0);
	ASSERT_BAD_INPUT("mapwatch_cache_progress", "NULL cache",
			 neg(mapwatch_cache_progress(NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_fd", "NULL cache",
			 neg(mapwatch_cache_fd(NULL)), EINVAL);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

TEST(progress_in_child_after_fork)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	pid_t pid;
	int st;

	mapwatch_cache_put(c, mapwatch_cache_get(c, BASE, PAGE, 0));
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, PAGE), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(mapwatch_cache_progress(c) == -EIO &&
		      atomic_load(&r.f.ndereg) == 0 ? 0 : 1);
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ASSERT_EQ(mapwatch_cache_progress(c), 1);	/* the parent's */
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* libfabric's uncached_cnt: every entry held, max_entries reached. */
TEST(uncached_when_every_entry_is_held)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 1);
	struct mapwatch_cache_entry *a = mapwatch_cache_get(c, BASE, PAGE, 0);
	struct mapwatch_cache_entry *b = mapwatch_cache_get(c, BASE + PAGE, PAGE, 0);
	struct mapwatch_cache_stats s;

	ASSERT_TRUE(a && b);
	s = stats(c);
	EXPECT_EQ(s.entries, 1);
	EXPECT_EQ(s.uncached, 1);
	EXPECT_EQ(s.passthrough, 0);
	mapwatch_cache_put(c, b);
	ASSERT_EQ(atomic_load(&r.f.ndereg), 1);		/* gone at its put */
	mapwatch_cache_put(c, a);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* libfabric registers memory its monitor cannot cover uncached
 * (ofi_mr_cache_search -> uncached); UCX memory types without a rcache. */
TEST(passthrough_for_memory_the_monitor_cannot_watch)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_USERFAULTFD, 16);
	struct mapwatch_cache_ops ops = { .reg = fake_reg, .dereg = fake_dereg };
	struct mapwatch_cache_config pass = { .flags = MAPWATCH_CACHE_F_PASSTHROUGH };
	struct mapwatch_cache *strict, *c;
	struct mapwatch_cache_entry *e, *e2;
	struct mapwatch_cache_stats s;
	struct fake f;
	char path[] = "/var/tmp/mapwatch-passthrough.XXXXXX";
	int fd = mkstemp(path);
	char *file;

	ASSERT_GE(fd, 0);
	unlink(path);
	ASSERT_OK(ftruncate(fd, 2 * PAGE));
	file = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_TRUE(file != MAP_FAILED);
	fake_init(&f);
	ops.ctx = &f;
	strict = mapwatch_cache_create(mw, &ops, NULL);
	ASSERT_TRUE(strict != NULL);
	e = mapwatch_cache_get(strict, file, PAGE, 0);
	if (e || errno != EINVAL) {
		mapwatch_cache_put(strict, e);
		SKIP("userfaultfd watches this file mapping here (errno %d)", errno);
	}
	mapwatch_cache_destroy(strict);

	c = mapwatch_cache_create(mw, &ops, &pass);
	ASSERT_TRUE(c != NULL);
	e = mapwatch_cache_get(c, file, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(reg_of(e)->addr, (uintptr_t)file);
	ASSERT_FALSE(mapwatch_cache_entry_changed(e));
	e2 = mapwatch_cache_get(c, file, PAGE, 0);	/* not cached: again */
	ASSERT_TRUE(e2 != NULL && e2 != e);
	s = stats(c);
	EXPECT_EQ(s.uncached, 2);
	EXPECT_EQ(s.passthrough, 2);
	EXPECT_EQ(s.entries, 0);
	EXPECT_EQ(s.registrations, 2);
	mapwatch_cache_put(c, e);
	mapwatch_cache_put(c, e2);
	EXPECT_EQ(atomic_load(&f.ndereg), 2);		/* at the last put */
	/* Watchable memory is still cached. */
	char *anon = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(anon != MAP_FAILED);
	mapwatch_cache_put(c, mapwatch_cache_get(c, anon, PAGE, 0));
	EXPECT_EQ(stats(c).entries, 1);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* --- 1.2: memory types, external invalidation, alignment ------------------ */

static struct mapwatch_cache_entry *get_req(struct mapwatch_cache *c, void *addr,
					    size_t len, uint32_t type,
					    uint64_t dev, size_t align,
					    uint64_t req_flags)
{
	struct mapwatch_cache_req q = {
		.addr = addr, .len = len, .mem_type = type, .device = dev,
		.align = align, .req_flags = req_flags,
	};

	return mapwatch_cache_get_req(c, &q);
}

/* libfabric's ofi_mr_info {iface, device}, UCX's memory types: the same
 * address on another device is another registration; device memory takes
 * no watch and leaves only by mapwatch_cache_invalidate() (the device
 * allocator's free hook, as libfabric's cuda/rocr/ze monitors). */
TEST(memory_type_and_device_in_the_key)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	struct mapwatch_cache_entry *host, *gpu0, *gpu1, *held;
	struct mapwatch_stats ms;

	host = get_req(c, BASE, PAGE, MAPWATCH_MEM_HOST, 0, 0, 0);
	gpu0 = get_req(c, BASE, PAGE, 7, 0, 0, 0);
	gpu1 = get_req(c, BASE, PAGE, 7, 1, 0, 0);
	ASSERT_TRUE(host && gpu0 && gpu1);
	ASSERT_TRUE(host != gpu0 && gpu0 != gpu1 && host != gpu1);
	EXPECT_EQ(atomic_load(&r.f.nreg), 3);
	ASSERT_EQ(mapwatch_get_stats(mw, &ms), 0);
	EXPECT_EQ(ms.watched, 1);		/* device memory: no watch */
	mapwatch_cache_put(c, host);
	mapwatch_cache_put(c, gpu0);
	mapwatch_cache_put(c, gpu1);
	/* Each key hits its own entry. */
	ASSERT_TRUE(get_req(c, BASE, PAGE, 7, 1, 0, 0) == gpu1);
	mapwatch_cache_put(c, gpu1);
	ASSERT_TRUE(mapwatch_cache_get(c, BASE, PAGE, 0) == host);
	mapwatch_cache_put(c, host);
	EXPECT_EQ(atomic_load(&r.f.nreg), 3);
	/* The monitor's change of host memory leaves device memory alone. */
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, PAGE), 0);
	ASSERT_EQ(mapwatch_cache_progress(c), 1);
	ASSERT_STREQ(r.log, "rrrid");
	ASSERT_TRUE(get_req(c, BASE, PAGE, 7, 0, 0, 0) == gpu0);	/* hit */
	held = gpu0;
	/* The device's free hook: device 0 of type 7 only. */
	ASSERT_EQ(mapwatch_cache_invalidate(c, 7, 0, BASE, PAGE), 0);
	ASSERT_TRUE(mapwatch_cache_entry_changed(held));
	ASSERT_FALSE(mapwatch_cache_entry_changed(gpu1));
	ASSERT_STREQ(r.log, "rrridi");			/* dereg at the put */
	mapwatch_cache_put(c, held);
	ASSERT_STREQ(r.log, "rrridid");
	ASSERT_TRUE(get_req(c, BASE, PAGE, 7, 1, 0, 0) == gpu1);	/* still */
	mapwatch_cache_put(c, gpu1);
	EXPECT_EQ(stats(c).invalidations, 2);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* Host memory through the cache's call: the monitor's invalidation. */
TEST(cache_invalidate_host_memory)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	struct mapwatch_cache_entry *e;
	struct mapwatch_handle h;

	ASSERT_EQ(mapwatch_watch(mw, BASE + PAGE, PAGE, 1, &h), 0);	/* the application's */
	mapwatch_cache_put(c, mapwatch_cache_get(c, BASE, 2 * PAGE, 0));
	e = mapwatch_cache_get(c, BASE + 8 * PAGE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(mapwatch_cache_invalidate(c, MAPWATCH_MEM_HOST, 0, BASE, 2 * PAGE), 0);
	ASSERT_STREQ(r.log, "rrid");		/* out at once, no get */
	ASSERT_TRUE(mapwatch_changed(&h));	/* a watch of the monitor */
	ASSERT_FALSE(mapwatch_cache_entry_changed(e));
	mapwatch_cache_put(c, e);
	ASSERT_EQ(mapwatch_cache_invalidate(c, MAPWATCH_MEM_HOST, 0, BASE, 0), 0);
	ASSERT_BAD_INPUT("mapwatch_cache_invalidate", "NULL cache",
			 neg(mapwatch_cache_invalidate(NULL, 0, 0, BASE, PAGE)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_invalidate", "range wraps",
			 neg(mapwatch_cache_invalidate(c, 7, 0, (void *)-PAGE, 2 * PAGE)),
			 EINVAL);
	mapwatch_unwatch(mw, &h);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* Three 64 KiB chunks [A, A+192K) mapped, nothing on either side. */
static char *chunks(void)
{
	char *a = mmap(NULL, 8 << 16, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	char *m;

	ASSERT_TRUE(a != MAP_FAILED);
	m = (char *)(((uintptr_t)a + (4 << 16) - 1) & ~(uintptr_t)((4 << 16) - 1));
	ASSERT_OK(munmap(a, 8 << 16));
	/* m is 256 KiB aligned: [m, m+64K) stays a hole. */
	ASSERT_TRUE(mmap(m + (1 << 16), 3 << 16, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) ==
		    m + (1 << 16));
	return m;
}

/* UCX ucs_rcache_get(..., alignment, ...); unlike a blind align-up, the
 * widening stops at a hole (a registration over unmapped pages fails). */
TEST(per_request_alignment_stops_at_holes)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	char *m = chunks();
	struct mapwatch_cache_entry *e;
	struct mapwatch_cache_req q = { .addr = m + 70000, .len = 1 };

	/* Inside: whole 64 KiB unit. */
	e = get_req(c, m + (2 << 16) + 100, 100, 0, 0, 1 << 16, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(mapwatch_cache_entry_addr(e) == m + (2 << 16));
	ASSERT_EQ(mapwatch_cache_entry_len(e), 1 << 16);
	mapwatch_cache_put(c, e);
	/* 128 KiB asked at the first chunk: the head would reach the hole
	 * below, so it stops at 64 KiB; the tail is mapped. */
	e = get_req(c, m + (1 << 16) + 100, 100, 0, 0, 2 << 16, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(mapwatch_cache_entry_addr(e) == m + (1 << 16));
	ASSERT_EQ(mapwatch_cache_entry_len(e), 1 << 16);
	mapwatch_cache_put(c, e);
	/* The last page, 128 KiB asked: the tail would reach the hole above. */
	e = get_req(c, m + (4 << 16) - 10, 10, 0, 0, 2 << 16, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(mapwatch_cache_entry_addr(e) == m + (2 << 16));
	ASSERT_EQ(mapwatch_cache_entry_len(e), 2 << 16);
	mapwatch_cache_put(c, e);
	/* A hit needs only the request's pages covered. */
	ASSERT_TRUE(get_req(c, m + (3 << 16) + 5, 5, 0, 0, 0, 0) == e);
	mapwatch_cache_put(c, e);
	/* reg refusing the widened range: the request alone. */
	mapwatch_cache_flush(c);
	r.max_len = PAGE;
	e = get_req(c, m + (1 << 16) + 5 * PAGE, 10, 0, 0, 1 << 16, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(mapwatch_cache_entry_addr(e) == m + (1 << 16) + 5 * PAGE);
	ASSERT_EQ(mapwatch_cache_entry_len(e), PAGE);
	ASSERT_TRUE(strchr(r.log, 'x') != NULL);
	mapwatch_cache_put(c, e);
	/* Bad requests change nothing. */
	q.align = 3 * PAGE;
	ASSERT_BAD_INPUT("mapwatch_cache_get_req", "align not a power of two",
			 nul(mapwatch_cache_get_req(c, &q)), EINVAL);
	q.align = 0;
	q.req_flags = 1ULL << 40;
	ASSERT_BAD_INPUT("mapwatch_cache_get_req", "unknown req_flags",
			 nul(mapwatch_cache_get_req(c, &q)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_get_req", "NULL request",
			 nul(mapwatch_cache_get_req(c, NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_get_req", "size below the 1.2 struct",
			 nul(mapwatch_cache_get_req_sized(c, &q, 8)), EINVAL);
	q.req_flags = 0;
	ASSERT_BAD_INPUT("mapwatch_cache_get_req", "NULL cache",
			 nul(mapwatch_cache_get_req(NULL, &q)), EINVAL);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
	munmap(m, 4 << 16);
}

static size_t thp_size(void)
{
	unsigned long long x = 0;
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r");

	if (f) {
		if (fscanf(f, "%llu", &x) != 1)
			x = 0;
		fclose(f);
	}
	return x ? x : 2 << 20;
}

/* A registration per huge page, not per small piece of it; never over the
 * end of the mapping. */
TEST(huge_page_widening_over_mapped_pages_only)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	size_t hs = thp_size();
	char *a = mmap(NULL, 4 * hs, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *h;
	struct mapwatch_cache_entry *e;

	ASSERT_TRUE(a != MAP_FAILED);
	h = (char *)(((uintptr_t)a + hs - 1) & ~(uintptr_t)(hs - 1));
	/* [h, h + 1.5 huge pages) mapped, the rest of the reservation not. */
	ASSERT_OK(munmap(h + hs + hs / 2, a + 4 * hs - (h + hs + hs / 2)));
	if (h > a)
		ASSERT_OK(munmap(a, h - a));
	e = get_req(c, h + 3 * PAGE, 100, 0, 0, 0, MAPWATCH_CACHE_REQ_HUGE);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(mapwatch_cache_entry_addr(e) == h);
	ASSERT_EQ(mapwatch_cache_entry_len(e), hs);
	mapwatch_cache_put(c, e);
	/* Another piece of the same huge page: a hit. */
	ASSERT_TRUE(mapwatch_cache_get(c, h + hs - PAGE, PAGE, 0) == e);
	mapwatch_cache_put(c, e);
	/* The second half-mapped huge page: halves down to what is mapped. */
	e = get_req(c, h + hs + PAGE, 100, 0, 0, 0, MAPWATCH_CACHE_REQ_HUGE);
	ASSERT_TRUE(e != NULL);
	ASSERT_TRUE(mapwatch_cache_entry_addr(e) == h + hs);
	ASSERT_EQ(mapwatch_cache_entry_len(e), hs / 2);
	mapwatch_cache_put(c, e);
	EXPECT_EQ(atomic_load(&r.f.nreg), 2);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
	munmap(h, hs + hs / 2);
}

/*
 * libfabric's ofi_mr_cache_find(): a lookup that never registers.  A held,
 * valid entry covering the range with at least the flags, or NULL and
 * ENOENT; a changed entry is never returned (and is taken out, as a get's
 * lookup would); what it returns is put like a get's.
 */
TEST(find_looks_up_without_registering)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	struct mapwatch_cache_entry *g, *e, *e2, *h;

	/* Miss: nothing cached, nothing registered. */
	errno = 0;
	EXPECT_TRUE(mapwatch_cache_find(c, BASE, PAGE, 0) == NULL);
	EXPECT_EQ(errno, ENOENT);
	ASSERT_STREQ(r.log, "");
	EXPECT_EQ(stats(c).registrations, 0);

	g = mapwatch_cache_get(c, BASE, 4 * PAGE, 0);
	ASSERT_TRUE(g != NULL);
	mapwatch_cache_put(c, g);
	/* Hits: at the entry's start, and inside it (covering). */
	e = mapwatch_cache_find(c, BASE, 4 * PAGE, 0);
	e2 = mapwatch_cache_find(c, BASE + PAGE, 10, 0);
	EXPECT_TRUE(e == g);
	EXPECT_TRUE(e2 == g);
	/* Not covered, or not registered with the flags: a miss. */
	errno = 0;
	EXPECT_TRUE(mapwatch_cache_find(c, BASE, 5 * PAGE, 0) == NULL);
	EXPECT_EQ(errno, ENOENT);
	errno = 0;
	EXPECT_TRUE(mapwatch_cache_find(c, BASE, PAGE, 1) == NULL);
	EXPECT_EQ(errno, ENOENT);
	ASSERT_STREQ(r.log, "r");			/* never registered */
	/* Its references are put like a get's; the entry stays cached. */
	mapwatch_cache_put(c, e);
	mapwatch_cache_put(c, e2);
	ASSERT_STREQ(r.log, "r");
	EXPECT_EQ(stats(c).entries, 1);
	e = mapwatch_cache_get(c, BASE, PAGE, 0);	/* still a hit */
	EXPECT_TRUE(e == g);
	mapwatch_cache_put(c, e);

	/* Changed (events not yet read): not returned, taken out. */
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, PAGE), 0);
	errno = 0;
	EXPECT_TRUE(mapwatch_cache_find(c, BASE, PAGE, 0) == NULL);
	EXPECT_EQ(errno, ENOENT);
	ASSERT_STREQ(r.log, "rid");
	EXPECT_EQ(stats(c).entries, 0);

	/* Changed while held: not returned; dereg at the holder's put. */
	h = mapwatch_cache_get(c, BASE + 8 * PAGE, PAGE, 0);
	ASSERT_TRUE(h != NULL);
	ASSERT_EQ(mapwatch_invalidate(mw, BASE + 8 * PAGE, PAGE), 0);
	EXPECT_TRUE(mapwatch_cache_find(c, BASE + 8 * PAGE, PAGE, 0) == NULL);
	ASSERT_STREQ(r.log, "ridri");
	mapwatch_cache_put(c, h);
	ASSERT_STREQ(r.log, "ridrid");

	/* Bad input. */
	errno = 0;
	EXPECT_TRUE(mapwatch_cache_find(NULL, BASE, PAGE, 0) == NULL);
	EXPECT_EQ(errno, EINVAL);
	errno = 0;
	EXPECT_TRUE(mapwatch_cache_find(c, BASE, 0, 0) == NULL);
	EXPECT_EQ(errno, EINVAL);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/*
 * UCX's ucs_rcache_region_invalidate(rcache, region, cb, arg): one entry
 * marked changed now (no later get or find returns it), its completion
 * once the last reference is put and the registration is gone, once.
 */
struct done_rec {
	struct rec *r;
	_Atomic int n;
	long ndereg_then;
};

static void done_cb(void *arg)
{
	struct done_rec *d = arg;

	atomic_fetch_add(&d->n, 1);
	d->ndereg_then = atomic_load(&d->r->f.ndereg);
	note(d->r, 'D');
}

TEST(invalidate_entry_completes_after_the_last_put)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	struct mapwatch_cache_entry *e, *g;
	struct done_rec d = { .r = &r };

	e = mapwatch_cache_get(c, BASE, 2 * PAGE, 0);
	ASSERT_TRUE(e != NULL);
	mapwatch_cache_hold(c, e);			/* two holders */
	ASSERT_EQ(mapwatch_cache_invalidate_entry(c, e, done_cb, &d), 0);
	ASSERT_STREQ(r.log, "ri");			/* told, not deregistered */
	EXPECT_EQ(atomic_load(&d.n), 0);
	EXPECT_TRUE(mapwatch_cache_entry_changed(e));
	/* One completion per entry at a time. */
	EXPECT_EQ(mapwatch_cache_invalidate_entry(c, e, done_cb, &d), -EBUSY);
	/* No later lookup returns it: get misses, find finds nothing. */
	errno = 0;
	EXPECT_TRUE(mapwatch_cache_find(c, BASE, PAGE, 0) == NULL);
	EXPECT_EQ(errno, ENOENT);
	g = mapwatch_cache_get(c, BASE, 2 * PAGE, 0);
	ASSERT_TRUE(g != NULL);
	EXPECT_TRUE(g != e);
	EXPECT_TRUE(mapwatch_cache_entry_reg(g) != mapwatch_cache_entry_reg(e));
	ASSERT_STREQ(r.log, "rir");
	mapwatch_cache_put(c, g);
	/* done only after the last put, after dereg, once. */
	mapwatch_cache_put(c, e);
	EXPECT_EQ(atomic_load(&d.n), 0);
	ASSERT_STREQ(r.log, "rir");
	mapwatch_cache_put(c, e);
	EXPECT_EQ(atomic_load(&d.n), 1);
	EXPECT_EQ(d.ndereg_then, 1);
	ASSERT_STREQ(r.log, "rirdD");
	EXPECT_EQ(stats(c).invalidations, 1);
	/* The new entry is cached and unaffected. */
	e = mapwatch_cache_get(c, BASE, 2 * PAGE, 0);
	EXPECT_TRUE(e == g);
	/* The caller the only holder: done at its put. */
	ASSERT_EQ(mapwatch_cache_invalidate_entry(c, e, done_cb, &d), 0);
	EXPECT_EQ(atomic_load(&d.n), 1);
	mapwatch_cache_put(c, e);
	EXPECT_EQ(atomic_load(&d.n), 2);
	ASSERT_STREQ(r.log, "rirdDidD");
	/* No callback: just the invalidation. */
	e = mapwatch_cache_get(c, BASE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(mapwatch_cache_invalidate_entry(c, e, NULL, NULL), 0);
	mapwatch_cache_put(c, e);
	ASSERT_STREQ(r.log, "rirdDidDrid");
	EXPECT_EQ(atomic_load(&d.n), 2);
	EXPECT_EQ(mapwatch_cache_invalidate_entry(NULL, e, NULL, NULL), -EINVAL);
	EXPECT_EQ(mapwatch_cache_invalidate_entry(c, NULL, NULL, NULL), -EINVAL);
	mapwatch_cache_destroy(c);
	EXPECT_EQ(atomic_load(&d.n), 2);
	mapwatch_close(mw);
}

/* The completion of an entry changed already (its event read, taken out,
 * still held) runs at the last put too; one of device memory as well. */
TEST(invalidate_entry_of_a_changed_or_device_entry)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 16);
	struct rec r;
	struct mapwatch_cache *c = rec_cache(mw, &r, 0, 0, 0);
	struct mapwatch_cache_req req = {
		.addr = BASE + 16 * PAGE, .len = PAGE, .mem_type = 7, .device = 1,
	};
	struct mapwatch_cache_entry *e, *g;
	struct done_rec d = { .r = &r };

	e = mapwatch_cache_get(c, BASE, PAGE, 0);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(mapwatch_invalidate(mw, BASE, PAGE), 0);
	ASSERT_EQ(mapwatch_cache_progress(c), 1);
	ASSERT_STREQ(r.log, "ri");
	ASSERT_EQ(mapwatch_cache_invalidate_entry(c, e, done_cb, &d), 0);
	ASSERT_STREQ(r.log, "ri");			/* told once only */
	mapwatch_cache_put(c, e);
	ASSERT_STREQ(r.log, "ridD");
	EXPECT_EQ(atomic_load(&d.n), 1);

	e = mapwatch_cache_get_req(c, &req);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(mapwatch_cache_invalidate_entry(c, e, done_cb, &d), 0);
	g = mapwatch_cache_get_req(c, &req);
	ASSERT_TRUE(g != NULL);
	EXPECT_TRUE(g != e);
	mapwatch_cache_put(c, e);
	EXPECT_EQ(atomic_load(&d.n), 2);
	mapwatch_cache_put(c, g);
	ASSERT_STREQ(r.log, "ridDrirdD");
	mapwatch_cache_destroy(c);
	EXPECT_EQ(atomic_load(&d.n), 2);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
