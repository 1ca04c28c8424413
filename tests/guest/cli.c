// SPDX-License-Identifier: GPL-2.0-only
/*
 * The mapwatch CLI (build/tools/mapwatch) against the loaded module: status,
 * check and top, text and --json (each JSON document parsed), top finding
 * this process's own fd with the right counters, an inherited fd marked
 * with its owner, and the examples/ programs on the kernel backend.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "kdreg2.h"
#include "mapwatch.h"
#include "mapwatch_uapi.h"
#include "tap.h"

#define PAGE 4096UL

static char tooldir[PATH_MAX];	/* build/ */

static void find_build_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	ASSERT_GT(n, 0);
	exe[n] = '\0';
	/* build/tests/guest/cli -> build */
	snprintf(tooldir, sizeof(tooldir), "%s/../..", dirname(exe));
}

/* Run `TOOL ARGS` (TOOL under build/), capture stdout (and stderr when
 * merge), return the exit status. */
static int run(char *out, size_t size, bool merge, const char *tool,
	       const char *args)
{
	char cmd[PATH_MAX + 512];
	size_t used = 0;
	FILE *p;
	int st;

	if (!tooldir[0])
		find_build_dir();
	snprintf(cmd, sizeof(cmd), "%s/%s %s%s", tooldir, tool, args,
		 merge ? " 2>&1" : "");
	fflush(stdout);
	p = popen(cmd, "r");
	ASSERT_TRUE(p != NULL);
	while (used + 1 < size) {
		size_t n = fread(out + used, 1, size - 1 - used, p);

		if (!n)
			break;
		used += n;
	}
	out[used] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* --- a small JSON syntax checker ---------------------------------------- */

static const char *json_value(const char *s);

static const char *ws(const char *s)
{
	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		s++;
	return s;
}

static const char *json_string(const char *s)
{
	if (*s++ != '"')
		return NULL;
	while (*s && *s != '"') {
		if ((unsigned char)*s < 0x20)
			return NULL;
		if (*s == '\\') {
			s++;
			if (*s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)s[i]))
						return NULL;
				s += 4;
			} else if (!strchr("\"\\/bfnrt", *s)) {
				return NULL;
			}
		}
		s++;
	}
	return *s == '"' ? s + 1 : NULL;
}

static const char *json_value(const char *s)
{
	s = ws(s);
	if (*s == '{' || *s == '[') {
		char close = *s == '{' ? '}' : ']';

		s = ws(s + 1);
		if (*s == close)
			return s + 1;
		for (;;) {
			if (close == '}') {
				s = json_string(ws(s));
				if (!s)
					return NULL;
				s = ws(s);
				if (*s++ != ':')
					return NULL;
			}
			s = json_value(s);
			if (!s)
				return NULL;
			s = ws(s);
			if (*s == close)
				return s + 1;
			if (*s++ != ',')
				return NULL;
		}
	}
	if (*s == '"')
		return json_string(s);
	if (!strncmp(s, "true", 4) || !strncmp(s, "null", 4))
		return s + 4;
	if (!strncmp(s, "false", 5))
		return s + 5;
	if (*s == '-' || isdigit((unsigned char)*s)) {
		char *end;

		strtod(s, &end);
		return end;
	}
	return NULL;
}

/* One JSON document per line, each valid. */
static bool json_lines_valid(const char *text, int *docs)
{
	const char *s = text;

	*docs = 0;
	while (*(s = ws(s))) {
		s = json_value(s);
		if (!s)
			return false;
		(*docs)++;
	}
	return true;
}

#define ASSERT_JSON(text, ndocs)					\
	do {								\
		int docs_;						\
		if (!json_lines_valid(text, &docs_))			\
			tap_diag("not JSON: %s", text);			\
		ASSERT_TRUE(json_lines_valid(text, &docs_));		\
		ASSERT_EQ(docs_, ndocs);				\
	} while (0)

