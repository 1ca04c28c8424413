// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libmapwatch-ucx: UCX's registration caches kept correct by mapwatch, with
 * no binary patching.  Loaded as a preload (LD_PRELOAD) or linked into the
 * program ahead of UCX, it
 *
 *  - declares UCM_EVENT_VM_UNMAPPED external (ucm_set_external_event) when
 *    the program calls ucp_init_version(), before UCX creates a registration
 *    cache, so UCX does not install unmap hooks of its own for them;
 *  - watches every range UCX registers with the NIC, by interposing the
 *    verbs registration calls libuct_ib makes (ibv_reg_mr, ibv_reg_mr_iova,
 *    ibv_reg_mr_iova2; ibv_dereg_mr unwatches);
 *  - at every UCP entry point that can look up a registration (the calls
 *    that take a user buffer, ucp_mem_map, and ucp_worker_progress, where
 *    rendezvous registers receive buffers) checks whether mapwatch has
 *    pending events and, if so, hands each changed range to ucm_vm_munmap(),
 *    which queues it on every UCX registration cache.
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

#include <infiniband/verbs.h>
#include <ucm/api/ucm.h>
#include <ucp/api/ucp.h>

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
static unsigned long n_watch, n_unwatch, n_events, n_refused;

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
 * ask it by name too.
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
	if (!p) {
		say("cannot find the real %s", name);
		abort();
	}
	return p;
}

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

static void report(void *arg, const struct mapwatch_event *ev)
{
	(void)arg;
	__atomic_fetch_add(&n_events, 1, __ATOMIC_RELAXED);
	ucm_vm_munmap((void *)ev->addr, ev->len);
}

static void drain(void)
{
	pthread_mutex_lock(&drain_lock);
	__atomic_fetch_add(&draining, 1, __ATOMIC_SEQ_CST);
	mapwatch_drain(mw, report, NULL);
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

	if (m && (mapwatch_pending(m) ||
		  __atomic_load_n(&draining, __ATOMIC_SEQ_CST)))
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

static void print_stats(void)
{
	fprintf(stderr, "libmapwatch-ucx: %s, watched %lu, unwatched %lu, "
		"refused %lu, events reported to ucm %lu\n",
		state == ST_ACTIVE ? "active" : "off", n_watch, n_unwatch,
		n_refused, n_events);
}

/*
 * Called before UCX builds its registration caches (ucp_init_version).
 * Declares unmaps external only when mapwatch is really there and our
 * interposition is the one UCX will call: otherwise UCX keeps its own
 * hooks (or, with them disabled, runs without a cache), which is slower
 * but never wrong.
 */
static void setup(void)
{
	const char *why = NULL;
	struct mapwatch *m;
	int r;

	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != ST_UNSET)
		return;
	pthread_mutex_lock(&init_lock);
	if (state != ST_UNSET)
		goto out;
	verbose = getenv("MAPWATCH_UCX_VERBOSE") && *getenv("MAPWATCH_UCX_VERBOSE") == '1';
	if (getenv("MAPWATCH_UCX_STATS") && *getenv("MAPWATCH_UCX_STATS") == '1')
		atexit(print_stats);
	if (!interposed()) {
		say("%s", "not first in the symbol search order (preload it, or link "
		    "it before UCX and libibverbs): off, UCX keeps its own hooks");
		state = ST_OFF;
		goto out;
	}
	r = mapwatch_open(&m, MAPWATCH_BACKEND_AUTO,
			  env_ulong("MAPWATCH_UCX_MAX_WATCHES", 262144), &why);
	if (r) {
		say("mapwatch unavailable, UCX keeps its own hooks: %s",
		    why ? why : strerror(-r));
		state = ST_OFF;
		goto out;
	}
	ucm_set_external_event(UCM_EVENT_VM_UNMAPPED);
	if (ucm_global_opts.mmap_hook_mode != UCM_MMAP_HOOK_NONE)
		say("%s", "UCX installed its memory hooks when it loaded; set "
		    "UCX_MEM_MMAP_HOOK_MODE=none to run on mapwatch alone");
	else if (verbose)
		say("%s", "active: unmaps reported to UCX by mapwatch");
	__atomic_store_n(&mw, m, __ATOMIC_RELEASE);
	__atomic_store_n(&state, ST_ACTIVE, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&init_lock);
}

