// SPDX-License-Identifier: GPL-2.0-only
/*
 * libmapwatch over a module that answers like HPE's plain kdreg2 (issue 15
 * s.2 and s.4): our own mapwatch.ko reloaded with kdreg2_only=1 serves
 * /dev/kdreg2 alone and answers no extension ioctl (PROBE included).  The
 * library must tell it from mapwatch.ko, claim neither MAPWATCH_F_SYNC nor
 * MAPWATCH_F_ALL_CHANGES, refuse AUTO (AUTO_ANY says why), refuse external
 * invalidations, and never unmap the status area the module owns (nor the
 * application's page after it).  Every case runs in a child of its own
 * (tap.h), so no status area holds the module when it is reloaded; main()
 * reloads it as vm/run loaded it at the end, also when a case failed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>

#include "host/libtest.h"
#include "kdreg2.h"
#include "mapwatch_uapi.h"

static char kmod[PATH_MAX + 128];
static int reload(const char *args)
{
	char cmd[sizeof(kmod) + 128];

	snprintf(cmd, sizeof(cmd), "rmmod mapwatch && insmod %s %s", kmod, args);
	return system(cmd);
}

/* build/kernel/$(uname -r)/mapwatch.ko, from build/tests/guest/PROG. */
static void find_kmod(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	struct utsname u;

	if (n <= 0 || uname(&u))
		return;
	exe[n] = 0;
	for (int up = 0; up < 3; up++)
		*strrchr(exe, '/') = 0;
	snprintf(kmod, sizeof(kmod), "%s/kernel/%s/mapwatch.ko", exe, u.release);
}

static void restore(void)
{
	if (access("/dev/mapwatch", F_OK) && reload(""))
		fprintf(stderr, "kdreg2_only: could not reload mapwatch.ko\n");
}

static bool mapped(const void *p)
{
	return !msync((void *)((uintptr_t)p & ~(PAGE - 1)), PAGE, MS_ASYNC);
}

TEST(module_reloaded_as_plain_kdreg2)
{
	struct mapwatch_probe probe = { .size = sizeof(probe) };
	struct mapwatch_invalidate inv = { .size = sizeof(inv), .addr = PAGE,
					   .length = PAGE };
	int fd;

	if (getuid())
		NEED("root", "reloads the module");
	ASSERT_OK(access(kmod, R_OK));
	ASSERT_EQ(reload("kdreg2_only=1"), 0);
	ASSERT_ERRNO(access("/dev/mapwatch", F_OK), ENOENT);
	fd = open("/dev/kdreg2", O_RDWR);
	ASSERT_GE(fd, 0);
	ASSERT_BAD_INPUT("MAPWATCH_IOCTL_PROBE", "kdreg2_only=1",
			 ioctl(fd, MAPWATCH_IOCTL_PROBE, &probe), ENOTTY);
	ASSERT_BAD_INPUT("MAPWATCH_IOCTL_INVALIDATE", "kdreg2_only=1",
			 ioctl(fd, MAPWATCH_IOCTL_INVALIDATE, &inv), ENOTTY);
	close(fd);
}

TEST(library_claims_neither_sync_nor_all_changes)
{
	struct mapwatch *mw;
	struct mapwatch_handle h;
	const char *why = NULL;
	char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	ASSERT_EQ(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 16, &why), 0);
	EXPECT_EQ(mapwatch_features(mw) & (MAPWATCH_F_SYNC | MAPWATCH_F_ALL_CHANGES |
					   MAPWATCH_F_BATCH), 0);
	/* Still a working monitor, through the kdreg2 ioctls alone. */
	ASSERT_EQ(mapwatch_watch(mw, p, PAGE, 1, &h), 0);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_TRUE(mapwatch_changed(&h));
	ASSERT_BAD_INPUT("mapwatch_invalidate", "plain kdreg2 (kdreg2_only=1)",
			 neg(mapwatch_invalidate(mw, p + PAGE, PAGE)), EOPNOTSUPP);
	ASSERT_EQ(mapwatch_unwatch(mw, &h), 0);
	mapwatch_close(mw);
	/* AUTO wants the synchronous module; AUTO_ANY takes this, saying so. */
	ASSERT_EQ(mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO, 16, &why), -EOPNOTSUPP);
	tap_diag("auto: %s", why);
	ASSERT_TRUE(why && strstr(why, "kdreg2"));
	ASSERT_EQ(mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO_ANY, 16, &why), 0);
	tap_diag("auto-any: %s", why);
	ASSERT_TRUE(why && strstr(why, "MAPWATCH_F_SYNC"));
	ASSERT_EQ(mapwatch_backend(mw), MAPWATCH_BACKEND_KERNEL);
	mapwatch_close(mw);
	munmap(p + PAGE, PAGE);
}

/* 1000 watches: a status area of more than one page.  The library must
 * leave it (the module's) and the application's page after it alone. */
TEST(close_unmaps_nothing_the_module_owns)
{
	struct mapwatch *mw;
	struct mapwatch_handle h;
	char buf[64], *area, *sentinel;
	size_t size = (MAPWATCH_STATE_ARRAY_OFFSET + 1001 * 4 + PAGE - 1) & ~(PAGE - 1);

	/* Mappings go top-down: the area lands right below the page mapped
	 * last, the application's sentinel. */
	sentinel = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(sentinel != MAP_FAILED);
	strcpy(sentinel, "application data");
	ASSERT_EQ(mapwatch_open(&mw, MAPWATCH_BACKEND_KERNEL, 1000, NULL), 0);
	ASSERT_EQ(mapwatch_watch(mw, buf, sizeof(buf), 7, &h), 0);
	area = (char *)(h.word - h.slot) - MAPWATCH_STATE_ARRAY_OFFSET;
	ASSERT_EQ((uintptr_t)area % PAGE, 0);
	tap_diag("status area %p + %zu, sentinel %p%s", area, size, sentinel,
		 sentinel == area + size ? " (right after it)" : "");
	ASSERT_EQ(mapwatch_unwatch(mw, &h), 0);
	mapwatch_close(mw);
	EXPECT_TRUE(mapped(area));			/* left to the module */
	EXPECT_TRUE(mapped(area + size - 1));
	EXPECT_TRUE(mapped(sentinel));
	if (mapped(sentinel))
		EXPECT_EQ(strcmp(sentinel, "application data"), 0);
	munmap(sentinel, PAGE);
}

TEST(module_reloaded_as_mapwatch)
{
	struct mapwatch *mw;

	ASSERT_EQ(reload(""), 0);
	ASSERT_OK(access("/dev/mapwatch", F_OK));
	ASSERT_EQ(mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO, 16, NULL), 0);
	ASSERT_TRUE(mapwatch_features(mw) & MAPWATCH_F_SYNC);
	mapwatch_close(mw);
}

int main(int argc, char **argv)
{
	int ret;

	find_kmod();
	ret = tap_main(argc, argv);
	/* Each case ran in a child: the module is back as vm/run loaded it
	 * even when a case failed before the last one. */
	restore();
	return ret;
}
