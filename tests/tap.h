/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A tiny TAP test harness in the spirit of the kernel's kselftest harness.
 *
 *   TEST(munmap_whole_region) { ... ASSERT_EQ(a, b); EXPECT_TRUE(c); }
 *   int main(int argc, char **argv) { return tap_main(argc, argv); }
 *
 * Every case runs in its own forked child, so a crash or a hang (per-case
 * alarm, TAP_TIMEOUT seconds, default 120) fails that case only.  ASSERT_*
 * ends the case, EXPECT_* records the failure and goes on, SKIP() ends it as
 * skipped (reported "# SKIP", never counted as passed).  `prog NAME...` runs
 * only the named cases; `prog -l` lists them.
 */
#ifndef MAPWATCH_TAP_H
#define MAPWATCH_TAP_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TAP_SKIP_EXIT 77
#define TAP_MAX_CASES 512

struct tap_case {
	const char *name;
	void (*fn)(void);
};

static struct tap_case tap_cases[TAP_MAX_CASES];
static int tap_ncases;
static int tap_case_failed;

static inline void tap_register(const char *name, void (*fn)(void))
{
	if (tap_ncases == TAP_MAX_CASES) {
		fprintf(stderr, "tap: too many cases\n");
		abort();
	}
	tap_cases[tap_ncases].name = name;
	tap_cases[tap_ncases++].fn = fn;
}

