// SPDX-License-Identifier: GPL-2.0-only
/*
 * libmapwatch-ucx against UCX's contracts (review 2026-12-07, F2, F3, F10,
 * F11): one case per run, chosen by the first argument; tests/ucx/run-guest
 * runs each with the shim preloaded in the test guest (Soft-RoCE up, the
 * module loaded) and judges the exit status (0 pass, 1 fail, 2 broken) and
 * the one "ucx_shim CASE: ..." line.
 *
 *   reg-window   (F2) a page of a registration is unmapped and mapped
 *                again right after the real ibv_reg_mr returns (the stub
 *                tests/ucx/remap_stub.c, preloaded after the shim, does it
 *                for the page at REMAP_STUB_ADDR): after ucp_worker_progress
 *                a UCM_EVENT_VM_UNMAPPED handler must have seen that page.
 *   full-monitor (F10) run with MAPWATCH_UCX_MAX_WATCHES=64: ucp_mem_map and
 *                ucp_mem_unmap of 100 distinct buffers, all kept mapped (UCX
 *                caches every one, never evicting), must all succeed.
 *   fork         (F11) ucp_init and ucp_mem_map in the parent, then fork: the
 *                child's own ucp_init, worker and ucp_mem_map must be UCS_OK.
 *   sm-stale     (F3) run with a UCX_TLS without IB: ucp_mem_map a buffer and
 *                keep the memh, munmap the buffer and map it again at the
 *                same address, ucp_mem_map again.  A cache that heard of the
 *                unmap gives a new memh (the old one is still held, so its
 *                memory cannot be reused for the new one); the same memh
 *                is a stale cache hit.
 *   mixed        (review R2) a verbs-only context, then one whose UCX_TLS
 *                (ucp_config_modify) allows shared memory: refused, or run
 *                with MAPWATCH_UCX_ALLOW_MIXED=1.
 *   bypass       (F12) sm-stale over verbs, but ucp_mem_map called through
 *                dlsym(libucp's handle, ...), as a language binding does:
 *                no interposed UCP entry point runs, the unmap must still
 *                reach UCP's cache before the second lookup.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ucm/api/ucm.h>
#include <ucp/api/ucp.h>

static const char *name = "?";
static ucp_context_h ctx;
static ucp_worker_h worker;

static void broken(const char *what, const char *detail)
{
	printf("ucx_shim %s: broken: %s: %s\n", name, what, detail);
	fflush(stdout);
	exit(2);
}

static void check_status(ucs_status_t st, const char *what)
{
	if (st != UCS_OK)
		broken(what, ucs_status_string(st));
}

static ucs_status_t init(void)
{
	ucp_params_t params = {
		.field_mask = UCP_PARAM_FIELD_FEATURES,
		.features = UCP_FEATURE_TAG | UCP_FEATURE_RMA,
	};
	ucp_worker_params_t wparams = {
		.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
		.thread_mode = UCS_THREAD_MODE_SINGLE,
	};
	ucs_status_t st = ucp_init(&params, NULL, &ctx);

	if (st != UCS_OK)
		return st;
	return ucp_worker_create(ctx, &wparams, &worker);
}

static void fini(void)
{
	ucp_worker_destroy(worker);
	ucp_cleanup(ctx);
}

static __typeof__(ucp_mem_map) *mem_map = ucp_mem_map;

static ucs_status_t map(void *addr, size_t len, ucp_mem_h *memh)
{
	ucp_mem_map_params_t mp = {
		.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH,
		.address = addr,
		.length = len,
	};

	return mem_map(ctx, &mp, memh);
}

static void *xmmap(void *at, size_t len)
{
	void *p = mmap(at, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED : 0), -1, 0);

	if (p == MAP_FAILED)
		broken("mmap", strerror(errno));
	memset(p, 0x5a, len);
	return p;
}

/* --- reg-window (F2) ------------------------------------------------------- */

static uintptr_t target;
static int events, covering;

static void on_unmapped(ucm_event_type_t type, ucm_event_t *ev, void *arg)
{
	uintptr_t a = (uintptr_t)ev->vm_unmapped.address;

	(void)type, (void)arg;
	events++;
	if (a <= target && target < a + ev->vm_unmapped.size)
		covering++;
}

