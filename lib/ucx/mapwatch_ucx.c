// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libmapwatch-ucx: UCX's registration caches kept correct by mapwatch, with
 * no binary patching.  Loaded as a preload (LD_PRELOAD) or linked into the
 * program ahead of UCX, it
 *
 *  - declares UCM_EVENT_VM_UNMAPPED external (ucm_set_external_event) when
 *    the program calls ucp_init_version(), before UCX creates a registration
 *    cache, so UCX does not install unmap hooks of its own for them;
 *    and only when every transport UCX_TLS allows registers through verbs
 *    (InfiniBand/RoCE transports and self): UCX's other caches (knem, the
 *    UCP cache of a shared-memory-only context) would hear of no unmap;
 *  - watches every range UCX registers with the NIC before the registration
 *    is made, by interposing the verbs registration calls libuct_ib makes
 *    (ibv_reg_mr, ibv_reg_mr_iova, ibv_reg_mr_iova2; ibv_dereg_mr unwatches).
 *    A range it cannot watch (the monitor full) is registered all the same
 *    and reported as unmapped at the next entry point, so UCX uses it once
 *    and drops it (uncached);
 *  - at every registration cache lookup, ucs_rcache_get() (UCP's cache and
 *    every memory domain's call it from their own libraries, so through
 *    our definition), and in ucp_worker_progress, checks whether mapwatch
 *    has pending events and, if so, hands each changed range to
 *    ucm_vm_munmap(), which queues it on every UCX registration cache.  No
 *    list of UCP entry points to keep up to date: a call UCX adds, or a
 *    binding that calls libucp through its own dlsym(), still looks its
 *    registrations up there.
 *
 * mapwatch marks a change before the munmap() (brk, madvise, mremap...)
 * that made it returns, so a lookup that starts after that return finds the
 * event pending, and UCX invalidates the stale region before the lookup.
 * lib/ucx/README.md says how to use it and what it does not cover.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <infiniband/verbs.h>
#include <ucm/api/ucm.h>
#include <ucp/api/ucp.h>
#include <ucs/memory/rcache.h>

#include "mapwatch.h"

/* verbs.h turns these into inline dispatchers: we define the functions. */
#undef ibv_reg_mr
#undef ibv_reg_mr_iova

#define EXPORT __attribute__((visibility("default")))

/* --- state ---------------------------------------------------------------- */

enum { ST_UNSET, ST_ACTIVE, ST_OFF };
static int state = ST_UNSET;		/* set once, under init_lock */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mapwatch *mw;		/* non-NULL once active */
static pthread_mutex_t drain_lock = PTHREAD_MUTEX_INITIALIZER;
static int draining;			/* readers between read and report */
static int verbose;

/* Counters printed at exit with MAPWATCH_UCX_STATS=1. */
static unsigned long n_watch, n_unwatch, n_uncached, n_events, n_refused;
static unsigned long n_by_reason[MAPWATCH_CHANGE_REASON_SLOTS];
static bool stats_at_exit;

/*
 * Ranges registered without a watch (the monitor full, or failing): each
 * is reported to ucm as unmapped at the next entry point, so UCX's cache
 * drops the region once its user puts it back.  A stack, pushed by the
 * registering thread, taken whole by drain().
 */
struct uncached {
	struct uncached *next;
	void *addr;
	size_t len;
};
static struct uncached *uncached_head;

/* After fork(): the parent's monitor (closed by the child's first
 * ucp_init) and whether the parent had declared unmaps external in the
 * libucm the child inherited. */
static struct mapwatch *parent_mw;
static bool inherited_external;

