// SPDX-License-Identifier: GPL-2.0-only
/*
 * A 32-bit process (built with -m32, run on the 64-bit guest kernel).  The
 * kdreg2 structs hold size_t and pointers and the module does no compat
 * translation, so it refuses 32-bit callers at open, cleanly, rather than
 * serve the extension ioctls while the kdreg2 ones fail with ENOTTY.
 */
#include <fcntl.h>

#include "mapwatch_uapi.h"
#include "tap.h"

TEST(open_from_32bit_is_refused)
{
	ASSERT_EQ(sizeof(void *), 4);
	ASSERT_BAD_INPUT("open", "from a 32-bit process",
			 open(MAPWATCH_DEVICE_NAME, O_RDWR), EOPNOTSUPP);
	ASSERT_ERRNO(open(KDREG2_DEVICE_NAME, O_RDWR), EOPNOTSUPP);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
