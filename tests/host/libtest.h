/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the library's tests (host and guest): negative-errno
 * returns made fit for ASSERT_ERRNO, a fake registration backend that
 * counts, and a seccomp filter that makes one system call fail.
 */
#ifndef MAPWATCH_TEST_LIBTEST_H
#define MAPWATCH_TEST_LIBTEST_H

#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>

#include "mapwatch.h"
#include "tap.h"

#define PAGE 4096UL

/* Valgrind implements neither userfaultfd nor seccomp filters. */
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() RUNNING_ON_VALGRIND
#else
#define UNDER_VALGRIND() 0
#endif

/* A library call returning 0/count or -errno, as -1 with errno. */
static inline long neg(long r)
{
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

/* A NULL-or-pointer result as -1 with errno (errno kept). */
static inline long nul(const void *p)
{
	return p ? 0 : -1;
}

static inline struct mapwatch *open_backend(enum mapwatch_backend b,
					    size_t max)
{
	struct mapwatch *mw;
	const char *why = NULL;
	int r = mapwatch_open(&mw, b, max, &why);

	if (r == -EPERM || r == -ENOSYS || (r && b == MAPWATCH_BACKEND_KERNEL))
		SKIP("%s backend unavailable: %s", mapwatch_backend_name(b),
		     why ? why : strerror(-r));
	if (r)
		tap_diag("mapwatch_open(%s): %d %s", mapwatch_backend_name(b),
			 r, why ? why : "");
	ASSERT_EQ(r, 0);
	return mw;
}

/* --- a fake registration backend ------------------------------------------ */

#define FREG_MAGIC 0x46524547u

struct freg {
	uint32_t magic;
	_Atomic bool dead;
	uintptr_t addr;
	size_t len;
	int flags;
	uint64_t tag;		/* what the test wants it to remember */
	struct freg *all_next;
};

struct fake {
	_Atomic long nreg, ndereg;
	_Atomic int fail_errno;		/* next reg fails with it (-1: no errno) */
	/* Optional hooks, called inside the callbacks. */
	void (*on_reg)(struct fake *f, struct freg *r);
	void (*on_dereg)(struct fake *f, struct freg *r);
	uint64_t (*tag)(struct fake *f, uintptr_t addr, size_t len);
	void *arg;
};

/* Every registration ever made, never freed (tests look at them after
 * dereg); global, so leak checkers see them as reachable. */
static pthread_mutex_t fake_all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct freg *fake_all;

static inline void *fake_reg(void *ctx, void *addr, size_t len, int flags)
{
	struct fake *f = ctx;
	struct freg *r;
	int fail = atomic_exchange(&f->fail_errno, 0);

	if (fail) {
		errno = fail > 0 ? fail : 0;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->magic = FREG_MAGIC;
	r->addr = (uintptr_t)addr;
	r->len = len;
	r->flags = flags;
	if (f->tag)
		r->tag = f->tag(f, r->addr, len);
	pthread_mutex_lock(&fake_all_lock);
	r->all_next = fake_all;
	fake_all = r;
	pthread_mutex_unlock(&fake_all_lock);
	atomic_fetch_add(&f->nreg, 1);
	if (f->on_reg)
		f->on_reg(f, r);
	return r;
}

static inline void fake_dereg(void *ctx, void *reg)
{
	struct fake *f = ctx;
	struct freg *r = reg;

	if (r->magic != FREG_MAGIC || atomic_exchange(&r->dead, true)) {
		tap_diag("dereg of %p: %s", reg, r->magic != FREG_MAGIC ?
			 "not a registration" : "deregistered twice");
		abort();
	}
	atomic_fetch_add(&f->ndereg, 1);
	if (f->on_dereg)
		f->on_dereg(f, r);
}

static inline void fake_init(struct fake *f)
{
	memset(f, 0, sizeof(*f));
}

static inline struct mapwatch_cache *fake_cache(struct mapwatch *mw,
						struct fake *f,
						size_t max_entries,
						size_t max_bytes)
{
	struct mapwatch_cache_ops ops = {
		.reg = fake_reg, .dereg = fake_dereg, .ctx = f,
	};
	struct mapwatch_cache_config cfg = {
		.max_entries = max_entries, .max_bytes = max_bytes,
	};
	struct mapwatch_cache *c = mapwatch_cache_create(mw, &ops, &cfg);

	ASSERT_TRUE(c != NULL);
	return c;
}

static inline struct freg *reg_of(const struct mapwatch_cache_entry *e)
{
	struct freg *r = mapwatch_cache_entry_reg(e);

	ASSERT_TRUE(r != NULL);
	ASSERT_EQ(r->magic, FREG_MAGIC);
	return r;
}

/* --- seccomp: make one system call (or one ioctl request) fail ------------ */

/* Every later nr fails with err; with req != 0, only ioctl(_, req, _). */
static inline void deny_syscall(long nr, unsigned long req, int err)
{
	struct sock_filter any[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_filter one_req[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)req, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = req ?
		(struct sock_fprog){ sizeof(one_req) / sizeof(one_req[0]), one_req } :
		(struct sock_fprog){ sizeof(any) / sizeof(any[0]), any };

	ASSERT_OK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	ASSERT_OK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog));
}

/* mapwatch_fd() polls readable within ms. */
static inline bool readable(struct mapwatch *mw, int ms)
{
	struct pollfd p = { .fd = mapwatch_fd(mw), .events = POLLIN };

	ASSERT_GE(p.fd, 0);
	ASSERT_GE(poll(&p, 1, ms), 0);
	return p.revents & POLLIN;
}

/* A mapwatch_drain() callback keeping the first 16 events and a count. */
struct seen {
	int n;
	struct mapwatch_event ev[16];
};

static inline void collect(void *arg, const struct mapwatch_event *ev)
{
	struct seen *s = arg;

	if (s->n < 16)
		s->ev[s->n] = *ev;
	s->n++;
}

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wait up to secs for the watch to show a change (userfaultfd is late). */
static inline bool wait_changed(const struct mapwatch_handle *h, double secs)
{
	double end = now_s() + secs;

	while (!mapwatch_changed(h)) {
		if (now_s() > end)
			return false;
		usleep(100);
	}
	return true;
}

/* Guest tests: bring up Soft-RoCE with tools/rxe-up, found three levels
 * above build/tests/guest/PROG; NEED() when there is none. */
static inline void tap_rxe_up(void)
{
	char exe[PATH_MAX], cmd[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (getuid() != 0)
		NEED("rxe", "needs root to bring up Soft-RoCE");
	ASSERT_GT(n, 0);
	exe[n] = 0;
	for (int up = 0; up < 4; up++) {
		char *slash = strrchr(exe, '/');

		if (slash)
			*slash = 0;
	}
	snprintf(cmd, sizeof(cmd), "%s/tools/rxe-up >/dev/null", exe);
	if (system(cmd))
		NEED("rxe", "tools/rxe-up failed: no Soft-RoCE here");
}

#endif /* MAPWATCH_TEST_LIBTEST_H */