#define TEST(name)							\
	static void tap_test_##name(void);				\
	__attribute__((constructor)) static void tap_reg_##name(void)	\
	{ tap_register(#name, tap_test_##name); }			\
	static void tap_test_##name(void)

static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static inline void tap_fail(const char *file, int line, const char *what)
{
	int e = errno;

	tap_diag("%s:%d: failed: %s (errno %d: %s)", file, line, what, e,
		 strerror(e));
	tap_case_failed = 1;
}

#define TAP_CHECK(cond, text, fatal)					\
	do {								\
		if (!(cond)) {						\
			tap_fail(__FILE__, __LINE__, text);		\
			if (fatal)					\
				exit(1);				\
		}							\
	} while (0)

#define TAP_CMP(a, op, b, fatal)					\
	do {								\
		long long tap_a_ = (long long)(a);			\
		long long tap_b_ = (long long)(b);			\
		if (!(tap_a_ op tap_b_)) {				\
			tap_diag("%s:%d: %s = %lld, %s = %lld",		\
				 __FILE__, __LINE__, #a, tap_a_, #b, tap_b_); \
			tap_fail(__FILE__, __LINE__, #a " " #op " " #b); \
			if (fatal)					\
				exit(1);				\
		}							\
	} while (0)

#define ASSERT_TRUE(c)		TAP_CHECK((c), #c, 1)
#define ASSERT_FALSE(c)		TAP_CHECK(!(c), "!(" #c ")", 1)
#define EXPECT_TRUE(c)		TAP_CHECK((c), #c, 0)
#define EXPECT_FALSE(c)		TAP_CHECK(!(c), "!(" #c ")", 0)
#define ASSERT_EQ(a, b)		TAP_CMP(a, ==, b, 1)
#define ASSERT_NE(a, b)		TAP_CMP(a, !=, b, 1)
#define ASSERT_GE(a, b)		TAP_CMP(a, >=, b, 1)
#define ASSERT_GT(a, b)		TAP_CMP(a, >, b, 1)
#define ASSERT_LE(a, b)		TAP_CMP(a, <=, b, 1)
#define ASSERT_LT(a, b)		TAP_CMP(a, <, b, 1)
#define EXPECT_EQ(a, b)		TAP_CMP(a, ==, b, 0)
#define EXPECT_NE(a, b)		TAP_CMP(a, !=, b, 0)
#define EXPECT_GE(a, b)		TAP_CMP(a, >=, b, 0)
#define EXPECT_LE(a, b)		TAP_CMP(a, <=, b, 0)
/* A call that must fail with exactly this errno. */
#define ASSERT_ERRNO(call, err)						\
	do {								\
		errno = 0;						\
		long tap_r_ = (long)(call);				\
		int tap_e_ = errno;					\
		if (tap_r_ != -1 || tap_e_ != (err)) {			\
			tap_diag("%s:%d: %s returned %ld errno %d (%s), " \
				 "want -1 errno %d (%s)", __FILE__,	\
				 __LINE__, #call, tap_r_, tap_e_,	\
				 strerror(tap_e_), (err), strerror(err)); \
			tap_case_failed = 1;				\
			exit(1);					\
		}							\
	} while (0)
static inline const char *tap_errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EIO: return "EIO";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case ENOSPC: return "ENOSPC";
	case E2BIG: return "E2BIG";
	case ERANGE: return "ERANGE";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EBADSLT: return "EBADSLT";
	case EOVERFLOW: return "EOVERFLOW";
	case EMFILE: return "EMFILE";
	default: return strerror(e);
	}
}

/*
 * A bad input that must fail with exactly this errno; also logs it as
 * "# bad-input: ENTRY | INPUT | ERRNO" for tests/bad-input-table, which
 * builds tests/BAD_INPUT.md from a make check log.
 */
#define ASSERT_BAD_INPUT(entry, input, call, err)			\
	do {								\
		ASSERT_ERRNO(call, err);				\
		tap_diag("bad-input: %s | %s | %s", entry, input,	\
			 tap_errname(err));				\
	} while (0)
/* The same for a result that is not an errno (a per-entry status...). */
#define LOG_BAD_INPUT(entry, input, result)				\
	tap_diag("bad-input: %s | %s | %s", entry, input, result)
#define ASSERT_OK(call)							\
	do {								\
		errno = 0;						\
		long tap_r_ = (long)(call);				\
		if (tap_r_ < 0) {					\
			tap_fail(__FILE__, __LINE__, #call);		\
			exit(1);					\
		}							\
	} while (0)
#define SKIP(...)							\
	do {								\
		tap_diag("SKIP: " __VA_ARGS__);				\
		exit(TAP_SKIP_EXIT);					\
	} while (0)

/*
 * Is FEATURE one of the facilities the test guest was set up to have?
 * vm/run lists them in $MAPWATCH_GUEST_HAS (space-separated words: rxe,
 * numa2, kdreg2, tracefs, failslab, soft_dirty, thp, madv_collapse,
 * hugetlb, ksm, zram, memcg, soft_offline, io_uring, uffd_move, oom_reap).
 */
static inline int tap_guest_has(const char *feature)
{
	const char *has = getenv("MAPWATCH_GUEST_HAS");
	size_t n = strlen(feature);

	for (const char *p = has; p && *p; p += strspn(p, " ")) {
		size_t w = strcspn(p, " ");

		if (w == n && !strncmp(p, feature, n))
			return 1;
		p += w;
	}
	return 0;
}

/*
 * The case needs FEATURE and it is missing: a skip where nobody promised
 * it, a failure in a guest that vm/run set up to have it (Soft-RoCE that
 * did not come up there is a broken test set-up, not a reason to pass).
 */
#define NEED(feature, ...)						\
	do {								\
		if (tap_guest_has(feature)) {				\
			tap_diag("FAIL: the guest has " feature	\
				 " but: " __VA_ARGS__);			\
			exit(1);					\
		}							\
		SKIP(__VA_ARGS__);					\
	} while (0)

/* The integer in DIR/NAME (a sysfs counter or module parameter), or -1. */
static inline long long tap_read_ll(const char *dir, const char *name)
{
	char path[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static inline int tap_selected(int argc, char **argv, const char *name)
{
	if (argc < 2)
		return 1;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], name))
			return 1;
	return 0;
}

static inline int tap_main(int argc, char **argv)
{
	int n = 0, passed = 0, failed = 0, skipped = 0;
	unsigned int timeout = 120;
	const char *env = getenv("TAP_TIMEOUT");

	if (env)
		timeout = (unsigned int)atoi(env);
	if (argc == 2 && !strcmp(argv[1], "-l")) {
		for (int i = 0; i < tap_ncases; i++)
			printf("%s\n", tap_cases[i].name);
		return 0;
	}
	for (int i = 0; i < tap_ncases; i++)
		n += tap_selected(argc, argv, tap_cases[i].name);
	if (n == 0) {
		fprintf(stderr, "%s: no such test case\n", argv[0]);
		return 2;
	}
	printf("1..%d\n", n);
	fflush(stdout);
	n = 0;
	for (int i = 0; i < tap_ncases; i++) {
		const char *name = tap_cases[i].name;
		int status = 0;
		pid_t pid;

		if (!tap_selected(argc, argv, name))
			continue;
		n++;
		pid = fork();
		if (pid == 0) {
			setpgid(0, 0);
			alarm(timeout);
			tap_cases[i].fn();
			fflush(stdout);
			_exit(tap_case_failed ? 1 : 0);
		}
		if (pid < 0 || waitpid(pid, &status, 0) < 0) {
			perror("tap: fork/wait");
			return 2;
		}
		kill(-pid, SIGKILL);	/* leftovers of the case */
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			printf("ok %d %s\n", n, name);
			passed++;
		} else if (WIFEXITED(status) &&
			   WEXITSTATUS(status) == TAP_SKIP_EXIT) {
			printf("ok %d %s # SKIP\n", n, name);
			skipped++;
		} else {
			if (WIFSIGNALED(status))
				tap_diag("%s: killed by signal %d%s", name,
					 WTERMSIG(status),
					 WTERMSIG(status) == SIGALRM ?
					 " (timeout)" : "");
			printf("not ok %d %s\n", n, name);
			failed++;
		}
		fflush(stdout);
	}
	tap_diag("%d passed, %d failed, %d skipped", passed, failed, skipped);
	return failed ? 1 : 0;
}

#endif /* MAPWATCH_TAP_H */