/* The watch of each registration, by its struct ibv_mr. */
struct node {
	struct node *next;
	const struct ibv_mr *mr;
	struct mapwatch_handle h;
};
#define NBUCKETS 4096
static struct node *buckets[NBUCKETS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_cookie = 1;
static __thread int in_reg;		/* nested registration calls */

#define MW_STR_(x) #x
#define MW_STR(x) MW_STR_(x)

static void say(const char *fmt, const char *arg)
{
	fprintf(stderr, "libmapwatch-ucx: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
}

/* --- the real functions ----------------------------------------------------- */

/*
 * The definition after ours in the search order; a library loaded with
 * RTLD_LOCAL (a component dlopen()ed by an MPI) is not in that order, so
 * ask it by name too.  NULL when there is none (a program that found our
 * definition by dlsym() to detect a feature its libucp lacks): the
 * wrapper then fails the call as unsupported.
 */
static void *real(const char *name, const char *version, const char *lib)
{
	void *p = version ? dlvsym(RTLD_NEXT, name, version) : NULL;

	if (!p)
		p = dlsym(RTLD_NEXT, name);
	if (!p) {
		void *h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);

		if (h)
			p = dlsym(h, name);
	}
	if (!p)
		say("no %s after this library: the call fails (unsupported)", name);
	return p;
}

/* The real function, or NULL (looked up again next time: the library
 * may be loaded later). */
#define REAL(fn, ver, lib) ({						\
	static __typeof__(fn) *real_fn;					\
	__typeof__(fn) *f = __atomic_load_n(&real_fn, __ATOMIC_ACQUIRE);	\
	if (!f) {							\
		f = (__typeof__(fn) *)real(#fn, ver, lib);		\
		__atomic_store_n(&real_fn, f, __ATOMIC_RELEASE);	\
	}								\
	f;								\
})
#define UCP(fn) REAL(fn, NULL, "libucp.so.0")
#define IBV(fn, ver) REAL(fn, ver, "libibverbs.so.1")

/* --- events -> ucm_vm_munmap ------------------------------------------------ */

static void report(const struct mapwatch_event_ex *ev)
{
	uint32_t r = ev->reason < MAPWATCH_CHANGE_REASON_SLOTS ? ev->reason : 0;

	__atomic_fetch_add(&n_events, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&n_by_reason[r], 1, __ATOMIC_RELAXED);
	ucm_vm_munmap((void *)ev->addr, ev->len);
}

/* Every pending event to ucm, counted by why it came (the stats line). */
static void drain_events(struct mapwatch *m)
{
	struct mapwatch_event_ex ev[64];
	int n;

	while ((n = mapwatch_read_events_ex(m, ev, 64, sizeof(ev[0]))) > 0)
		for (int i = 0; i < n; i++)
			report(&ev[i]);
}

static void drain(void)
{
	struct mapwatch *m = __atomic_load_n(&mw, __ATOMIC_ACQUIRE);
	struct uncached *u, *next;

	pthread_mutex_lock(&drain_lock);
	__atomic_fetch_add(&draining, 1, __ATOMIC_SEQ_CST);
	if (m)
		drain_events(m);
	u = __atomic_exchange_n(&uncached_head, NULL, __ATOMIC_ACQ_REL);
	for (; u; u = next) {
		next = u->next;
		ucm_vm_munmap(u->addr, u->len);
		free(u);
	}
	__atomic_fetch_sub(&draining, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&drain_lock);
}

/*
 * Before UCX may look up a registration.  Common case: mapwatch_pending()'s
 * one load of the status area, and one of `draining` (a thread that has
 * read events but not yet reported them: wait for it).
 */
static inline void sync_events(void)
{
	struct mapwatch *m = __atomic_load_n(&mw, __ATOMIC_ACQUIRE);

	if ((m && mapwatch_pending(m)) ||
	    __atomic_load_n(&uncached_head, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&draining, __ATOMIC_SEQ_CST))
		drain();
}

static bool interposed(void);

/* --- set-up ------------------------------------------------------------------ */

static unsigned long env_ulong(const char *name, unsigned long def)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (!s || !*s)
		return def;
	v = strtoul(s, &end, 0);
	if (*end || !v) {
		say("ignoring %s: not a positive number", name);
		return def;
	}
	return v;
}

/* The stats line ends with the events by reason: "(unmapped 3, user 1)",
 * "reason-N" for one this library has no name for. */