#define ASSERT_HAS(text, needle)					\
	do {								\
		if (!strstr(text, needle))				\
			tap_diag("missing '%s' in: %s", needle, text);	\
		ASSERT_TRUE(strstr(text, needle) != NULL);		\
	} while (0)

/* A numeric field of the JSON object starting at obj (compact output). */
static long long field(const char *obj, const char *name)
{
	char key[64];
	const char *p, *end = strchr(obj, '}');

	snprintf(key, sizeof(key), "\"%s\":", name);
	p = strstr(obj, key);
	if (!p || (end && p > end))
		return -1;
	return strtoll(p + strlen(key), NULL, 10);
}

/* The fd object of `top --json` for pid/fd, or NULL. */
static const char *top_entry(const char *json, int pid, int fd)
{
	char key[64];
	const char *p = json;

	snprintf(key, sizeof(key), "{\"pid\":%d,", pid);
	while ((p = strstr(p, key))) {
		if (field(p, "fd") == fd)
			return p;
		p++;
	}
	return NULL;
}

/* An fd with a status area, `regions` monitored pages of which `unmapped`
 * were unmapped again (their events left pending). */
static int open_with_regions(int regions, int unmapped)
{
	struct kdreg2_config_data cfg = { .max_regions = 64 };
	int fd = open("/dev/mapwatch", O_RDWR | O_CLOEXEC);

	ASSERT_GE(fd, 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &cfg));
	for (int i = 0; i < regions; i++) {
		char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct kdreg2_ioctl_monitor m = {
			.addr = p, .length = PAGE, .cookie = 100 + i,
		};

		ASSERT_TRUE(p != MAP_FAILED);
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
		if (i < unmapped)
			ASSERT_OK(munmap(p, PAGE));
	}
	return fd;
}

static char out[1 << 20];

/* Multi-line output as TAP diagnostics, every line behind "# ". */
static void diag_lines(const char *text)
{
	while (*text) {
		int len = (int)strcspn(text, "\n");

		tap_diag("%.*s", len, text);
		text += len;
		if (*text)
			text++;
	}
}

TEST(status_text)
{
	char want[128], ver[64] = "";
	FILE *f = fopen("/sys/module/mapwatch/version", "r");

	ASSERT_TRUE(f != NULL);
	ASSERT_TRUE(fgets(ver, sizeof(ver), f) != NULL);
	fclose(f);
	ver[strcspn(ver, "\n")] = '\0';
	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch", "status"), 0);
	diag_lines(out);
	snprintf(want, sizeof(want), "module:      loaded, version %s", ver);
	ASSERT_HAS(out, want);
	ASSERT_HAS(out, "/dev/mapwatch  char mode 0666");
	ASSERT_HAS(out, "served by mapwatch");
	ASSERT_HAS(out, "abi:         version 1, features: status_ext batch policy invalidate reasons");
	ASSERT_HAS(out, "max_pending_events");
	ASSERT_HAS(out, "max_regions_limit");
	ASSERT_HAS(out, "kdreg2_alias");
	ASSERT_HAS(out, "contexts");
}

/* Issue 15: which backend a process uses, kernel from its fd's fdinfo,
 * userfaultfd from libmapwatch's reader thread (named mapwatch-uffd). */
