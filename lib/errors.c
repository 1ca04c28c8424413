// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The bottom layer: the per-thread last error and the argument checks
 * every watch entry point shares.  The backends (backend_kernel.c,
 * backend_uffd.c, user.c) and monitor.c call into this file; it calls
 * nothing of the library, so monitor.c, which opens the backends, sits
 * above them with no call going back up (internal.h, "Layers").
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

/* The last failure of this thread, and the monitor it was about: two
 * threads failing at once each read their own. */
static __thread struct {
	const struct mapwatch *mw;
	char text[200];
} last_err;

void mw_seterr(struct mapwatch *mw, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_err.text, sizeof(last_err.text), fmt, ap);
	va_end(ap);
	last_err.mw = mw;
}

const char *mw_last_error(const struct mapwatch *mw)
{
	return last_err.mw == mw && last_err.text[0] ? last_err.text : NULL;
}

int mw_check_range(struct mapwatch *mw, const void *addr, size_t len,
		   uint64_t cookie)
{
	if (!len || cookie == MAPWATCH_COOKIE_RANGE ||
	    (uintptr_t)addr + len - 1 < (uintptr_t)addr) {
		mw_seterr(mw, "watch: empty or wrapping range, or reserved cookie");
		return -EINVAL;
	}
	return 0;
}