/* --- registrations ------------------------------------------------------------ */

static unsigned int bucket(const struct ibv_mr *mr)
{
	return ((uintptr_t)mr >> 4) * 0x9e3779b1u % NBUCKETS;
}

/*
 * Watch what was just registered.  A registration we cannot watch is
 * refused (deregistered, NULL with errno): a cache would otherwise keep it
 * past a change nobody reports.
 */
static struct ibv_mr *watch(struct ibv_mr *mr, const void *addr, size_t len)
{
	struct node *n;
	uint64_t cookie;
	int r = -ENOMEM;

	if (!mr || !len || !__atomic_load_n(&mw, __ATOMIC_ACQUIRE))
		return mr;
	n = malloc(sizeof(*n));
	if (n) {
		cookie = __atomic_fetch_add(&next_cookie, 1, __ATOMIC_RELAXED);
		r = mapwatch_watch(mw, addr, len, cookie, &n->h);
	}
	if (r) {
		free(n);
		IBV(ibv_dereg_mr, "IBVERBS_1.1")(mr);
		if (!__atomic_fetch_add(&n_refused, 1, __ATOMIC_RELAXED))
			say("cannot watch a registration, refusing it: %s (more "
			    "watches: MAPWATCH_UCX_MAX_WATCHES)", strerror(-r));
		errno = -r;
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

EXPORT struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length,
				       uint64_t iova, unsigned int access)
{
	struct ibv_mr *mr;

	in_reg++;
	mr = IBV(ibv_reg_mr_iova2, "IBVERBS_1.8")(pd, addr, length, iova, access);
	in_reg--;
	return in_reg ? mr : watch(mr, addr, length);
}

EXPORT struct ibv_mr *ibv_reg_mr_iova(struct ibv_pd *pd, void *addr, size_t length,
				      uint64_t iova, int access)
{
	struct ibv_mr *mr;

	in_reg++;
	mr = IBV(ibv_reg_mr_iova, "IBVERBS_1.7")(pd, addr, length, iova, access);
	in_reg--;
	return in_reg ? mr : watch(mr, addr, length);
}

EXPORT struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access)
{
	struct ibv_mr *mr;

	in_reg++;
	mr = IBV(ibv_reg_mr, "IBVERBS_1.1")(pd, addr, length, access);
	in_reg--;
	return in_reg ? mr : watch(mr, addr, length);
}

EXPORT int ibv_dereg_mr(struct ibv_mr *mr)
{
	struct node *n = mr ? unlink_mr(mr) : NULL;
	int r = IBV(ibv_dereg_mr, "IBVERBS_1.1")(mr);

	if (!n)
		return r;
	if (r) {	/* still registered: keep watching it */
		pthread_mutex_lock(&table_lock);
		n->next = buckets[bucket(mr)];
		buckets[bucket(mr)] = n;
		pthread_mutex_unlock(&table_lock);
		return r;
	}
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
	setup();
	return UCP(ucp_init_version)(api_major_version, api_minor_version, params,
				     config, context_p);
}

/* A wrapper that synchronises, then calls the real function. */
#define WRAP(ret, fn, params, args)					\
	EXPORT ret fn params						\
	{								\
		sync_events();						\
		return UCP(fn) args;					\
	}

WRAP(unsigned, ucp_worker_progress, (ucp_worker_h worker), (worker))
WRAP(ucs_status_t, ucp_mem_map,
     (ucp_context_h context, const ucp_mem_map_params_t *params, ucp_mem_h *memh_p),
     (context, params, memh_p))