TEST(status_shows_each_process_backend)
{
	struct mapwatch *k, *u = NULL;
	struct mapwatch_handle h;
	char want[160], *line;
	char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int r;

	ASSERT_TRUE(p != MAP_FAILED);
	ASSERT_EQ(mapwatch_open(&k, MAPWATCH_BACKEND_KERNEL, 16, NULL), 0);
	ASSERT_EQ(mapwatch_watch(k, p, PAGE, 1, &h), 0);
	r = mapwatch_open(&u, MAPWATCH_BACKEND_USERFAULTFD, 16, NULL);
	if (r)
		tap_diag("no userfaultfd monitor here (%d): kernel only", r);
	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch", "status"), 0);
	diag_lines(out);
	snprintf(want, sizeof(want), "\n  %7d ", getpid());
	line = strstr(out, want);
	ASSERT_TRUE(line != NULL);
	line++;
	line[strcspn(line, "\n")] = 0;
	ASSERT_TRUE(strstr(line, " kernel (1 fd, 1 regions)") != NULL);
	EXPECT_EQ(!!strstr(line, "userfaultfd (reader thread mapwatch-uffd"), !r);
	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch", "status --json"), 0);
	snprintf(want, sizeof(want), "{\"pid\":%d,", getpid());
	line = strstr(out, want);
	ASSERT_TRUE(line != NULL);
	{
		const char *b = !r ? "\"backends\":[\"kernel\",\"userfaultfd\"]" :
				     "\"backends\":[\"kernel\"]";

		line = strstr(line, "\"backends\":");
		ASSERT_TRUE(line && !strncmp(line, b, strlen(b)));
	}
	mapwatch_close(u);
	mapwatch_unwatch(k, &h);
	mapwatch_close(k);
	/* Gone: no row for this process any more. */
	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch", "status"), 0);
	snprintf(want, sizeof(want), "\n  %7d ", getpid());
	ASSERT_TRUE(strstr(out, want) == NULL);
	munmap(p, PAGE);
}

TEST(status_json)
{
	int fd = open_with_regions(2, 0);
	const char *c;

	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch", "status --json"), 0);
	diag_lines(out);
	ASSERT_JSON(out, 1);
	ASSERT_HAS(out, "\"loaded\":true");
	ASSERT_HAS(out, "\"abi_version\":1");
	ASSERT_HAS(out, "\"features\":[\"status_ext\",\"batch\",\"policy\",\"invalidate\",\"reasons\"]");
	ASSERT_HAS(out, "{\"path\":\"/dev/mapwatch\",\"present\":true,\"char_device\":true,"
		   "\"mode\":\"0666\"");
	ASSERT_HAS(out, "\"served_by\":\"mapwatch\"");
	ASSERT_HAS(out, "\"parameters\":{\"kdreg2_alias\":\"Y\",\"kdreg2_only\":\"N\","
		   "\"max_pending_events\":");
	ASSERT_HAS(out, "\"users\":[{\"pid\":");
	/* This process's context and its two regions are counted. */
	c = strstr(out, "\"counters\":{");
	ASSERT_TRUE(c != NULL);
	ASSERT_GE(field(c, "contexts"), 1);
	ASSERT_GE(field(c, "regions"), 2);
	close(fd);
}

TEST(check_passes)
{
	int rc = run(out, sizeof(out), true, "tools/mapwatch", "check");

	diag_lines(out);
	ASSERT_EQ(rc, 0);
	ASSERT_HAS(out, "mapwatch check: PASS");
	ASSERT_TRUE(strstr(out, "FAIL") == NULL);
	ASSERT_HAS(out, "ok   munmap: kdreg2_mapping_changed() true when munmap() returned");
	ASSERT_HAS(out, "ok   event: MAPPING_CHANGE for cookie");
}

TEST(check_json)
{
	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch", "check --json"), 0);
	ASSERT_JSON(out, 1);
	ASSERT_HAS(out, "\"passed\":true");
	ASSERT_HAS(out, "\"mapwatch\":true");
	ASSERT_HAS(out, "\"error\":null");
	ASSERT_TRUE(strstr(out, "\"ok\":false") == NULL);
	for (const char *s = "open\0probe\0config_data\0monitor\0mprotect\0munmap\0event\0retired\0";
	     *s; s += strlen(s) + 1) {
		char want[64];

		snprintf(want, sizeof(want), "{\"name\":\"%s\",\"ok\":true", s);
		ASSERT_HAS(out, want);
	}
}

TEST(check_kdreg2_alias)
{
	if (access("/dev/kdreg2", F_OK))
		NEED("kdreg2", "no /dev/kdreg2 (kdreg2_alias=N or the name is taken)");
	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch",
		      "check --device /dev/kdreg2"), 0);
	ASSERT_HAS(out, "PASS: /dev/kdreg2");
}

