// SPDX-License-Identifier: GPL-2.0-only
/*
 * The conformance matrix (tests/conformance.h) in the test guest, through
 * the kernel backend (mapwatch.ko: claims every case, synchronously, and no
 * invalidation for mprotect or fork) and the userfaultfd backend (claims
 * what userfaultfd can see).  The migration case by another process needs
 * two NUMA nodes (vm/run --numa); elsewhere it is skipped.
 */
#define _GNU_SOURCE
#include <sys/utsname.h>

#include "conformance.h"

#define K(id, ...) \
	TEST(kernel_##id) { cf_run_case(MAPWATCH_BACKEND_KERNEL, CF_##id); }
#define U(id, ...) \
	TEST(userfaultfd_##id) { cf_run_case(MAPWATCH_BACKEND_USERFAULTFD, CF_##id); }
CF_CASES(K)
CF_CASES(U)

int main(int argc, char **argv)
{
	static const enum mapwatch_backend b[] = {
		MAPWATCH_BACKEND_KERNEL, MAPWATCH_BACKEND_USERFAULTFD,
	};
	char title[160];
	struct utsname u;
	struct stat st;

	/* The guest is thrown away after the run: page retirement is fine. */
	cf_allow_destructive = true;
	uname(&u);
	snprintf(title, sizeof(title), "guest, kernel %s, %s NUMA node(s)",
		 u.release, stat("/sys/devices/system/node/node1", &st) ? "1" : "2+");
	return cf_main(argc, argv, b, 2, title);
}
