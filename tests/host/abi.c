// SPDX-License-Identifier: GPL-2.0-only
/*
 * The structs that grow (include/mapwatch.h, "ABI"), seen from a caller
 * whose header is newer or older than the library: a longer struct is
 * accepted when its unknown tail is zero and refused (E2BIG) otherwise, a
 * shorter one reads as if its missing fields were zero, output structs
 * are filled to the caller's size.  And the version macros and
 * mapwatch_version().  tests/abi/ runs real old-header programs.
 */
#include "host/libtest.h"

#define BASE ((char *)0x100000000000UL)

static void *reg(void *ctx, void *addr, size_t len, int flags)
{
	(void)ctx, (void)len, (void)flags;
	return addr;
}

static void dereg(void *ctx, void *r)
{
	(void)ctx, (void)r;
}

/* A struct as a newer header may declare it: ours, then more fields. */
struct newer_config {
	struct mapwatch_cache_config cfg;
	uint64_t future;
};

struct newer_ops {
	struct mapwatch_cache_ops ops;
	void (*future)(void);
};

TEST(version_matches_header)
{
	unsigned int v = mapwatch_version();

	tap_diag("mapwatch_version() = %u.%u.%u, header %d.%d.%d", v >> 16,
		 (v >> 8) & 0xff, v & 0xff, MAPWATCH_VERSION_MAJOR,
		 MAPWATCH_VERSION_MINOR, MAPWATCH_VERSION_PATCH);
	ASSERT_EQ(v, MAPWATCH_VERSION_CODE(MAPWATCH_VERSION_MAJOR,
					   MAPWATCH_VERSION_MINOR,
					   MAPWATCH_VERSION_PATCH));
	ASSERT_TRUE(MAPWATCH_CHECK_VERSION(1, 0, 0));
	ASSERT_TRUE(MAPWATCH_CHECK_VERSION(MAPWATCH_VERSION_MAJOR,
					   MAPWATCH_VERSION_MINOR, 0));
	ASSERT_FALSE(MAPWATCH_CHECK_VERSION(MAPWATCH_VERSION_MAJOR + 1, 0, 0));
	ASSERT_TRUE(MAPWATCH_VERSION_CODE(1, 2, 3) > MAPWATCH_VERSION_CODE(1, 1, 9));
}

TEST(newer_config_with_zero_tail_accepted)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 8);
	struct mapwatch_cache_ops ops = { .reg = reg, .dereg = dereg };
	struct newer_config n = { .cfg = { .max_entries = 1 } };
	struct newer_ops no = { .ops = ops };
	struct mapwatch_cache *c;

	c = mapwatch_cache_create_sized(mw, &no.ops, sizeof(no), &n.cfg,
					sizeof(n));
	ASSERT_TRUE(c != NULL);
	mapwatch_cache_put(c, mapwatch_cache_get(c, BASE, 1, 0));
	mapwatch_cache_put(c, mapwatch_cache_get(c, BASE + PAGE, 1, 0));
	struct mapwatch_cache_stats s;

	ASSERT_EQ(mapwatch_cache_get_stats(c, &s), 0);
	EXPECT_EQ(s.entries, 1);	/* max_entries was read */
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

TEST(newer_struct_with_unknown_field_refused)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 8);
	struct mapwatch_cache_ops ops = { .reg = reg, .dereg = dereg };
	struct newer_config n = { .future = 1 };
	struct newer_ops no = { .ops = ops, .future = (void (*)(void))dereg };

	ASSERT_BAD_INPUT("mapwatch_cache_create_sized", "config with an unknown non-zero field",
			 nul(mapwatch_cache_create_sized(mw, &ops, sizeof(ops),
							 &n.cfg, sizeof(n))), E2BIG);
	ASSERT_BAD_INPUT("mapwatch_cache_create_sized", "ops with an unknown non-NULL callback",
			 nul(mapwatch_cache_create_sized(mw, &no.ops, sizeof(no),
							 NULL, 0)), E2BIG);
	mapwatch_close(mw);
}

TEST(struct_shorter_than_first_release_refused)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 8);
	struct mapwatch_cache_ops ops = { .reg = reg, .dereg = dereg };
	struct mapwatch_cache_config cfg = { 0 };

	ASSERT_BAD_INPUT("mapwatch_cache_create_sized", "ops size 8",
			 nul(mapwatch_cache_create_sized(mw, &ops, 8, NULL, 0)),
			 EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_create_sized", "config size 0",
			 nul(mapwatch_cache_create_sized(mw, &ops, sizeof(ops),
							 &cfg, 0)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_create_sized", "NULL ops",
			 nul(mapwatch_cache_create_sized(mw, NULL, sizeof(ops),
							 NULL, 0)), EINVAL);
	mapwatch_close(mw);
}