static void print_stats(void)
{
	char by[512] = "";
	size_t used = 0;

	for (unsigned int i = 0; i < MAPWATCH_CHANGE_REASON_SLOTS; i++) {
		const char *name = mapwatch_reason_name(i);
		char other[16];

		if (!n_by_reason[i])
			continue;
		if (!name) {
			snprintf(other, sizeof(other), "reason-%u", i);
			name = other;
		}
		used += (size_t)snprintf(by + used, used < sizeof(by) ? sizeof(by) - used : 0,
					 "%s%s %lu", used ? ", " : "", name,
					 n_by_reason[i]);
	}
	fprintf(stderr, "libmapwatch-ucx: %s, watched %lu, unwatched %lu, "
		"uncached %lu, refused %lu, events reported to ucm %lu (%s)\n",
		state == ST_ACTIVE ? "active" : "off", n_watch, n_unwatch,
		n_uncached, n_refused, n_events, used ? by : "none");
}

/*
 * The transports a UCP configuration allows, from ucp_config_print() (so
 * the environment, ucp_config_modify() and UCX's config files all count):
 * true when every one registers memory only through verbs (the InfiniBand
 * and RoCE transports, and self, which registers nothing).  Anything else
 * may be a memory domain whose cache subscribes to unmaps but whose
 * registrations we never see: knem's (an ioctl, not interposable), UCP's
 * own cache of a context without IB (review 2026-12-07, F3).  "all" and
 * "^..." allow shared memory.  *tls gets the value (malloc'ed) for the
 * message.
 */
static bool verbs_only(const ucp_config_t *config, char **tls)
{
	static const char *const ok[] = {
		"self", "ib", "rc", "rc_v", "rc_verbs", "rc_x", "rc_mlx5",
		"ud", "ud_v", "ud_verbs", "ud_x", "ud_mlx5", "dc", "dc_x", "dc_mlx5",
	};
	__typeof__(ucp_config_read) *cread = UCP(ucp_config_read);
	__typeof__(ucp_config_print) *cprint = UCP(ucp_config_print);
	__typeof__(ucp_config_release) *crelease = UCP(ucp_config_release);
	ucp_config_t *own = NULL;
	char *text = NULL, *line, *save = NULL, *val = NULL;
	size_t size = 0;
	bool r = false;
	FILE *f;

	*tls = NULL;
	if (!cread || !cprint || !crelease)
		return false;
	if (!config) {
		if (cread(NULL, NULL, &own) != UCS_OK)
			return false;
		config = own;
	}
	f = open_memstream(&text, &size);
	if (f) {
		cprint(config, f, NULL, UCS_CONFIG_PRINT_CONFIG);
		fclose(f);
	}
	if (own)
		crelease(own);
	for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		if (eq && eq - line >= 7 && !strncmp(eq - 7, "UCX_TLS", 7) &&
		    (eq - line == 7 || eq[-8] == '_')) {
			val = eq + 1;
			break;
		}
	}
	if (val) {
		char *tok, *s2 = NULL, *copy = strdup(val);

		*tls = strdup(val);
		r = copy && *val && *val != '^' && strcmp(val, "all");
		for (tok = r ? strtok_r(copy, ",", &s2) : NULL; tok && r;
		     tok = strtok_r(NULL, ",", &s2)) {
			char *colon = strchr(tok, ':');	/* ":aux" */
			size_t i;

			if (colon)
				*colon = 0;
			for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
				if (!strcmp(tok, ok[i]))
					break;
			r = i < sizeof(ok) / sizeof(ok[0]);
		}
		free(copy);
	}
	free(text);
	return r;
}

/* In a child after fork(): the parent's monitor refuses the child (EIO),
 * the parent's watches are not the child's.  Start again; the child's
 * first ucp_init opens its own monitor. */
static void atfork_child(void)
{
	pthread_mutex_init(&init_lock, NULL);
	pthread_mutex_init(&drain_lock, NULL);
	pthread_mutex_init(&table_lock, NULL);
	if (mw) {
		parent_mw = mw;
		inherited_external = true;
	}
	mw = NULL;
	state = ST_UNSET;
	draining = 0;
	for (unsigned int i = 0; i < NBUCKETS; i++)
		while (buckets[i]) {
			struct node *n = buckets[i];

			buckets[i] = n->next;
			free(n);
		}
	while (uncached_head) {
		struct uncached *u = uncached_head;

		uncached_head = u->next;
		free(u);
	}
}

