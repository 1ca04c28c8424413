// SPDX-License-Identifier: GPL-2.0-only
/*
 * A program built against TODAY's <mapwatch.h> and linked against the
 * shared library (tests/packaging, abi_auto_meaning): its mapwatch_open is
 * the current default version, whose MAPWATCH_BACKEND_AUTO never settles
 * below MAPWATCH_F_SYNC, so without the module it fails and says what is
 * missing; AUTO_ANY is how today's programs accept userfaultfd.  The other
 * half of review 2026-12-07 F17 (client.c has the old headers' half).
 */
#define _GNU_SOURCE
#include <sys/stat.h>

#include <mapwatch.h>
#include "tap.h"

TEST(auto_without_module_refuses)
{
	struct mapwatch *mw = NULL;
	const char *why = NULL;
	struct stat st;
	int r;

	if (!stat("/dev/mapwatch", &st) || !stat("/dev/kdreg2", &st))
		SKIP("a module is loaded here");
	r = mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO, 16, &why);
	tap_diag("mapwatch_open(AUTO): %d, why: %s", r, why ? why : "(null)");
	ASSERT_NE(r, 0);
	ASSERT_TRUE(mw == NULL);
	ASSERT_TRUE(why && strstr(why, "MAPWATCH_BACKEND_AUTO_ANY"));
}

TEST(auto_any_without_module_falls_back)
{
	struct mapwatch *mw = NULL;
	const char *why = NULL;
	struct stat st;

	if (!stat("/dev/mapwatch", &st) || !stat("/dev/kdreg2", &st))
		SKIP("a module is loaded here");
	ASSERT_EQ(mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO_ANY, 16, &why), 0);
	tap_diag("AUTO_ANY: %s", why ? why : "(null)");
	ASSERT_EQ(mapwatch_backend(mw), MAPWATCH_BACKEND_USERFAULTFD);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
