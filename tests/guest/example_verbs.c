// SPDX-License-Identifier: GPL-2.0-only
/*
 * examples/verbs_provider (issue 16 s.3) over Soft-RoCE in the guest: the
 * cache used as a libfabric provider would (access flags per call, keys in
 * the entry's storage, the invalidate callback revoking the remote key),
 * RDMA WRITE proving the data lands in the new memory after the buffer is
 * freed and re-mapped.  Run as a user would; its exit status and each of
 * its lines are checked.
 */
#define _GNU_SOURCE
#include <sys/wait.h>

#include "host/libtest.h"

static char out[8192];
static int status = -1;

/* build/examples/verbs_provider beside build/tests/guest/PROG, run once. */
static void run_example(void)
{
	char exe[PATH_MAX], cmd[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	size_t len = 0;
	FILE *p;

	if (status != -1)
		return;
	tap_rxe_up();
	ASSERT_GT(n, 0);
	exe[n] = 0;
	for (int up = 0; up < 3; up++)		/* build/tests/guest/PROG */
		*strrchr(exe, '/') = 0;
	snprintf(cmd, sizeof(cmd), "%s/examples/verbs_provider rxe0 2>&1", exe);
	p = popen(cmd, "r");
	ASSERT_TRUE(p != NULL);
	while (len < sizeof(out) - 1 && fgets(out + len, sizeof(out) - len, p))
		len += strlen(out + len);
	status = pclose(p);
	out[len] = 0;
}

TEST(verbs_provider_example_exits_0)
{
	char copy[sizeof(out)];

	run_example();
	memcpy(copy, out, sizeof(out));
	for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n"))
		tap_diag("%s", line);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
}

TEST(verbs_provider_example_says_what_it_checked)
{
	run_example();
	ASSERT_TRUE(strstr(out, "monitor: kernel\n") != NULL);
	ASSERT_TRUE(strstr(out, "ok   write through the cached rkey") != NULL);
	ASSERT_TRUE(strstr(out, "ok   second get of the buffer is a hit") != NULL);
	ASSERT_TRUE(strstr(out, "revoked at the peer\nok   the old rkey") != NULL);
	ASSERT_TRUE(strstr(out, "ok   write lands in the new memory") != NULL);
	ASSERT_TRUE(strstr(out, "ok   1 hit, 1 invalidation, 3 registrations") != NULL);
	ASSERT_TRUE(strstr(out, "FAIL") == NULL);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