__attribute__((constructor)) static void init(void)
{
	pthread_atfork(NULL, NULL, atfork_child);
}

/* Not active: a child of an active parent declares unmaps internal again
 * (its libucm copy still has them external, and nobody would report). */
static void stay_off(void)
{
	if (inherited_external) {
		ucm_unset_external_event(UCM_EVENT_VM_UNMAPPED);
		inherited_external = false;
	}
}

/*
 * Called before UCX builds its registration caches (ucp_init_version).
 * Declares unmaps external only when mapwatch is really there, our
 * interposition is the one UCX will call, and the configuration registers
 * through verbs alone: otherwise UCX keeps its own hooks (or, with them
 * disabled, runs without a cache), which is slower but never wrong.
 */
/* The UCX whose registration cache this library was written against:
 * later ones look regions up without ucs_rcache_get (1.14: UCP's
 * ucs_rcache_lookup_unsafe fast path) or pass it more arguments (1.17). */
static bool known_ucx(void)
{
	__typeof__(ucp_get_version) *f = UCP(ucp_get_version);
	unsigned int major = 0, minor = 0, release = 0;
	char v[32];

	if (f)
		f(&major, &minor, &release);
	if (major == UCP_API_MAJOR && minor == UCP_API_MINOR)
		return true;
	snprintf(v, sizeof(v), "%u.%u.%u", major, minor, release);
	say("UCX %s: this library knows UCX " MW_STR(UCP_API_MAJOR) "."
	    MW_STR(UCP_API_MINOR) "'s registration cache only: off, UCX keeps "
	    "its own hooks", v);
	return false;
}

/* False: refuse this context (ucp_init fails, unsupported). */
static bool setup(const ucp_config_t *config)
{
	const char *why = NULL, *mode;
	struct mapwatch *m;
	char *tls = NULL;
	bool only_verbs = verbs_only(config, &tls), ok = true;
	int r;

	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != ST_UNSET) {
		const char *mixed = getenv("MAPWATCH_UCX_ALLOW_MIXED");

		/*
		 * Unmaps are external for the whole process now: this
		 * context's other caches (knem's, UCP's own over shared
		 * memory) would hear of none, and hand out stale memory.
		 * Refuse it, unless the user says they know (review R2).
		 */
		if (state == ST_ACTIVE && !only_verbs) {
			ok = mixed && *mixed == '1';
			say(ok ? "another UCP context allows transports beyond verbs "
			    "(UCX_TLS=%s): MAPWATCH_UCX_ALLOW_MIXED=1, so it runs; unmaps "
			    "of memory it registers elsewhere are not reported" :
			    "another UCP context allows transports beyond verbs "
			    "(UCX_TLS=%s): refused (ucp_init: unsupported), since unmaps "
			    "of memory it registers elsewhere would not be reported; "
			    "MAPWATCH_UCX_ALLOW_MIXED=1 runs it anyway "
			    "(lib/ucx/README.md)", tls ? tls : "?");
		}
		free(tls);
		return ok;
	}
	pthread_mutex_lock(&init_lock);
	if (state != ST_UNSET)
		goto out;
	if (!known_ucx()) {
		state = ST_OFF;
		stay_off();
		goto out;
	}
	if (parent_mw) {
		mapwatch_close(parent_mw);
		parent_mw = NULL;
	}
	verbose = getenv("MAPWATCH_UCX_VERBOSE") && *getenv("MAPWATCH_UCX_VERBOSE") == '1';
	if (!stats_at_exit && getenv("MAPWATCH_UCX_STATS") &&
	    *getenv("MAPWATCH_UCX_STATS") == '1') {
		stats_at_exit = true;
		atexit(print_stats);
	}
	if (!interposed()) {
		say("%s", "not first in the symbol search order (preload it, or link "
		    "it before UCX and libibverbs): off, UCX keeps its own hooks");
		state = ST_OFF;
		stay_off();
		goto out;
	}
	if (!only_verbs) {
		/* Not for good: a later context may be verbs-only. */
		say("UCX_TLS=%s allows transports that do not register through "
		    "verbs (shared memory, knem, xpmem, cma, tcp, ...): not active "
		    "for this context, UCX keeps its own hooks", tls ? tls : "?");
		stay_off();
		goto out;
	}
	r = mapwatch_open(&m, MAPWATCH_BACKEND_AUTO,
			  env_ulong("MAPWATCH_UCX_MAX_WATCHES", 262144), &why);
	if (r) {
		say("mapwatch unavailable, UCX keeps its own hooks: %s",
		    why ? why : strerror(-r));
		state = ST_OFF;
		stay_off();
		goto out;
	}
	ucm_set_external_event(UCM_EVENT_VM_UNMAPPED);
	inherited_external = false;
	/* UCX's setting as UCX reads it (the environment; ucm_global_opts'
	 * layout is UCX's to change). */
	mode = getenv("UCX_MEM_MMAP_HOOK_MODE");
	if (!mode || strcmp(mode, "none"))
		say("%s", "UCX hooks libc's memory calls as well when a cache "
		    "first subscribes to unmaps; set UCX_MEM_MMAP_HOOK_MODE=none "
		    "to run on mapwatch alone");
	else if (verbose)
		say("%s", "active: unmaps reported to UCX by mapwatch");
	__atomic_store_n(&mw, m, __ATOMIC_RELEASE);
	__atomic_store_n(&state, ST_ACTIVE, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&init_lock);
	free(tls);
	return ok;
}