TEST(output_structs_filled_to_callers_size)
{
	struct mapwatch *mw = open_backend(MAPWATCH_BACKEND_MANUAL, 8);
	struct mapwatch_cache_ops ops = { .reg = reg, .dereg = dereg };
	struct mapwatch_cache *c = mapwatch_cache_create(mw, &ops, NULL);
	struct mapwatch_handle h;
	unsigned char buf[sizeof(struct mapwatch_cache_stats) + 64];
	struct mapwatch_stats *ms = (void *)buf;
	struct mapwatch_cache_stats *cs = (void *)buf;

	ASSERT_TRUE(c != NULL);
	ASSERT_EQ(mapwatch_watch(mw, BASE, PAGE, 1, &h), 0);
	/* Longer than the library's: the tail is zeroed. */
	memset(buf, 0xa5, sizeof(buf));
	ASSERT_EQ(mapwatch_get_stats_sized(mw, ms, sizeof(buf)), 0);
	EXPECT_EQ(ms->watched, 1);
	for (size_t i = sizeof(*ms); i < sizeof(buf); i++)
		ASSERT_EQ(buf[i], 0);
	/* Shorter: nothing past it is touched. */
	memset(buf, 0xa5, sizeof(buf));
	ASSERT_EQ(mapwatch_get_stats_sized(mw, ms, sizeof(uint64_t)), 0);
	EXPECT_EQ(ms->watched, 1);
	for (size_t i = sizeof(uint64_t); i < sizeof(buf); i++)
		ASSERT_EQ(buf[i], 0xa5);
	mapwatch_cache_put(c, mapwatch_cache_get(c, BASE, 1, 0));
	memset(buf, 0xa5, sizeof(buf));
	ASSERT_EQ(mapwatch_cache_get_stats_sized(c, cs, 2 * sizeof(uint64_t)), 0);
	EXPECT_EQ(cs->hits, 0);
	EXPECT_EQ(cs->misses, 1);
	for (size_t i = 2 * sizeof(uint64_t); i < sizeof(buf); i++)
		ASSERT_EQ(buf[i], 0xa5);
	memset(buf, 0xa5, sizeof(buf));
	ASSERT_EQ(mapwatch_cache_get_stats_sized(c, cs, sizeof(buf)), 0);
	EXPECT_EQ(cs->entries, 1);
	for (size_t i = sizeof(*cs); i < sizeof(buf); i++)
		ASSERT_EQ(buf[i], 0);
	ASSERT_BAD_INPUT("mapwatch_cache_get_stats_sized", "NULL stats",
			 neg(mapwatch_cache_get_stats_sized(c, NULL, 8)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_get_stats_sized", "NULL monitor",
			 neg(mapwatch_get_stats_sized(NULL, ms, 8)), EINVAL);
	mapwatch_cache_destroy(c);
	mapwatch_close(mw);
}

/* mapwatch(7), "Errors": int functions return -errno, pointer functions
 * NULL with errno, the rest answer "nothing"; here for NULL objects. */
TEST(errno_convention_for_null_objects)
{
	struct mapwatch_handle h = { 0 };
	struct mapwatch_event ev;
	struct mapwatch_stats ms;
	struct mapwatch_cache_stats cs;
	struct mapwatch_watch_req req = { .addr = BASE, .len = 1, .cookie = 1 };
	struct mapwatch_cache_ops ops = { .reg = reg, .dereg = dereg };

	ASSERT_BAD_INPUT("mapwatch_watch", "NULL monitor",
			 neg(mapwatch_watch(NULL, BASE, 1, 1, &h)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_unwatch", "NULL monitor",
			 neg(mapwatch_unwatch(NULL, &h)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_watch_batch", "NULL monitor",
			 neg(mapwatch_watch_batch(NULL, &req, 1)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_unwatch_batch", "NULL monitor",
			 neg(mapwatch_unwatch_batch(NULL, &h, 1, NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_read_events", "NULL monitor",
			 neg(mapwatch_read_events(NULL, &ev, 1)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_drain", "NULL monitor",
			 neg(mapwatch_drain(NULL, collect, NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_fd", "NULL monitor", neg(mapwatch_fd(NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_invalidate", "NULL monitor",
			 neg(mapwatch_invalidate(NULL, BASE, 1)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_get_stats", "NULL monitor",
			 neg(mapwatch_get_stats(NULL, &ms)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_get_stats", "NULL cache",
			 neg(mapwatch_cache_get_stats(NULL, &cs)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_create", "NULL monitor",
			 nul(mapwatch_cache_create(NULL, &ops, NULL)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_get", "NULL cache",
			 nul(mapwatch_cache_get(NULL, BASE, 1, 0)), EINVAL);
	ASSERT_BAD_INPUT("mapwatch_cache_get_arg", "NULL cache",
			 nul(mapwatch_cache_get_arg(NULL, BASE, 1, 0, NULL)), EINVAL);
	/* Cannot fail: nothing done, "nothing" answered. */
	mapwatch_close(NULL);
	mapwatch_cache_put(NULL, NULL);
	mapwatch_cache_hold(NULL, NULL);
	mapwatch_cache_flush(NULL);
	mapwatch_cache_destroy(NULL);
	EXPECT_FALSE(mapwatch_pending(NULL));
	EXPECT_EQ(mapwatch_features(NULL), 0);
	EXPECT_EQ(mapwatch_backend(NULL), MAPWATCH_BACKEND_AUTO);
	EXPECT_TRUE(strlen(mapwatch_strerror(NULL)) > 0);
	EXPECT_TRUE(mapwatch_cache_entry_reg(NULL) == NULL);
	EXPECT_TRUE(mapwatch_cache_entry_addr(NULL) == NULL);
	EXPECT_EQ(mapwatch_cache_entry_len(NULL), 0);
	EXPECT_TRUE(mapwatch_cache_entry_data(NULL) == NULL);
	EXPECT_TRUE(mapwatch_cache_entry_changed(NULL));
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
