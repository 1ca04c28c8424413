// SPDX-License-Identifier: GPL-2.0-only
/*
 * What one user may hold, and the module parameters' bounds.  The device is
 * 0666 and every other limit is per fd, so max_user_regions bounds the
 * regions one user (real uid) has monitored over all its fds: MONITOR past
 * it gives ENOSPC, root can raise it at run time, and retiring, unmonitoring
 * or closing gives the charge back.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "mapwatch_uapi.h"
#include "module_state.h"
#include "tap.h"

#define PAGE 4096UL
#define PARAM MW_PARAM_DIR
#define NOBODY 65534
#define BUDGET 3000
#define FDS 4

/* Monitor one page of @mem under @cookie: 0 or the errno. */
static int watch(int fd, const char *mem, uint64_t cookie)
{
	struct kdreg2_ioctl_monitor m = { .addr = mem, .length = PAGE,
					  .cookie = cookie };

	return ioctl(fd, KDREG2_IOCTL_MONITOR, &m) ? errno : 0;
}

/* Monitor @n regions (cookies from @c0) with MONITOR_BATCH: successes. */
static long watch_many(int fd, const char *mem, uint64_t c0, uint32_t n)
{
	static struct mapwatch_monitor_entry e[4096];
	struct mapwatch_batch b = { .size = sizeof(b), .count = n,
				    .entry_size = sizeof(e[0]),
				    .entries = (uintptr_t)e };

	for (uint32_t i = 0; i < n; i++)
		e[i] = (struct mapwatch_monitor_entry){
			.addr = (uintptr_t)mem, .length = PAGE,
			.cookie = c0 + i };
	return ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b);
}

static int open_cfg(size_t max)
{
	struct kdreg2_config_data c = { .max_regions = max };
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC);

	if (fd < 0 || ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c))
		return -1;
	return fd;
}

/* The unprivileged part: real and effective uid nobody, saved uid root. */
static void as_nobody(void)
{
	char *a = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *b = a + PAGE;
	long n = 0;
	int fd[FDS];

	ASSERT_TRUE(a != MAP_FAILED);
	a[0] = b[0] = 1;
	ASSERT_OK(setresgid(NOBODY, NOBODY, 0));
	ASSERT_OK(setresuid(NOBODY, NOBODY, 0));
	ASSERT_EQ(getuid(), NOBODY);
	/* Every fd could take 1000 regions: the user as a whole BUDGET. */
	for (int i = 0; i < FDS; i++) {
		fd[i] = open_cfg(1000);
		ASSERT_TRUE(fd[i] >= 0);
		n += watch_many(fd[i], a, (uint64_t)i << 32, 1000);
	}
	ASSERT_EQ(n, BUDGET);
	ASSERT_BAD_INPUT("MONITOR", "beyond max_user_regions over all fds",
			 ioctl(fd[FDS - 1], KDREG2_IOCTL_MONITOR,
			       &(struct kdreg2_ioctl_monitor){
				       .addr = b, .length = PAGE,
				       .cookie = 7 }), ENOSPC);
	/* Regions retired by a change give their charge back. */
	ASSERT_OK(munmap(a, PAGE));
	ASSERT_EQ(watch_many(fd[FDS - 1], b, 1, 1000), 1000);
	/* Root raises the budget at run time: 500 more, not one beyond. */
	ASSERT_OK(seteuid(0));
	ASSERT_EQ(write_param_ll("max_user_regions", BUDGET + 500), 0);
	ASSERT_OK(seteuid(NOBODY));
	n = 0;
	for (int i = 0; i < FDS - 1; i++)
		n += watch_many(fd[i], b, 1, 1000);
	ASSERT_EQ(n, BUDGET + 500 - 1000);
	/* Nothing leaks: closed fds give everything back. */
	for (int i = 0; i < FDS; i++)
		ASSERT_OK(close(fd[i]));
	fd[0] = open_cfg(BUDGET + 501);
	ASSERT_TRUE(fd[0] >= 0);
	ASSERT_EQ(watch_many(fd[0], b, 1, BUDGET + 500), BUDGET + 500);
	ASSERT_EQ(watch(fd[0], b, 1000000), ENOSPC);
	ASSERT_OK(close(fd[0]));
}

TEST(user_budget_over_all_fds)
{
	long long old = tap_read_ll(PARAM, "max_user_regions");
	int status;
	pid_t pid;

	ASSERT_GT(old, 0);
	ASSERT_EQ(write_param_ll("max_user_regions", BUDGET), 0);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		as_nobody();
		_exit(tap_case_failed);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(write_param_ll("max_user_regions", old), 0);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Another user is not charged for nobody's regions. */
TEST(user_budget_is_per_user)
{
	long long old = tap_read_ll(PARAM, "max_user_regions");
	char *mem = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int go[2], done[2], status, fd;
	char c;
	pid_t pid;

	ASSERT_GT(old, 0);
	ASSERT_TRUE(mem != MAP_FAILED);
	ASSERT_OK(pipe(go));
	ASSERT_OK(pipe(done));
	ASSERT_EQ(write_param_ll("max_user_regions", 100), 0);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		int cfd;

		if (setresgid(NOBODY, NOBODY, NOBODY) ||
		    setresuid(NOBODY, NOBODY, NOBODY))
			_exit(2);
		cfd = open_cfg(200);
		if (cfd < 0 || watch_many(cfd, mem, 1, 100) != 100 ||
		    watch(cfd, mem, 500) != ENOSPC)
			_exit(3);
		if (write(done[1], "x", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(4);
		_exit(0);
	}
	ASSERT_EQ(read(done[0], &c, 1), 1);
	/* nobody is at its budget; root has all of its own. */
	fd = open_cfg(200);
	ASSERT_TRUE(fd >= 0);
	EXPECT_EQ(watch_many(fd, mem, 1, 100), 100);
	EXPECT_EQ(watch(fd, mem, 500), ENOSPC);
	ASSERT_EQ(write(go[1], "g", 1), 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(write_param_ll("max_user_regions", old), 0);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A write outside a parameter's range fails and changes nothing. */
TEST(parameters_are_bounded)
{
	static const struct {
		const char *name;
		long long max;
	} p[] = {
		{ "max_regions_limit", 1LL << 26 },
		{ "max_pending_events", 1LL << 24 },
		{ "max_user_regions", 1LL << 30 },
	};

	for (unsigned int i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
		long long old = tap_read_ll(PARAM, p[i].name);

		ASSERT_GE(old, 0);
		EXPECT_EQ(write_param_ll(p[i].name, p[i].max + 1), EINVAL);
		EXPECT_EQ(write_param(p[i].name, "-1"), EINVAL);
		EXPECT_EQ(write_param(p[i].name, "18446744073709551615"),
			  EINVAL);
		EXPECT_EQ(write_param(p[i].name, "lots"), EINVAL);
		EXPECT_EQ(tap_read_ll(PARAM, p[i].name), old);
		LOG_BAD_INPUT(p[i].name, "above its bound, negative, text",
			      "EINVAL");
		EXPECT_EQ(write_param_ll(p[i].name, p[i].max), 0);
		EXPECT_EQ(tap_read_ll(PARAM, p[i].name), p[i].max);
		ASSERT_EQ(write_param_ll(p[i].name, old), 0);
	}
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
