// SPDX-License-Identifier: GPL-2.0-only
/*
 * A stand-in for release 1.0.0's libmapwatch.so.1, which had no symbol
 * versions: tests/packaging links client.c (built against mapwatch-1.0.h)
 * with this, so the program's references are unversioned exactly as those
 * of a program linked in 1.0.0's day, then runs it against today's
 * library.  Only the names matter; nothing here is ever called.
 */
#define F(name) void name(void); void name(void) {}
F(mapwatch_open) F(mapwatch_close) F(mapwatch_backend) F(mapwatch_features)
F(mapwatch_backend_name) F(mapwatch_strerror) F(mapwatch_watch)
F(mapwatch_unwatch) F(mapwatch_watch_batch) F(mapwatch_unwatch_batch)
F(mapwatch_read_events) F(mapwatch_drain) F(mapwatch_pending) F(mapwatch_fd)
F(mapwatch_get_stats) F(mapwatch_invalidate) F(mapwatch_cache_create)
F(mapwatch_cache_destroy) F(mapwatch_cache_get) F(mapwatch_cache_put)
F(mapwatch_cache_entry_reg) F(mapwatch_cache_entry_addr)
F(mapwatch_cache_entry_len) F(mapwatch_cache_entry_changed)
F(mapwatch_cache_flush) F(mapwatch_cache_get_stats)