/* --- registrations ------------------------------------------------------------ */

static unsigned int bucket(const struct ibv_mr *mr)
{
	return ((uintptr_t)mr >> 4) * 0x9e3779b1u % NBUCKETS;
}

/*
 * Before the real registration (a change between the NIC's pinning and a
 * later watch would never be reported, review 2026-12-07 F2): watch the
 * range.  *n gets the watch, or NULL when nothing needs one (not active,
 * nested call) or none could be placed; then the range is queued as
 * unmapped for the next entry point (UCX uses the registration and drops
 * it: uncached).  -1 when even that fails (out of memory): refuse.
 */
static int prewatch(const void *addr, size_t len, struct node **np)
{
	struct mapwatch *m = __atomic_load_n(&mw, __ATOMIC_ACQUIRE);
	struct node *n;
	struct uncached *u;
	int r = -ENOMEM;

	*np = NULL;
	if (in_reg || !len)
		return 0;
	/* A fork child that registers through its parent's context before
	 * its own ucp_init: unmaps are still external in its libucm and
	 * nobody watches, so hand the range out uncached (review R6). */
	if (!m && !__atomic_load_n(&inherited_external, __ATOMIC_RELAXED))
		return 0;
	if (!m)
		r = -EIO;	/* the parent's monitor: not the child's */
	n = m ? malloc(sizeof(*n)) : NULL;
	if (n) {
		r = mapwatch_watch(m, addr, len,
				   __atomic_fetch_add(&next_cookie, 1, __ATOMIC_RELAXED),
				   &n->h);
		if (!r) {
			*np = n;
			return 0;
		}
		free(n);
	}
	u = malloc(sizeof(*u));
	if (!u) {
		if (!__atomic_fetch_add(&n_refused, 1, __ATOMIC_RELAXED))
			say("%s", "out of memory: refusing a registration");
		errno = ENOMEM;
		return -1;
	}
	u->addr = (void *)addr;
	u->len = len;
	u->next = __atomic_load_n(&uncached_head, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(&uncached_head, &u->next, u, false,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
	if (!__atomic_fetch_add(&n_uncached, 1, __ATOMIC_RELAXED))
		say("cannot watch a registration (%s): handing it to UCX uncached "
		    "(more watches: MAPWATCH_UCX_MAX_WATCHES)", strerror(-r));
	return 0;
}

/* After it: keep the watch with the MR, or drop it with the failure. */
static struct ibv_mr *postwatch(struct ibv_mr *mr, struct node *n)
{
	if (!n)
		return mr;
	if (!mr) {
		int e = errno;

		mapwatch_unwatch(mw, &n->h);
		free(n);
		errno = e;
		return NULL;
	}
	n->mr = mr;
	pthread_mutex_lock(&table_lock);
	n->next = buckets[bucket(mr)];
	buckets[bucket(mr)] = n;
	n_watch++;
	pthread_mutex_unlock(&table_lock);
	return mr;
}

static struct node *unlink_mr(const struct ibv_mr *mr)
{
	struct node **pp, *n = NULL;

	pthread_mutex_lock(&table_lock);
	for (pp = &buckets[bucket(mr)]; *pp; pp = &(*pp)->next)
		if ((*pp)->mr == mr) {
			n = *pp;
			*pp = n->next;
			break;
		}
	pthread_mutex_unlock(&table_lock);
	return n;
}

/* One wrapper per registration call: watch, register, keep. */
#define REG_WRAPPER(fn, ver, ...)					\
	struct node *n;							\
	struct ibv_mr *mr;						\
	__typeof__(fn) *f = IBV(fn, ver);				\
									\
	if (!f) {							\
		errno = EOPNOTSUPP;					\
		return NULL;						\
	}								\
	if (prewatch(addr, length, &n))					\
		return NULL;						\
	in_reg++;							\
	mr = f(__VA_ARGS__);						\
	in_reg--;							\
	return postwatch(mr, n)

EXPORT struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length,
				       uint64_t iova, unsigned int access)
{
	REG_WRAPPER(ibv_reg_mr_iova2, "IBVERBS_1.8", pd, addr, length, iova, access);
}

EXPORT struct ibv_mr *ibv_reg_mr_iova(struct ibv_pd *pd, void *addr, size_t length,
				      uint64_t iova, int access)
{
	REG_WRAPPER(ibv_reg_mr_iova, "IBVERBS_1.7", pd, addr, length, iova, access);
}

EXPORT struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access)
{
	REG_WRAPPER(ibv_reg_mr, "IBVERBS_1.1", pd, addr, length, access);
}

