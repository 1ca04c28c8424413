/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The page frame under an address, from /proc/self/pagemap: how tests tell
 * a translation the kernel changed on its own (a copy, compaction,
 * migration) from one that stayed.  Frames are visible to root only; an
 * unprivileged reader sees 0 for every page.  And whether a THP maps it,
 * from /proc/self/smaps.
 */
#ifndef MAPWATCH_TEST_PAGEMAP_H
#define MAPWATCH_TEST_PAGEMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
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

/* AnonHugePages (kB, PMD-mapped THP) of the VMA holding @addr, from
 * /proc/self/smaps; -1 when no VMA holds it or smaps cannot be read. */
static inline long smaps_anon_huge_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

#endif