static int reg_window(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 16 * page;
	char *buf, addr[32];
	ucp_mem_h memh;
	ucs_status_t st;

	check_status(init(), "ucp_init");
	st = ucm_set_event_handler(UCM_EVENT_VM_UNMAPPED | UCM_EVENT_FLAG_NO_INSTALL,
				   0, on_unmapped, NULL);
	check_status(st, "ucm_set_event_handler");
	buf = xmmap(NULL, len);
	target = (uintptr_t)buf + 5 * page;
	snprintf(addr, sizeof(addr), "%#lx", (unsigned long)target);
	setenv("REMAP_STUB_ADDR", addr, 1);
	check_status(map(buf, len, &memh), "ucp_mem_map");
	unsetenv("REMAP_STUB_ADDR");
	if (!getenv("REMAP_STUB_DONE"))
		broken("the stub did not remap the page", "is remap_stub.so preloaded after the shim?");
	events = covering = 0;
	ucp_worker_progress(worker);
	printf("ucx_shim %s: page %#lx remapped inside ibv_reg_mr by the stub; after "
	       "ucp_worker_progress: %d VM_UNMAPPED callbacks, %d covering the page\n",
	       name, (unsigned long)target, events, covering);
	ucp_mem_unmap(ctx, memh);
	munmap(buf, len);
	fini();
	return covering ? 0 : 1;
}

/* --- full-monitor (F10) ---------------------------------------------------- */

static int full_monitor(void)
{
	enum { N = 100 };
	size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 4 * page;
	int failed = 0, first = -1;
	ucs_status_t st, first_st = UCS_OK;
	char *bufs[N];

	check_status(init(), "ucp_init");
	for (int i = 0; i < N; i++) {
		ucp_mem_h memh;

		/* A guard page between buffers: no two regions touch. */
		bufs[i] = xmmap(NULL, len + page);
		st = map(bufs[i], len, &memh);
		if (st == UCS_OK)
			st = ucp_mem_unmap(ctx, memh);
		if (st != UCS_OK && !failed++) {
			first = i;
			first_st = st;
		}
	}
	printf("ucx_shim %s: MAPWATCH_UCX_MAX_WATCHES=%s, %d live buffers mapped and "
	       "unmapped, %d failed", name, getenv("MAPWATCH_UCX_MAX_WATCHES") ?: "unset",
	       N, failed);
	if (failed)
		printf(" (first: buffer %d, %s)", first, ucs_status_string(first_st));
	printf("\n");
	fflush(stdout);
	for (int i = 0; i < N; i++)
		munmap(bufs[i], len + page);
	fini();
	return failed ? 1 : 0;
}

/* --- fork (F11) ------------------------------------------------------------ */

