// SPDX-License-Identifier: GPL-2.0-only
/*
 * Review 2026-12-07 F13: a program that looks a UCP function up by dlsym()
 * to detect a feature finds libmapwatch-ucx's definition even where no
 * libucp defines it.  Calling it must fail the call (UCS_ERR_UNSUPPORTED,
 * 0 for ucp_worker_progress), not abort the program.  This process loads
 * the shim (argv[1]) and no libucp at all.
 *
 * usage: shim_missing PATH-TO-libmapwatch-ucx.so.1
 */
#include <dlfcn.h>
#include <stdio.h>

#include <ucp/api/ucp.h>

int main(int argc, char **argv)
{
	void *h = argc == 2 ? dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) : NULL;
	unsigned (*progress)(ucp_worker_h);
	__typeof__(ucp_init_version) *init_version;
	unsigned n;
	ucs_status_t st;

	if (!h) {
		fprintf(stderr, "shim_missing: %s\n", argc == 2 ? dlerror() : "usage: shim_missing LIB");
		return 2;
	}
	*(void **)&progress = dlsym(h, "ucp_worker_progress");
	*(void **)&init_version = dlsym(h, "ucp_init_version");
	if (!progress || !init_version || dlopen("libucp.so.0", RTLD_NOW | RTLD_NOLOAD)) {
		fprintf(stderr, "shim_missing: the shim lacks the symbols, or libucp is loaded\n");
		return 2;
	}
	n = progress(NULL);
	st = init_version(UCP_API_MAJOR, UCP_API_MINOR, NULL, NULL, NULL);
	printf("shim_missing: without libucp: ucp_worker_progress -> %u, ucp_init_version -> %s\n",
	       n, ucs_status_string(st));
	return n == 0 && st == UCS_ERR_UNSUPPORTED ? 0 : 1;
}