TEST(check_missing_device_fails)
{
	int rc = run(out, sizeof(out), true, "tools/mapwatch",
		     "check --device /dev/mapwatch-nonexistent");

	diag_lines(out);
	ASSERT_EQ(rc, 1);
	ASSERT_HAS(out, "FAIL");
}

TEST(top_once_json_shows_this_fd)
{
	int fd = open_with_regions(3, 1);
	const char *e;

	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch", "top --once --json"), 0);
	ASSERT_JSON(out, 1);
	ASSERT_HAS(out, "\"module_loaded\":true");
	e = top_entry(out, getpid(), fd);
	if (!e)
		tap_diag("pid %d fd %d not in: %s", getpid(), fd, out);
	ASSERT_TRUE(e != NULL);
	tap_diag("%.*s", (int)(strchr(e, '}') - e + 1), e);
	ASSERT_EQ(field(e, "owner_pid"), getpid());
	ASSERT_EQ(field(e, "max_regions"), 64);
	ASSERT_EQ(field(e, "regions"), 2);
	ASSERT_EQ(field(e, "pending"), 1);
	ASSERT_EQ(field(e, "events"), 1);
	ASSERT_EQ(field(e, "overflows"), 0);
	ASSERT_EQ(field(e, "monitors"), 3);
	ASSERT_HAS(e, "\"comm\":\"cli\"");
	close(fd);
}

TEST(top_text_and_refresh)
{
	int fd = open_with_regions(2, 0);
	char want[64];

	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch", "top --once"), 0);
	diag_lines(out);
	ASSERT_HAS(out, "module loaded");
	ASSERT_HAS(out, "REGIONS");
	snprintf(want, sizeof(want), "%7d %-15s %4d %10d %10d", getpid(), "cli", fd, 2, 64);
	ASSERT_HAS(out, want);
	/* Two snapshots, one JSON line each, the second with a rate. */
	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch",
		      "top --json --count 2 --interval 0.2"), 0);
	ASSERT_JSON(out, 2);
	ASSERT_HAS(out, "\"events_per_second\":");
	close(fd);
}

TEST(top_marks_inherited_fd)
{
	int fd = open_with_regions(1, 0), pipefd[2];
	const char *e;
	pid_t child;
	char c;

	ASSERT_OK(pipe(pipefd));
	child = fork();
	ASSERT_GE(child, 0);
	if (child == 0) {	/* hold the inherited fd until the parent is done */
		close(pipefd[1]);
		if (read(pipefd[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(pipefd[0]);
	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch", "top --once --json"), 0);
	e = top_entry(out, child, fd);
	if (!e)
		tap_diag("child %d fd %d not in: %s", child, fd, out);
	ASSERT_TRUE(e != NULL);
	ASSERT_EQ(field(e, "owner_pid"), getpid());
	ASSERT_EQ(run(out, sizeof(out), false, "tools/mapwatch", "top --once"), 0);
	ASSERT_HAS(out, "fd inherited or passed");
	close(pipefd[1]);
	waitpid(child, NULL, 0);
	close(fd);
}

TEST(usage_errors)
{
	ASSERT_EQ(run(out, sizeof(out), true, "tools/mapwatch", "stauts"), 2);
	ASSERT_HAS(out, "unknown command 'stauts'");
	ASSERT_EQ(run(out, sizeof(out), true, "tools/mapwatch", "top --bogus"), 2);
	ASSERT_HAS(out, "unknown option '--bogus'");
}

TEST(examples_on_kernel_backend)
{
	ASSERT_EQ(run(out, sizeof(out), true, "examples/watch", ""), 0);
	diag_lines(out);
	ASSERT_HAS(out, "backend: kernel");
	ASSERT_HAS(out, "after munmap: changed=yes, 1 event(s)");
	ASSERT_EQ(run(out, sizeof(out), true, "examples/cache", ""), 0);
	diag_lines(out);
	ASSERT_HAS(out, "backend: kernel");
	ASSERT_HAS(out, "registrations 2");
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