EXPORT int ibv_dereg_mr(struct ibv_mr *mr)
{
	__typeof__(ibv_dereg_mr) *f = IBV(ibv_dereg_mr, "IBVERBS_1.1");
	struct node *n;
	int r;

	if (!f)
		return EOPNOTSUPP;
	n = mr ? unlink_mr(mr) : NULL;
	r = f(mr);
	if (!n)
		return r;
	if (r) {	/* still registered: keep watching it */
		pthread_mutex_lock(&table_lock);
		n->next = buckets[bucket(mr)];
		buckets[bucket(mr)] = n;
		pthread_mutex_unlock(&table_lock);
		return r;
	}
	if (mw)
		mapwatch_unwatch(mw, &n->h);
	__atomic_fetch_add(&n_unwatch, 1, __ATOMIC_RELAXED);
	free(n);
	return r;
}

/* --- UCP entry points ------------------------------------------------------------ */

EXPORT ucs_status_t ucp_init_version(unsigned api_major_version, unsigned api_minor_version,
				     const ucp_params_t *params, const ucp_config_t *config,
				     ucp_context_h *context_p)
{
	__typeof__(ucp_init_version) *f = UCP(ucp_init_version);

	if (!f)
		return UCS_ERR_UNSUPPORTED;
	if (!setup(config))
		return UCS_ERR_UNSUPPORTED;
	return f(api_major_version, api_minor_version, params, config, context_p);
}

/* A wrapper that synchronises, then calls the real function (or fails
 * with FAIL when there is none). */
#define WRAP(ret, fail, fn, params, args)				\
	EXPORT ret fn params						\
	{								\
		__typeof__(fn) *f = UCP(fn);				\
									\
		if (!f)							\
			return fail;					\
		sync_events();						\
		return f args;						\
	}