WRAP(ucs_status_ptr_t, ucp_tag_send_nb,
     (ucp_ep_h ep, const void *buffer, size_t count, ucp_datatype_t datatype,
      ucp_tag_t tag, ucp_send_callback_t cb),
     (ep, buffer, count, datatype, tag, cb))
WRAP(ucs_status_t, ucp_tag_send_nbr,
     (ucp_ep_h ep, const void *buffer, size_t count, ucp_datatype_t datatype,
      ucp_tag_t tag, void *req),
     (ep, buffer, count, datatype, tag, req))
WRAP(ucs_status_ptr_t, ucp_tag_send_nbx,
     (ucp_ep_h ep, const void *buffer, size_t count, ucp_tag_t tag,
      const ucp_request_param_t *param),
     (ep, buffer, count, tag, param))
WRAP(ucs_status_ptr_t, ucp_tag_send_sync_nb,
     (ucp_ep_h ep, const void *buffer, size_t count, ucp_datatype_t datatype,
      ucp_tag_t tag, ucp_send_callback_t cb),
     (ep, buffer, count, datatype, tag, cb))
WRAP(ucs_status_ptr_t, ucp_tag_send_sync_nbx,
     (ucp_ep_h ep, const void *buffer, size_t count, ucp_tag_t tag,
      const ucp_request_param_t *param),
     (ep, buffer, count, tag, param))
WRAP(ucs_status_ptr_t, ucp_tag_recv_nb,
     (ucp_worker_h worker, void *buffer, size_t count, ucp_datatype_t datatype,
      ucp_tag_t tag, ucp_tag_t tag_mask, ucp_tag_recv_callback_t cb),
     (worker, buffer, count, datatype, tag, tag_mask, cb))
WRAP(ucs_status_t, ucp_tag_recv_nbr,
     (ucp_worker_h worker, void *buffer, size_t count, ucp_datatype_t datatype,
      ucp_tag_t tag, ucp_tag_t tag_mask, void *req),
     (worker, buffer, count, datatype, tag, tag_mask, req))
WRAP(ucs_status_ptr_t, ucp_tag_recv_nbx,
     (ucp_worker_h worker, void *buffer, size_t count, ucp_tag_t tag,
      ucp_tag_t tag_mask, const ucp_request_param_t *param),
     (worker, buffer, count, tag, tag_mask, param))
WRAP(ucs_status_ptr_t, ucp_tag_msg_recv_nb,
     (ucp_worker_h worker, void *buffer, size_t count, ucp_datatype_t datatype,
      ucp_tag_message_h message, ucp_tag_recv_callback_t cb),
     (worker, buffer, count, datatype, message, cb))
WRAP(ucs_status_ptr_t, ucp_tag_msg_recv_nbx,
     (ucp_worker_h worker, void *buffer, size_t count, ucp_tag_message_h message,
      const ucp_request_param_t *param),
     (worker, buffer, count, message, param))

WRAP(ucs_status_ptr_t, ucp_stream_send_nb,
     (ucp_ep_h ep, const void *buffer, size_t count, ucp_datatype_t datatype,
      ucp_send_callback_t cb, unsigned flags),
     (ep, buffer, count, datatype, cb, flags))
WRAP(ucs_status_ptr_t, ucp_stream_send_nbx,
     (ucp_ep_h ep, const void *buffer, size_t count, const ucp_request_param_t *param),
     (ep, buffer, count, param))
WRAP(ucs_status_ptr_t, ucp_stream_recv_nb,
     (ucp_ep_h ep, void *buffer, size_t count, ucp_datatype_t datatype,
      ucp_stream_recv_callback_t cb, size_t *length, unsigned flags),
     (ep, buffer, count, datatype, cb, length, flags))
