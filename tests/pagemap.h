/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The page frame under an address, from /proc/self/pagemap: how tests tell
 * a translation the kernel changed on its own (a copy, compaction,
 * migration) from one that stayed.  Frames are visible to root only; an
 * unprivileged reader sees 0 for every page.
 */
#ifndef MAPWATCH_TEST_PAGEMAP_H
#define MAPWATCH_TEST_PAGEMAP_H

#include <stdint.h>
#include <unistd.h>

/* fd: /proc/self/pagemap (or /proc/PID/pagemap for another process's
 * address), open.  The frame, or 0 when the page is not present (moved
 * out) or its frame is hidden from this reader. */
static inline uint64_t pagemap_frame(int fd, const void *addr)
{
	uint64_t e = 0;

	if (pread(fd, &e, sizeof(e),
		  (off_t)((uintptr_t)addr / 4096 * sizeof(e))) != sizeof(e) ||
	    !(e >> 63))
		return 0;
	return e & ((1ULL << 55) - 1);
}

#endif
