// SPDX-License-Identifier: GPL-2.0-only
/*
 * libmapwatch as an optional dependency, loaded with dlopen() (libfabric's
 * hmem style): the names <mapwatch.h>'s ABI paragraph tells such a user to
 * look up are found by dlsym(), and the ones it says are not (the inline
 * wrappers' names, kept only as hidden MAPWATCH_1.0 versions for 1.0.0's
 * binaries) are not.  Review 2026-12-07 F19.  argv[1]: the library.
 */
#define _GNU_SOURCE
#include <dlfcn.h>

#include "tap.h"

static const char *lib = "libmapwatch.so.1";

static void *open_lib(void)
{
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);

	if (!h)
		tap_diag("dlopen(%s): %s", lib, dlerror());
	ASSERT_TRUE(h != NULL);
	return h;
}

TEST(dlsym_finds_the_documented_names)
{
	static const char *const names[] = {
		"mapwatch_open", "mapwatch_close", "mapwatch_watch",
		"mapwatch_unwatch", "mapwatch_changed_sync",
		"mapwatch_drain", "mapwatch_version",
		"mapwatch_get_stats_sized", "mapwatch_cache_create_sized",
		"mapwatch_cache_get_stats_sized",
		"mapwatch_cache_get_req_sized", "mapwatch_cache_get",
		"mapwatch_cache_put", "mapwatch_cache_destroy",
	};
	void *h = open_lib();

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		void *f = dlsym(h, names[i]);

		if (!f)
			tap_diag("dlsym(%s): %s", names[i], dlerror());
		ASSERT_TRUE(f != NULL);
	}
	dlclose(h);
}

TEST(dlsym_does_not_find_the_wrappers_names)
{
	static const char *const names[] = {
		"mapwatch_cache_create", "mapwatch_get_stats",
		"mapwatch_cache_get_stats",
	};
	void *h = open_lib();

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ASSERT_TRUE(dlsym(h, names[i]) == NULL);
		/* ... though 1.0.0's binaries still bind them. */
		ASSERT_TRUE(dlvsym(h, names[i], "MAPWATCH_1.0") != NULL);
	}
	dlclose(h);
}

/* dlsym(mapwatch_open) is MAPWATCH_1.3's (today's AUTO); 1.0.0's is
 * there for dlvsym. */
TEST(dlsym_open_is_the_default_version)
{
	void *h = open_lib();
	void *dflt = dlsym(h, "mapwatch_open");
	void *v13 = dlvsym(h, "mapwatch_open", "MAPWATCH_1.3");
	void *v10 = dlvsym(h, "mapwatch_open", "MAPWATCH_1.0");

	ASSERT_TRUE(dflt && v13 && v10);
	ASSERT_TRUE(dflt == v13);
	ASSERT_TRUE(v10 != v13);
	dlclose(h);
}

int main(int argc, char **argv)
{
	if (argc > 1 && argv[1][0] == '/') {
		lib = argv[1];
		argv[1] = argv[0];
		argc--, argv++;
	}
	return tap_main(argc, argv);
}