WRAP(ucs_status_ptr_t, ucp_stream_recv_nbx,
     (ucp_ep_h ep, void *buffer, size_t count, size_t *length,
      const ucp_request_param_t *param),
     (ep, buffer, count, length, param))

WRAP(ucs_status_ptr_t, ucp_am_send_nb,
     (ucp_ep_h ep, uint16_t id, const void *buffer, size_t count,
      ucp_datatype_t datatype, ucp_send_callback_t cb, unsigned flags),
     (ep, id, buffer, count, datatype, cb, flags))
WRAP(ucs_status_ptr_t, ucp_am_send_nbx,
     (ucp_ep_h ep, unsigned id, const void *header, size_t header_length,
      const void *buffer, size_t count, const ucp_request_param_t *param),
     (ep, id, header, header_length, buffer, count, param))
WRAP(ucs_status_ptr_t, ucp_am_recv_data_nbx,
     (ucp_worker_h worker, void *data_desc, void *buffer, size_t count,
      const ucp_request_param_t *param),
     (worker, data_desc, buffer, count, param))

WRAP(ucs_status_ptr_t, ucp_put_nb,
     (ucp_ep_h ep, const void *buffer, size_t length, uint64_t remote_addr,
      ucp_rkey_h rkey, ucp_send_callback_t cb),
     (ep, buffer, length, remote_addr, rkey, cb))
WRAP(ucs_status_t, ucp_put_nbi,
     (ucp_ep_h ep, const void *buffer, size_t length, uint64_t remote_addr,
      ucp_rkey_h rkey),
     (ep, buffer, length, remote_addr, rkey))
WRAP(ucs_status_ptr_t, ucp_put_nbx,
     (ucp_ep_h ep, const void *buffer, size_t count, uint64_t remote_addr,
      ucp_rkey_h rkey, const ucp_request_param_t *param),
     (ep, buffer, count, remote_addr, rkey, param))
WRAP(ucs_status_ptr_t, ucp_get_nb,
     (ucp_ep_h ep, void *buffer, size_t length, uint64_t remote_addr,
      ucp_rkey_h rkey, ucp_send_callback_t cb),
     (ep, buffer, length, remote_addr, rkey, cb))
WRAP(ucs_status_t, ucp_get_nbi,
     (ucp_ep_h ep, void *buffer, size_t length, uint64_t remote_addr,
      ucp_rkey_h rkey),
     (ep, buffer, length, remote_addr, rkey))
WRAP(ucs_status_ptr_t, ucp_get_nbx,
     (ucp_ep_h ep, void *buffer, size_t count, uint64_t remote_addr,
      ucp_rkey_h rkey, const ucp_request_param_t *param),
     (ep, buffer, count, remote_addr, rkey, param))
WRAP(ucs_status_t, ucp_put,
     (ucp_ep_h ep, const void *buffer, size_t length, uint64_t remote_addr,
      ucp_rkey_h rkey),
     (ep, buffer, length, remote_addr, rkey))
WRAP(ucs_status_t, ucp_get,
     (ucp_ep_h ep, void *buffer, size_t length, uint64_t remote_addr,
      ucp_rkey_h rkey),
     (ep, buffer, length, remote_addr, rkey))

/*
 * Whether the dynamic linker resolves UCX's calls to our definitions (a
 * program or library found earlier in the search order would win).  The
 * hidden aliases name our own definitions whatever the search order.
 */
extern __typeof__(ibv_reg_mr_iova2) own_reg_mr_iova2
	__attribute__((alias("ibv_reg_mr_iova2"), visibility("hidden")));
extern __typeof__(ucp_worker_progress) own_worker_progress
	__attribute__((alias("ucp_worker_progress"), visibility("hidden")));

static bool interposed(void)
{
	return dlsym(RTLD_DEFAULT, "ibv_reg_mr_iova2") == (void *)own_reg_mr_iova2 &&
	       dlsym(RTLD_DEFAULT, "ucp_worker_progress") == (void *)own_worker_progress;
}
