/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Which notifier events the module's default policy skips on the running
 * kernel: /sys/kernel/mapwatch/skipped_events, a subset of "protection_vma
 * protection_page soft_dirty".  The set differs by kernel (module/README.md,
 * module/SKIPPED-EVENTS.md): before 5.14 NUMA balancing moves a THP under a
 * PROTECTION_VMA range alone, so there mprotect is not skipped either.  A
 * test of a protection-only change asserts what this kernel promises: a
 * skipped event leaves the region unchanged and is counted, one that is not
 * skipped retires the region with its event.
 */
#ifndef MAPWATCH_TEST_SKIPPED_EVENTS_H
#define MAPWATCH_TEST_SKIPPED_EVENTS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The list, in @buf; false when there is none to read (no module loaded,
 * as on the host).
 */
static inline bool mw_skipped_events(char *buf, size_t len)
{
	FILE *f = fopen("/sys/kernel/mapwatch/skipped_events", "r");
	bool ok;

	if (!f)
		return false;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	return ok;
}

static inline bool mw_in_list(char *buf, const char *event)
{
	char *w, *save = NULL;
	bool found = false;

	for (w = strtok_r(buf, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
		found |= !strcmp(w, event);
	return found;
}

/*
 * Is @event ("protection_vma", ...) skipped by the default policy here?
 * Without the file (no module loaded) the caller fails: exit(1), which
 * fails a TAP case.
 */
static inline bool mw_skips(const char *event)
{
	char buf[128] = "";

	if (!mw_skipped_events(buf, sizeof(buf))) {
		printf("# cannot read /sys/kernel/mapwatch/skipped_events\n");
		fflush(stdout);
		exit(1);
	}
	return mw_in_list(buf, event);
}

#endif
