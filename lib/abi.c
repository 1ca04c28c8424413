// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The library's version, and reading and writing the structs that grow
 * (include/mapwatch.h, "ABI").
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

unsigned int mapwatch_version(void)
{
	return MAPWATCH_VERSION_CODE(MAPWATCH_VERSION_MAJOR,
				     MAPWATCH_VERSION_MINOR,
				     MAPWATCH_VERSION_PATCH);
}

int mw_struct_in(void *dst, size_t ksize, const void *src, size_t usize,
		 size_t minsize)
{
	const unsigned char *extra = (const unsigned char *)src + ksize;

	if (usize < minsize)
		return -EINVAL;
	for (size_t i = 0; usize > ksize && i < usize - ksize; i++)
		if (extra[i])
			return -E2BIG;
	memset(dst, 0, ksize);
	memcpy(dst, src, usize < ksize ? usize : ksize);
	return 0;
}

void mw_struct_out(void *dst, size_t usize, const void *src, size_t ksize)
{
	memcpy(dst, src, usize < ksize ? usize : ksize);
	if (usize > ksize)
		memset((char *)dst + ksize, 0, usize - ksize);
}