static int fork_case(void)
{
	size_t len = 64 << 10;
	char *buf = xmmap(NULL, len);
	ucp_mem_h memh;
	int status;
	pid_t pid;

	check_status(init(), "parent ucp_init");
	check_status(map(buf, len, &memh), "parent ucp_mem_map");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		broken("fork", strerror(errno));
	if (pid == 0) {
		ucs_status_t s_init, s_map = UCS_ERR_LAST;
		char *cbuf = xmmap(NULL, len);

		s_init = init();
		if (s_init == UCS_OK)
			s_map = map(cbuf, len, &memh);
		printf("ucx_shim %s: child: ucp_init+ucp_worker_create %s, ucp_mem_map %s\n",
		       name, ucs_status_string(s_init),
		       s_map == UCS_ERR_LAST ? "not run" : ucs_status_string(s_map));
		fflush(stdout);
		if (s_map == UCS_OK) {
			ucp_mem_unmap(ctx, memh);
			fini();
		}
		_exit(s_init == UCS_OK && s_map == UCS_OK ? 0 : 1);
	}
	if (waitpid(pid, &status, 0) != pid)
		broken("waitpid", strerror(errno));
	printf("ucx_shim %s: child exit %d\n", name,
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	ucp_mem_unmap(ctx, memh);
	fini();
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* --- sm-stale (F3) --------------------------------------------------------- */

static int sm_stale(void)
{
	size_t len = 64 << 10;
	char *buf = xmmap(NULL, len), *again;
	ucp_mem_h m1, m2;

	check_status(init(), "ucp_init");
	check_status(map(buf, len, &m1), "ucp_mem_map");
	munmap(buf, len);
	again = xmmap(buf, len);
	check_status(map(again, len, &m2), "ucp_mem_map after remap");
	printf("ucx_shim %s: UCX_TLS=%s: memh before the munmap %p, after the remap %p: %s\n",
	       name, getenv("UCX_TLS") ?: "unset", (void *)m1, (void *)m2,
	       m1 == m2 ? "the same (stale cache hit)" : "a new one");
	ucp_mem_unmap(ctx, m2);
	ucp_mem_unmap(ctx, m1);
	munmap(again, len);
	fini();
	return m1 == m2 ? 1 : 0;
}

/* --- mixed (review R2) ------------------------------------------------------ */

/*
 * A verbs-only context first (the shim goes active: unmaps are external
 * for the whole process), then a second context whose UCX_TLS, set through
 * ucp_config_modify(), allows shared memory: its caches would hear of no
 * unmap.  Expected: the second ucp_init is refused (UCS_ERR_UNSUPPORTED),
 * or, with MAPWATCH_UCX_ALLOW_MIXED=1, runs.
 */
static int mixed(void)
{
	ucp_params_t params = {
		.field_mask = UCP_PARAM_FIELD_FEATURES,
		.features = UCP_FEATURE_TAG,
	};
	const char *allow = getenv("MAPWATCH_UCX_ALLOW_MIXED");
	bool allowed = allow && !strcmp(allow, "1");
	ucp_context_h second = NULL;
	ucp_config_t *cfg;
	ucs_status_t st;

	check_status(init(), "ucp_init (verbs)");
	check_status(ucp_config_read(NULL, NULL, &cfg), "ucp_config_read");
	check_status(ucp_config_modify(cfg, "TLS", "self,sm,cma"), "ucp_config_modify");
	st = ucp_init(&params, cfg, &second);
	ucp_config_release(cfg);
	printf("ucx_shim %s: second context with TLS=self,sm,cma%s: %s\n", name,
	       allowed ? " (MAPWATCH_UCX_ALLOW_MIXED=1)" : "", ucs_status_string(st));
	if (st == UCS_OK)
		ucp_cleanup(second);
	fini();
	return allowed ? st != UCS_OK : st != UCS_ERR_UNSUPPORTED;
}

/* --- bypass (F12) ---------------------------------------------------------- */

static int bypass(void)
{
	void *h = dlopen("libucp.so.0", RTLD_LAZY | RTLD_NOLOAD);
	Dl_info info;

	if (!h || !(*(void **)&mem_map = dlsym(h, "ucp_mem_map")))
		broken("dlsym(libucp.so.0, ucp_mem_map)", dlerror() ?: "?");
	if (!dladdr(*(void **)&mem_map, &info) || !info.dli_fname ||
	    !strstr(info.dli_fname, "libucp.so"))
		broken("dlsym(libucp's handle) found a ucp_mem_map outside libucp",
		       info.dli_fname ?: "?");
	printf("ucx_shim %s: ucp_mem_map through libucp's own handle (%p, the "
	       "program's is %p)\n", name, *(void **)&mem_map, (void *)ucp_mem_map);
	return sm_stale();
}

int main(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(void); } cases[] = {
		{ "reg-window", reg_window },
		{ "full-monitor", full_monitor },
		{ "fork", fork_case },
		{ "sm-stale", sm_stale },
		{ "bypass", bypass },
		{ "mixed", mixed },
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; argc == 2 && i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!strcmp(argv[1], cases[i].name)) {
			name = cases[i].name;
			return cases[i].fn();
		}
	fprintf(stderr, "usage: ucx_shim reg-window|full-monitor|fork|sm-stale|bypass|mixed\n");
	return 2;
}