/* Not needed for lookups (ucs_rcache_get is), but a regular drain point
 * for ranges handed out uncached. */
WRAP(unsigned, 0, ucp_worker_progress, (ucp_worker_h worker), (worker))
/*
 * The lookup every UCX registration cache makes (UCP's own, and in UCX
 * 1.13.1 the ib, knem, xpmem, gdr_copy and rocm memory domains'), each from
 * its own library, so through our definition: events are reported before
 * any lookup, whichever UCP call (or UCT user) led to it.
 */
/*
 * Defined under another C name with seven argument slots: UCX 1.17 added an
 * alignment argument (seven in all), and whatever UCX the program loads,
 * our definition is the one it calls, active or not.  Every argument is an
 * integer or a pointer, so passing seven slots through (the seventh is
 * whatever the caller left there when it passed six) forwards each
 * version's call unchanged on x86-64 and aarch64 (review R1).  Events are
 * reported only on the UCX this library knows (setup() checks: 1.13).
 */
typedef ucs_status_t rcache_get7_t(void *, void *, size_t, uintptr_t,
				   uintptr_t, uintptr_t, uintptr_t);
EXPORT ucs_status_t mw_ucs_rcache_get7(void *rcache, void *address, size_t length,
				       uintptr_t a4, uintptr_t a5, uintptr_t a6,
				       uintptr_t a7) __asm__("ucs_rcache_get");
EXPORT ucs_status_t mw_ucs_rcache_get7(void *rcache, void *address, size_t length,
				       uintptr_t a4, uintptr_t a5, uintptr_t a6,
				       uintptr_t a7)
{
	rcache_get7_t *f = (rcache_get7_t *)(void *)REAL(ucs_rcache_get, NULL, "libucs.so.0");

	if (!f)
		return UCS_ERR_UNSUPPORTED;
	sync_events();
	return f(rcache, address, length, a4, a5, a6, a7);
}

/*
 * Whether the dynamic linker resolves UCX's calls to our definitions (a
 * program or library found earlier in the search order would win).  The
 * hidden aliases name our own definitions whatever the search order.
 */
extern __typeof__(ibv_reg_mr_iova2) own_reg_mr_iova2
	__attribute__((alias("ibv_reg_mr_iova2"), visibility("hidden")));
extern __typeof__(ibv_reg_mr) own_reg_mr
	__attribute__((alias("ibv_reg_mr"), visibility("hidden")));
extern __typeof__(ibv_reg_mr_iova) own_reg_mr_iova
	__attribute__((alias("ibv_reg_mr_iova"), visibility("hidden")));
extern __typeof__(ibv_dereg_mr) own_dereg_mr
	__attribute__((alias("ibv_dereg_mr"), visibility("hidden")));
extern __typeof__(ucp_init_version) own_init_version
	__attribute__((alias("ucp_init_version"), visibility("hidden")));
extern __typeof__(ucp_worker_progress) own_worker_progress
	__attribute__((alias("ucp_worker_progress"), visibility("hidden")));
extern rcache_get7_t own_rcache_get
	__attribute__((alias("ucs_rcache_get"), visibility("hidden")));

static bool interposed(void)
{
	return dlsym(RTLD_DEFAULT, "ibv_reg_mr_iova2") == (void *)own_reg_mr_iova2 &&
	       dlsym(RTLD_DEFAULT, "ibv_reg_mr_iova") == (void *)own_reg_mr_iova &&
	       dlsym(RTLD_DEFAULT, "ibv_reg_mr") == (void *)own_reg_mr &&
	       dlsym(RTLD_DEFAULT, "ibv_dereg_mr") == (void *)own_dereg_mr &&
	       dlsym(RTLD_DEFAULT, "ucp_init_version") == (void *)own_init_version &&
	       dlsym(RTLD_DEFAULT, "ucp_worker_progress") == (void *)own_worker_progress &&
	       dlsym(RTLD_DEFAULT, "ucs_rcache_get") == (void *)own_rcache_get;
}
