// SPDX-License-Identifier: GPL-2.0-only
/*
 * The conformance matrix (tests/conformance.h) on the host, through the
 * userfaultfd backend: every case the backend claims must be seen, the
 * quiet ones must stay quiet; what it does not claim is reported.  Skipped
 * as a whole (exit 77, with the reason) when the host does not permit
 * userfaultfd; cases that retire physical pages never run on the host.
 */
#define _GNU_SOURCE
#include <sys/utsname.h>

#include "conformance.h"

#define U(id, ...) \
	TEST(userfaultfd_##id) { cf_run_case(MAPWATCH_BACKEND_USERFAULTFD, CF_##id); }
CF_CASES(U)

int main(int argc, char **argv)
{
	static const enum mapwatch_backend b[] = { MAPWATCH_BACKEND_USERFAULTFD };
	struct mapwatch *mw;
	const char *why = NULL;
	char title[160];
	struct utsname u;

	if (!(argc == 2 && !strcmp(argv[1], "-l"))) {
		if (mapwatch_open(&mw, MAPWATCH_BACKEND_USERFAULTFD, 1, &why)) {
			printf("# SKIP: whole program: %s\n", why);
			return TAP_SKIP_EXIT;
		}
		mapwatch_close(mw);
	}
	cf_allow_destructive = false;
	uname(&u);
	snprintf(title, sizeof(title), "host, kernel %s", u.release);
	return cf_main(argc, argv, b, 1, title);
}
