// SPDX-License-Identifier: GPL-2.0-only
/*
 * mapwatch: look at the mapwatch kernel module from a shell.
 *
 *   mapwatch status [--json]     module, version, devices, counters, parameters
 *   mapwatch top [--once] [--json] [--interval S] [--count N]
 *                                every open mapwatch fd: pid, comm, counters
 *   mapwatch check [--json] [--device PATH]
 *                                post-install self-test of the device
 *   mapwatch why PID [--json] [--interval S | --once]
 *                                what invalidated one process's regions,
 *                                and what to do about it
 *
 * Exit status: 0 success; 1 the module is not loaded (status, check, why) or
 * the self-test failed; 2 usage error; 3 (why) no such process, or not
 * readable; 4 (why) the process holds no mapwatch fd.  Needs only the ABI
 * headers: it talks to
 * the device and reads /sys and /proc, it does not link libmapwatch.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "kdreg2.h"
#include "mapwatch_uapi.h"

#ifndef MAPWATCH_VERSION
#define MAPWATCH_VERSION "unknown"
#endif

#define SYS_MODULE "/sys/module/mapwatch"
#define SYS_COUNTERS "/sys/kernel/mapwatch"

static const char *prog = "mapwatch";

static const char usage_text[] =
	"usage: mapwatch COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  status   is the module loaded; its version, devices, global counters\n"
	"           and parameters (exit 1 when the module is not loaded)\n"
	"  top      every process holding a mapwatch fd, with its counters\n"
	"  check    self-test: monitor a fresh page, munmap it, expect the\n"
	"           change and its event (exit 0 pass, 1 fail)\n"
	"  why PID  what invalidated the process's registered regions in the\n"
	"           last interval, by cause, and what to do about it (exit 3:\n"
	"           no such process, 4: it holds no mapwatch fd)\n"
	"\n"
	"Options:\n"
	"  --json            machine-readable output (all commands)\n"
	"  --once            top: print one snapshot and exit; why: count since\n"
	"                    the process opened its fds, no interval\n"
	"  --interval S      top: seconds between snapshots (default 2); why:\n"
	"                    the interval to watch (default 2)\n"
	"  --count N         top: stop after N snapshots\n"
	"  --device PATH     check: the device to test (default /dev/mapwatch,\n"
	"                    else /dev/kdreg2)\n"
	"  -h, --help        this text\n"
	"  -V, --version     the version of this tool\n"
	"\n"
	"See mapwatch(1) and mapwatch(7).\n";

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see mapwatch --help)\n");
	return 2;
}

/* --- small helpers ------------------------------------------------------ */

/* Read a one-line file into buf without its newline; false if unreadable. */
static bool read_line(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	bool ok;

	if (!f)
		return false;
	ok = fgets(buf, (int)size, f) != NULL;
	fclose(f);
	if (!ok)
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return true;
}

static bool is_number(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static bool path_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static bool module_loaded(void)
{
	return path_exists(SYS_MODULE);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* A value read from sysfs: a JSON number when it is one, else a string. */
static void json_value(FILE *f, const char *v)
{
	if (is_number(v) && strlen(v) < 20)
		fputs(v, f);
	else
		json_str(f, v);
}

struct name_list {
	char **names;
	size_t n;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of a directory, sorted. */
static void list_dir(const char *dir, struct name_list *l)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	l->names = NULL;
	l->n = 0;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char **nn;

		if (e->d_name[0] == '.')
			continue;
		nn = realloc(l->names, (l->n + 1) * sizeof(*nn));
		if (!nn)
			break;
		l->names = nn;
		l->names[l->n] = strdup(e->d_name);
		if (l->names[l->n])
			l->n++;
	}
	closedir(d);
	if (l->n)
		qsort(l->names, l->n, sizeof(*l->names), cmp_str);
}

static void free_list(struct name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
}

/* Where modprobe would find mapwatch for the running kernel, from modules.dep. */
static bool module_installed(char *path, size_t size)
{
	struct utsname u;
	char dep[512], line[4096];
	FILE *f;
	bool found = false;

	if (uname(&u))
		return false;
	snprintf(dep, sizeof(dep), "/lib/modules/%s/modules.dep", u.release);
	f = fopen(dep, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		const char *base;

		if (!colon)
			continue;
		*colon = '\0';
		base = strrchr(line, '/');
		base = base ? base + 1 : line;
		if (!strcmp(base, "mapwatch.ko") || !strncmp(base, "mapwatch.ko.", 12)) {
			int n;

			if (line[0] == '/')
				n = snprintf(path, size, "%.400s", line);
			else
				n = snprintf(path, size, "/lib/modules/%.64s/%.400s",
					     u.release, line);
			found = n > 0;
		}
	}
	fclose(f);
	return found;
}

/* --- invalidations by reason and cause ----------------------------------- */

/* The module's names of reasons and causes (mapwatch_uapi.h), by value. */
static const char *const reason_names[] = MAPWATCH_REASON_NAMES;
static const char *const cause_names[] = MAPWATCH_CAUSE_NAMES;
#define NREASONS (sizeof(reason_names) / sizeof(reason_names[0]))
#define NCAUSES (sizeof(cause_names) / sizeof(cause_names[0]))

/* Invalidations by reason and cause, as fdinfo and /sys count them. */
struct why_counts {
	bool seen;			/* the module counts them */
	uint64_t reason[NREASONS];	/* regions invalidated, by reason */
	uint64_t cause[NCAUSES];	/* regions retired, by cause */
	uint64_t skipped[NCAUSES];	/* protection-only, skipped, by cause */
};

static int name_index(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return (int)i;
	return -1;
}

/* One "reason-NAME", "cause-NAME" or "skipped-cause-NAME" counter (the
 * fdinfo key without "mapwatch-"); false for any other key.  Names a newer
 * module adds are left out. */
static bool why_counter(struct why_counts *w, const char *key, uint64_t v)
{
	int i;

	if (!strncmp(key, "reason-", 7)) {
		w->seen = true;
		i = name_index(reason_names, NREASONS, key + 7);
		if (i >= 0)
			w->reason[i] = v;
		return true;
	}
	if (!strncmp(key, "cause-", 6) || !strncmp(key, "skipped-cause-", 14)) {
		bool sk = key[0] == 's';

		w->seen = true;
		i = name_index(cause_names, NCAUSES, key + (sk ? 14 : 6));
		if (i >= 0)
			(sk ? w->skipped : w->cause)[i] = v;
		return true;
	}
	return false;
}

static void why_add(struct why_counts *to, const struct why_counts *w)
{
	to->seen |= w->seen;
	for (size_t i = 0; i < NREASONS; i++)
		to->reason[i] += w->reason[i];
	for (size_t i = 0; i < NCAUSES; i++) {
		to->cause[i] += w->cause[i];
		to->skipped[i] += w->skipped[i];
	}
}

/* to = a - b, per counter (0 where a counter went back: a new fd). */
static void why_sub(struct why_counts *to, const struct why_counts *a,
		    const struct why_counts *b)
{
#define MW_SUB(x, y) ((x) >= (y) ? (x) - (y) : (x))
	to->seen = a->seen;
	for (size_t i = 0; i < NREASONS; i++)
		to->reason[i] = MW_SUB(a->reason[i], b->reason[i]);
	for (size_t i = 0; i < NCAUSES; i++) {
		to->cause[i] = MW_SUB(a->cause[i], b->cause[i]);
		to->skipped[i] = MW_SUB(a->skipped[i], b->skipped[i]);
	}
#undef MW_SUB
}

static uint64_t why_sum(const uint64_t *v, size_t n)
{
	uint64_t t = 0;

	for (size_t i = 0; i < n; i++)
		t += v[i];
	return t;
}

/* The non-zero counters as "name N, name N" (sep ", ") or "name:N name:N"
 * (the compact form of top); "-" when none. */
static void counts_text(char *buf, size_t size, const char *const *names,
			const uint64_t *v, size_t n, bool compact)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (!v[i])
			continue;
		used += (size_t)snprintf(buf + used, size > used ? size - used : 0,
					 compact ? "%s%s:%" PRIu64 : "%s%s %" PRIu64,
					 used ? (compact ? " " : ", ") : "",
					 names[i], v[i]);
	}
	if (!used)
		snprintf(buf, size, "-");
}

static void counts_json(FILE *f, const char *const *names, const uint64_t *v,
			size_t n)
{
	fputc('{', f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\"%s\":%" PRIu64, i ? "," : "", names[i], v[i]);
	fputc('}', f);
}

static void why_json(FILE *f, const struct why_counts *w)
{
	if (!w->seen) {
		fputs(",\"reasons\":null,\"causes\":null,\"skipped_causes\":null", f);
		return;
	}
	fputs(",\"reasons\":", f);
	counts_json(f, reason_names, w->reason, NREASONS);
	fputs(",\"causes\":", f);
	counts_json(f, cause_names, w->cause, NCAUSES);
	fputs(",\"skipped_causes\":", f);
	counts_json(f, cause_names, w->skipped, NCAUSES);
}

/* /sys/kernel/mapwatch/reasons or causes: "NAME N" lines. */
static bool read_sys_counts(const char *path, const char *const *names,
			    size_t n, uint64_t *v)
{
	FILE *f = fopen(path, "re");
	char name[64];
	unsigned long long x;

	memset(v, 0, n * sizeof(*v));
	if (!f)
		return false;
	while (fscanf(f, "%63s %llu", name, &x) == 2) {
		int i = name_index(names, n, name);

		if (i >= 0)
			v[i] = x;
	}
	fclose(f);
	return true;
}

/* --- status ------------------------------------------------------------- */

struct dev_info {
	const char *path;
	bool present, chr;
	char mode[8], owner[64], group[64], dev[32];
	const char *served_by;	/* "mapwatch", "another driver", "unknown" */
	char open_error[128];
	bool probed;
	struct mapwatch_probe probe;
};

static void dev_inspect(struct dev_info *d)
{
	struct stat st;
	int fd;

	const char *path = d->path;

	memset(d, 0, sizeof(*d));
	d->path = path;
	d->served_by = "unknown";
	if (stat(d->path, &st))
		return;
	d->present = true;
	d->chr = S_ISCHR(st.st_mode);
	snprintf(d->mode, sizeof(d->mode), "%04o", (unsigned int)(st.st_mode & 07777));
	{
		struct passwd *pw = getpwuid(st.st_uid);
		struct group *gr = getgrgid(st.st_gid);

		if (pw)
			snprintf(d->owner, sizeof(d->owner), "%s", pw->pw_name);
		else
			snprintf(d->owner, sizeof(d->owner), "%u", (unsigned int)st.st_uid);
		if (gr)
			snprintf(d->group, sizeof(d->group), "%s", gr->gr_name);
		else
			snprintf(d->group, sizeof(d->group), "%u", (unsigned int)st.st_gid);
	}
	if (!d->chr)
		return;
	snprintf(d->dev, sizeof(d->dev), "%u:%u", major(st.st_rdev), minor(st.st_rdev));
	/* The PROBE extension answers only on mapwatch: that tells who serves it. */
	fd = open(d->path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(d->open_error, sizeof(d->open_error), "%s", strerror(errno));
		return;
	}
	d->probe.size = sizeof(d->probe);
	if (ioctl(fd, MAPWATCH_IOCTL_PROBE, &d->probe) == 0) {
		d->probed = true;
		d->served_by = "mapwatch";
	} else if (errno == ENOTTY || errno == EINVAL) {
		d->served_by = "another driver";
	}
	close(fd);
}

static void features_text(uint64_t f, char *buf, size_t size)
{
	static const char *const names[] = { "status_ext", "batch", "policy",
					     "invalidate", "reasons" };
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned int i = 0; i < 64; i++) {
		char unknown[16];
		const char *n;

		if (!(f & (1ULL << i)))
			continue;
		if (i < sizeof(names) / sizeof(names[0])) {
			n = names[i];
		} else {
			snprintf(unknown, sizeof(unknown), "bit%u", i);
			n = unknown;
		}
		used += (size_t)snprintf(buf + used, size > used ? size - used : 0,
					 "%s%s", used ? " " : "", n);
	}
}

static void features_json(FILE *f, uint64_t feat)
{
	char buf[256], *save = NULL, *tok;
	bool first = true;

	features_text(feat, buf, sizeof(buf));
	fputc('[', f);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (!first)
			fputc(',', f);
		json_str(f, tok);
		first = false;
	}
	fputc(']', f);
}

/* Counters in a fixed order first, then any the module added since. */
static const char *const counter_order[] = {
	"contexts", "regions", "pending", "events", "overflows", "skipped",
	"abi_version",
};

static bool in_counter_order(const char *n)
{
	for (size_t i = 0; i < sizeof(counter_order) / sizeof(counter_order[0]); i++)
		if (!strcmp(n, counter_order[i]))
			return true;
	return false;
}

static void ordered_counters(struct name_list *out)
{
	struct name_list all;
	size_t k = 0;

	list_dir(SYS_COUNTERS, &all);
	out->names = calloc(all.n + 1, sizeof(char *));
	out->n = 0;
	if (!out->names) {
		free_list(&all);
		return;
	}
	for (size_t i = 0; i < sizeof(counter_order) / sizeof(counter_order[0]); i++)
		for (size_t j = 0; j < all.n; j++)
			if (!strcmp(all.names[j], counter_order[i]))
				out->names[k++] = strdup(all.names[j]);
	/* reasons and causes hold a line per name: shown apart. */
	for (size_t j = 0; j < all.n; j++)
		if (!in_counter_order(all.names[j]) &&
		    strcmp(all.names[j], "reasons") && strcmp(all.names[j], "causes") &&
		    strcmp(all.names[j], "skipped_causes"))
			out->names[k++] = strdup(all.names[j]);
	out->n = k;
	free_list(&all);
}

static void print_users(bool json);

static int cmd_status(bool json)
{
	struct dev_info devs[2] = { { .path = MAPWATCH_DEVICE_NAME },
				    { .path = "/dev/kdreg2" } };
	char version[64] = "", srcversion[64] = "", installed[512] = "";
	char path[512], val[256];
	struct name_list counters, params;
	bool loaded = module_loaded(), is_installed;
	const struct mapwatch_probe *probe = NULL;
	struct utsname u;

	uname(&u);
	is_installed = module_installed(installed, sizeof(installed));
	if (loaded) {
		read_line(SYS_MODULE "/version", version, sizeof(version));
		read_line(SYS_MODULE "/srcversion", srcversion, sizeof(srcversion));
	}
	for (int i = 0; i < 2; i++) {
		dev_inspect(&devs[i]);
		if (!probe && devs[i].probed)
			probe = &devs[i].probe;
	}
	if (loaded) {
		ordered_counters(&counters);
		list_dir(SYS_MODULE "/parameters", &params);
	} else {
		counters.n = params.n = 0;
		counters.names = params.names = NULL;
	}

	if (json) {
		printf("{\"loaded\":%s,\"version\":", loaded ? "true" : "false");
		if (version[0])
			json_str(stdout, version);
		else
			fputs("null", stdout);
		printf(",\"srcversion\":");
		if (srcversion[0])
			json_str(stdout, srcversion);
		else
			fputs("null", stdout);
		printf(",\"kernel\":");
		json_str(stdout, u.release);
		printf(",\"installed\":");
		if (is_installed)
			json_str(stdout, installed);
		else
			fputs("null", stdout);
		if (probe) {
			printf(",\"abi_version\":%u,\"features\":", probe->abi_version);
			features_json(stdout, probe->features);
		} else {
			printf(",\"abi_version\":null,\"features\":null");
		}
		printf(",\"devices\":[");
		for (int i = 0; i < 2; i++) {
			const struct dev_info *d = &devs[i];

			printf("%s{\"path\":", i ? "," : "");
			json_str(stdout, d->path);
			printf(",\"present\":%s", d->present ? "true" : "false");
			if (d->present) {
				printf(",\"char_device\":%s,\"mode\":", d->chr ? "true" : "false");
				json_str(stdout, d->mode);
				printf(",\"owner\":");
				json_str(stdout, d->owner);
				printf(",\"group\":");
				json_str(stdout, d->group);
				printf(",\"dev\":");
				json_str(stdout, d->dev);
				printf(",\"served_by\":");
				json_str(stdout, d->served_by);
				if (d->open_error[0]) {
					printf(",\"open_error\":");
					json_str(stdout, d->open_error);
				}
			}
			printf("}");
		}
		printf("],\"counters\":{");
		for (size_t i = 0; i < counters.n; i++) {
			snprintf(path, sizeof(path), SYS_COUNTERS "/%s", counters.names[i]);
			if (!read_line(path, val, sizeof(val)))
				snprintf(val, sizeof(val), "unreadable");
			printf("%s", i ? "," : "");
			json_str(stdout, counters.names[i]);
			putchar(':');
			json_value(stdout, val);
		}
		printf("}");
		{
			uint64_t v[NCAUSES];

			printf(",\"reasons\":");
			if (loaded && read_sys_counts(SYS_COUNTERS "/reasons", reason_names,
						      NREASONS, v))
				counts_json(stdout, reason_names, v, NREASONS);
			else
				fputs("null", stdout);
			printf(",\"causes\":");
			if (loaded && read_sys_counts(SYS_COUNTERS "/causes", cause_names,
						      NCAUSES, v))
				counts_json(stdout, cause_names, v, NCAUSES);
			else
				fputs("null", stdout);
			printf(",\"skipped_causes\":");
			if (loaded && read_sys_counts(SYS_COUNTERS "/skipped_causes",
						      cause_names, NCAUSES, v))
				counts_json(stdout, cause_names, v, NCAUSES);
			else
				fputs("null", stdout);
		}
		printf(",\"parameters\":{");
		for (size_t i = 0; i < params.n; i++) {
			snprintf(path, sizeof(path), SYS_MODULE "/parameters/%s", params.names[i]);
			if (!read_line(path, val, sizeof(val)))
				snprintf(val, sizeof(val), "unreadable");
			printf("%s", i ? "," : "");
			json_str(stdout, params.names[i]);
			putchar(':');
			json_value(stdout, val);
		}
		printf("}");
		print_users(true);
		printf("}\n");
	} else {
		if (loaded) {
			printf("module:      loaded, version %s%s%s%s\n",
			       version[0] ? version : "unknown",
			       srcversion[0] ? " (srcversion " : "", srcversion,
			       srcversion[0] ? ")" : "");
		} else {
			printf("module:      not loaded\n");
			if (is_installed)
				printf("             installed for kernel %s: %s\n"
				       "             load it with: modprobe mapwatch\n",
				       u.release, installed);
			else
				printf("             not installed for kernel %s: install the mapwatch-dkms\n"
				       "             package or run `make dkms-install`, then modprobe mapwatch\n",
				       u.release);
		}
		if (probe) {
			char feat[256];

			features_text(probe->features, feat, sizeof(feat));
			printf("abi:         version %u, features: %s\n", probe->abi_version,
			       feat[0] ? feat : "none");
		}
		printf("devices:\n");
		for (int i = 0; i < 2; i++) {
			const struct dev_info *d = &devs[i];

			if (!d->present) {
				printf("  %-14s missing\n", d->path);
				continue;
			}
			printf("  %-14s %s mode %s %s:%s", d->path,
			       d->chr ? "char" : "NOT A CHAR DEVICE", d->mode, d->owner, d->group);
			if (d->chr)
				printf(" dev %s, served by %s", d->dev, d->served_by);
			if (d->open_error[0])
				printf(" (cannot open: %s)", d->open_error);
			printf("\n");
		}
		print_users(false);
		if (loaded) {
			printf("counters (%s):\n", SYS_COUNTERS);
			for (size_t i = 0; i < counters.n; i++) {
				snprintf(path, sizeof(path), SYS_COUNTERS "/%s", counters.names[i]);
				if (!read_line(path, val, sizeof(val)))
					snprintf(val, sizeof(val), "unreadable");
				printf("  %-20s %s\n", counters.names[i], val);
			}
			{
				uint64_t v[NCAUSES];
				char text[1024];

				if (read_sys_counts(SYS_COUNTERS "/reasons", reason_names,
						    NREASONS, v)) {
					counts_text(text, sizeof(text), reason_names, v,
						    NREASONS, false);
					printf("invalidations by reason (%s/reasons):\n  %s\n",
					       SYS_COUNTERS, text);
				}
				if (read_sys_counts(SYS_COUNTERS "/causes", cause_names,
						    NCAUSES, v)) {
					counts_text(text, sizeof(text), cause_names, v,
						    NCAUSES, false);
					printf("invalidations by cause (%s/causes):\n  %s\n",
					       SYS_COUNTERS, text);
				}
				if (read_sys_counts(SYS_COUNTERS "/skipped_causes", cause_names,
						    NCAUSES, v)) {
					counts_text(text, sizeof(text), cause_names, v,
						    NCAUSES, false);
					printf("protection-only invalidations skipped, by cause (%s/skipped_causes):\n  %s\n",
					       SYS_COUNTERS, text);
				}
			}
			printf("parameters (%s/parameters):\n", SYS_MODULE);
			for (size_t i = 0; i < params.n; i++) {
				snprintf(path, sizeof(path), SYS_MODULE "/parameters/%s",
					 params.names[i]);
				if (!read_line(path, val, sizeof(val)))
					snprintf(val, sizeof(val), "unreadable");
				printf("  %-20s %s\n", params.names[i], val);
			}
		}
	}
	free_list(&counters);
	free_list(&params);
	if (!loaded && !json)
		fprintf(stderr, "%s status: the mapwatch module is not loaded\n", prog);
	return loaded ? 0 : 1;
}

/* --- top ---------------------------------------------------------------- */

struct fd_row {
	int pid, fd, owner;
	char comm[32];
	uint64_t max_regions, regions, pending, events, overflows, skipped;
	uint64_t monitors, unmonitors;
	struct why_counts why;
	char policy[64];
	double rate;		/* events per second since the last snapshot */
	bool has_rate;
};

struct snapshot {
	struct fd_row *rows;
	size_t n;
	unsigned int processes, unreadable;
};

static bool parse_fdinfo(int pid, int fd, struct fd_row *r)
{
	char path[64], line[256];
	FILE *f;
	bool seen = false;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	f = fopen(path, "re");
	if (!f)
		return false;
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	r->fd = fd;
	r->owner = pid;
	snprintf(r->policy, sizeof(r->policy), "0");
	while (fgets(line, sizeof(line), f)) {
		char key[64], val[64];

		if (strncmp(line, "mapwatch-", 9))
			continue;
		if (sscanf(line, "mapwatch-%63[^:]:%63s", key, val) != 2)
			continue;
		seen = true;
		uint64_t v = strtoull(val, NULL, 0);

		if (why_counter(&r->why, key, v))
			continue;
		if (!strcmp(key, "owner-pid"))
			r->owner = (int)v;
		else if (!strcmp(key, "max-regions"))
			r->max_regions = v;
		else if (!strcmp(key, "regions"))
			r->regions = v;
		else if (!strcmp(key, "pending"))
			r->pending = v;
		else if (!strcmp(key, "events"))
			r->events = v;
		else if (!strcmp(key, "overflows"))
			r->overflows = v;
		else if (!strcmp(key, "skipped"))
			r->skipped = v;
		else if (!strcmp(key, "monitors"))
			r->monitors = v;
		else if (!strcmp(key, "unmonitors"))
			r->unmonitors = v;
		else if (!strcmp(key, "policy"))
			snprintf(r->policy, sizeof(r->policy), "%s", val);
	}
	fclose(f);
	if (seen) {
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		if (!read_line(path, r->comm, sizeof(r->comm)))
			snprintf(r->comm, sizeof(r->comm), "?");
	}
	return seen;
}

static int cmp_row(const void *a, const void *b)
{
	const struct fd_row *x = a, *y = b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->fd < y->fd ? -1 : x->fd > y->fd;
}

static void scan(struct snapshot *s)
{
	DIR *proc = opendir("/proc");
	struct dirent *p;

	memset(s, 0, sizeof(*s));
	if (!proc)
		return;
	while ((p = readdir(proc))) {
		char fddir[64];
		DIR *fds;
		struct dirent *e;
		int pid;

		if (!is_number(p->d_name))
			continue;
		pid = atoi(p->d_name);
		s->processes++;
		snprintf(fddir, sizeof(fddir), "/proc/%d/fd", pid);
		fds = opendir(fddir);
		if (!fds) {
			if (errno == EACCES || errno == EPERM)
				s->unreadable++;
			continue;
		}
		while ((e = readdir(fds))) {
			char fdpath[64];
			struct stat st;
			struct fd_row r, *nr;

			if (!is_number(e->d_name))
				continue;
			/* Only character devices can be mapwatch fds. */
			snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%d", pid, atoi(e->d_name));
			if (stat(fdpath, &st) || !S_ISCHR(st.st_mode))
				continue;
			if (!parse_fdinfo(pid, atoi(e->d_name), &r))
				continue;
			nr = realloc(s->rows, (s->n + 1) * sizeof(*nr));
			if (!nr)
				break;
			s->rows = nr;
			s->rows[s->n++] = r;
		}
		closedir(fds);
	}
	closedir(proc);
	if (s->n)
		qsort(s->rows, s->n, sizeof(*s->rows), cmp_row);
}

/* --- which backend each process uses (status) ---------------------------- */

struct user_row {
	int pid;
	char comm[32];
	unsigned int kernel_fds;	/* mapwatch fds (fdinfo) */
	uint64_t regions;
	struct why_counts why;		/* summed over its fds */
	bool uffd;			/* libmapwatch's userfaultfd reader */
};

/* A thread named as libmapwatch names its userfaultfd reader. */
static bool has_uffd_reader(int pid)
{
	char dir[64], path[64 + 256 + 8], comm[32];
	struct dirent *e;
	bool found = false;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/task", pid);
	d = opendir(dir);
	if (!d)
		return false;
	while (!found && (e = readdir(d))) {
		if (!is_number(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
		found = read_line(path, comm, sizeof(comm)) &&
			!strcmp(comm, "mapwatch-uffd");
	}
	closedir(d);
	return found;
}

static struct user_row *user_at(struct user_row **rows, size_t *n, int pid)
{
	struct user_row *r;

	for (size_t i = 0; i < *n; i++)
		if ((*rows)[i].pid == pid)
			return &(*rows)[i];
	r = realloc(*rows, (*n + 1) * sizeof(*r));
	if (!r)
		return NULL;
	*rows = r;
	r = &r[(*n)++];
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	return r;
}

/* Processes on the kernel backend (a mapwatch fd: its fdinfo) and on the
 * userfaultfd backend (the reader thread "mapwatch-uffd"), by pid. */
static void print_users(bool json)
{
	struct snapshot s;
	struct user_row *rows = NULL, *u;
	size_t n = 0;
	DIR *proc;
	struct dirent *p;

	scan(&s);
	for (size_t i = 0; i < s.n; i++) {
		u = user_at(&rows, &n, s.rows[i].pid);
		if (!u)
			break;
		u->kernel_fds++;
		u->regions += s.rows[i].regions;
		why_add(&u->why, &s.rows[i].why);
		snprintf(u->comm, sizeof(u->comm), "%s", s.rows[i].comm);
	}
	proc = opendir("/proc");
	while (proc && (p = readdir(proc))) {
		char path[64];
		int pid;

		if (!is_number(p->d_name) || !has_uffd_reader(atoi(p->d_name)))
			continue;
		pid = atoi(p->d_name);
		u = user_at(&rows, &n, pid);
		if (!u)
			break;
		u->uffd = true;
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		if (!u->comm[0] && !read_line(path, u->comm, sizeof(u->comm)))
			snprintf(u->comm, sizeof(u->comm), "?");
	}
	if (proc)
		closedir(proc);
	if (json) {
		printf(",\"users\":[");
		for (size_t i = 0; i < n; i++) {
			printf("%s{\"pid\":%d,\"comm\":", i ? "," : "", rows[i].pid);
			json_str(stdout, rows[i].comm);
			printf(",\"backends\":[%s%s%s],\"kernel_fds\":%u,\"regions\":%" PRIu64,
			       rows[i].kernel_fds ? "\"kernel\"" : "",
			       rows[i].kernel_fds && rows[i].uffd ? "," : "",
			       rows[i].uffd ? "\"userfaultfd\"" : "",
			       rows[i].kernel_fds, rows[i].regions);
			why_json(stdout, &rows[i].why);
			printf("}");
		}
		printf("]");
	} else if (!n) {
		printf("users:       none (no mapwatch fd, no libmapwatch userfaultfd reader%s)\n",
		       s.unreadable ? "; some processes unreadable: run as root" : "");
	} else {
		printf("users (backend of each process):\n");
		for (size_t i = 0; i < n; i++) {
			printf("  %7d %-16s", rows[i].pid, rows[i].comm);
			if (rows[i].kernel_fds)
				printf(" kernel (%u fd%s, %" PRIu64 " regions)",
				       rows[i].kernel_fds, rows[i].kernel_fds == 1 ? "" : "s",
				       rows[i].regions);
			if (rows[i].why.seen) {
				char text[512];

				counts_text(text, sizeof(text), reason_names,
					    rows[i].why.reason, NREASONS, false);
				printf(", invalidated: %s", text);
			}
			if (rows[i].uffd)
				printf("%s userfaultfd (reader thread mapwatch-uffd: not synchronous)",
				       rows[i].kernel_fds ? "," : "");
			printf("\n");
		}
	}
	free(rows);
	free(s.rows);
}

static void add_rates(struct snapshot *now, const struct snapshot *prev, double dt)
{
	for (size_t i = 0; i < now->n; i++) {
		struct fd_row *r = &now->rows[i];

		for (size_t j = 0; prev && j < prev->n; j++) {
			const struct fd_row *o = &prev->rows[j];

			if (o->pid == r->pid && o->fd == r->fd && r->events >= o->events &&
			    dt > 0) {
				r->rate = (double)(r->events - o->events) / dt;
				r->has_rate = true;
				break;
			}
		}
	}
}

static void print_snapshot(const struct snapshot *s, bool json, bool live)
{
	time_t t = time(NULL);

	if (json) {
		printf("{\"time\":%lld,\"module_loaded\":%s,\"processes\":%u,"
		       "\"unreadable_processes\":%u,\"fds\":[",
		       (long long)t, module_loaded() ? "true" : "false",
		       s->processes, s->unreadable);
		for (size_t i = 0; i < s->n; i++) {
			const struct fd_row *r = &s->rows[i];

			printf("%s{\"pid\":%d,\"comm\":", i ? "," : "", r->pid);
			json_str(stdout, r->comm);
			printf(",\"fd\":%d,\"owner_pid\":%d,\"max_regions\":%" PRIu64
			       ",\"regions\":%" PRIu64 ",\"pending\":%" PRIu64
			       ",\"events\":%" PRIu64 ",\"overflows\":%" PRIu64
			       ",\"skipped\":%" PRIu64 ",\"monitors\":%" PRIu64
			       ",\"unmonitors\":%" PRIu64 ",\"policy\":",
			       r->fd, r->owner, r->max_regions, r->regions, r->pending,
			       r->events, r->overflows, r->skipped, r->monitors,
			       r->unmonitors);
			json_str(stdout, r->policy);
			why_json(stdout, &r->why);
			if (r->has_rate)
				printf(",\"events_per_second\":%.1f", r->rate);
			printf("}");
		}
		printf("]}\n");
		fflush(stdout);
		return;
	}
	if (live && isatty(STDOUT_FILENO))
		fputs("\033[H\033[2J", stdout);
	{
		char when[32];
		struct tm tm;

		localtime_r(&t, &tm);
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
		printf("mapwatch top  %s  module %s  %zu fd%s", when,
		       module_loaded() ? "loaded" : "NOT LOADED", s->n, s->n == 1 ? "" : "s");
		if (s->unreadable)
			printf("  (%u processes not readable: run as root to see all)",
			       s->unreadable);
		printf("\n");
	}
	printf("%7s %-15s %4s %10s %10s %8s %12s %9s %9s%s  %s\n", "PID", "COMM", "FD",
	       "REGIONS", "MAX", "PENDING", "EVENTS", "OVERFLOWS", "SKIPPED",
	       live ? "     EV/S" : "", "INVALIDATED BY REASON");
	for (size_t i = 0; i < s->n; i++) {
		const struct fd_row *r = &s->rows[i];

		printf("%7d %-15s %4d %10" PRIu64 " %10" PRIu64 " %8" PRIu64 " %12" PRIu64
		       " %9" PRIu64 " %9" PRIu64, r->pid, r->comm, r->fd, r->regions,
		       r->max_regions, r->pending, r->events, r->overflows, r->skipped);
		if (live && r->has_rate)
			printf(" %8.1f", r->rate);
		else if (live)
			printf(" %8s", "-");
		{
			char text[512] = "?";

			if (r->why.seen)	/* "?": a module that counts none */
				counts_text(text, sizeof(text), reason_names,
					    r->why.reason, NREASONS, true);
			printf("  %s", text);
		}
		if (r->owner != r->pid)
			printf("  (owner %d: fd inherited or passed)", r->owner);
		printf("\n");
	}
	fflush(stdout);
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_top(bool json, bool once, double interval, long count)
{
	struct snapshot prev = { 0 }, cur;
	double t_prev = 0;
	bool live = !once;
	struct sigaction sa = { .sa_handler = on_signal };

	if (once)
		count = 1;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	for (long i = 0; !stop && (count <= 0 || i < count); i++) {
		double t;

		if (i) {
			struct timespec ts = {
				.tv_sec = (time_t)interval,
				.tv_nsec = (long)((interval - (double)(time_t)interval) * 1e9),
			};

			while (nanosleep(&ts, &ts) && errno == EINTR && !stop)
				;
			if (stop)
				break;
		}
		t = now_seconds();
		scan(&cur);
		if (i)
			add_rates(&cur, &prev, t - t_prev);
		print_snapshot(&cur, json, live);
		free(prev.rows);
		prev = cur;
		t_prev = t;
	}
	free(prev.rows);
	return 0;
}

/* --- check -------------------------------------------------------------- */

struct check_state {
	bool json, failed;
	unsigned int steps;
};

static void step(struct check_state *cs, bool ok, const char *name,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void step(struct check_state *cs, bool ok, const char *name,
		 const char *fmt, ...)
{
	char detail[256] = "";
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
	}
	if (!ok)
		cs->failed = true;
	if (cs->json) {
		printf("%s{\"name\":", cs->steps ? "," : "");
		json_str(stdout, name);
		printf(",\"ok\":%s,\"detail\":", ok ? "true" : "false");
		json_str(stdout, detail);
		printf("}");
	} else {
		printf("  %-4s %s%s%s\n", ok ? "ok" : "FAIL", name, detail[0] ? ": " : "",
		       detail);
	}
	cs->steps++;
}

/* The self-test proper; returns with cs->failed set on the first failure. */
static void run_check(struct check_state *cs, const char *device, bool *mapwatch)
{
	const uint64_t cookie = 0x6d61707761746368ULL;	/* "mapwatch" */
	struct mapwatch_probe probe = { .size = sizeof(probe) };
	struct kdreg2_config_data cfg = { .max_regions = 16 };
	const struct kdreg2_status_data *st;
	struct kdreg2_ioctl_monitor mon = { 0 };
	struct kdreg2_ioctl_unmonitor unmon = { 0 };
	struct kdreg2_event ev;
	struct pollfd pfd;
	long page = sysconf(_SC_PAGESIZE);
	char *mem;
	int fd;

	*mapwatch = false;
	fd = open(device, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		step(cs, false, "open", "%s: %s%s", device, strerror(errno),
		     errno == EACCES ? " (device permissions: see the udev rule, mapwatch(7))" : "");
		return;
	}
	step(cs, true, "open", "%s", device);

	if (ioctl(fd, MAPWATCH_IOCTL_PROBE, &probe) == 0) {
		char feat[256];

		*mapwatch = true;
		features_text(probe.features, feat, sizeof(feat));
		step(cs, true, "probe", "mapwatch ABI %u, features: %s", probe.abi_version,
		     feat[0] ? feat : "none");
	} else {
		step(cs, true, "probe", "no mapwatch extensions (%s): testing the kdreg2 ABI only",
		     strerror(errno));
	}

	if (ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &cfg) || !cfg.status_data) {
		step(cs, false, "config_data", "CONFIG_DATA(max_regions 16): %s", strerror(errno));
		goto out;
	}
	st = cfg.status_data;
	if (st->max_regions != 16) {
		step(cs, false, "config_data", "status area says max_regions %zu, want 16",
		     st->max_regions);
		goto out;
	}
	step(cs, true, "config_data", "status area at %p, max_regions 16", (const void *)st);

	mem = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		step(cs, false, "mmap", "%s", strerror(errno));
		goto out;
	}
	mem[0] = 1;
	mon.addr = mem;
	mon.length = (size_t)page;
	mon.cookie = cookie;
	if (ioctl(fd, KDREG2_IOCTL_MONITOR, &mon)) {
		step(cs, false, "monitor", "MONITOR(%p, %ld): %s", (void *)mem, page,
		     strerror(errno));
		munmap(mem, (size_t)page);
		goto out;
	}
	if (kdreg2_mapping_changed(st, &mon.monitoring_params) ||
	    kdreg2_read_counter(&st->num_active_regions) != 1) {
		step(cs, false, "monitor", "fresh region reads as changed, or %" PRIu64
		     " active regions (want 1)", kdreg2_read_counter(&st->num_active_regions));
		munmap(mem, (size_t)page);
		goto out;
	}
	step(cs, true, "monitor", "page %p, location %zu, generation %u", (void *)mem,
	     mon.monitoring_params.location, mon.monitoring_params.generation);

	if (*mapwatch) {
		/*
		 * mapwatch skips protection-only changes: no spurious
		 * invalidation.  Not mprotect's on a kernel where NUMA
		 * balancing moves a huge page under that event alone (5.10:
		 * protection_vma missing from skipped_events): there it must
		 * be reported, and the region is watched again.
		 */
		char skipped[128] = "protection_vma";
		bool reported;

		read_line(SYS_COUNTERS "/skipped_events", skipped, sizeof(skipped));
		reported = !strstr(skipped, "protection_vma");
		if (mprotect(mem, (size_t)page, PROT_READ) ||
		    mprotect(mem, (size_t)page, PROT_READ | PROT_WRITE)) {
			step(cs, false, "mprotect", "%s", strerror(errno));
		} else if (reported) {
			if (!kdreg2_mapping_changed(st, &mon.monitoring_params) ||
			    ioctl(fd, KDREG2_IOCTL_FLUSH) ||
			    ioctl(fd, KDREG2_IOCTL_MONITOR, &mon))
				step(cs, false, "mprotect", "not skipped on this kernel, "
				     "but the region was not reported (or FLUSH/MONITOR: %s)",
				     strerror(errno));
			else
				step(cs, true, "mprotect", "not skipped on this kernel "
				     "(skipped_events: %s): region reported, watched again",
				     skipped[0] ? skipped : "none");
		} else if (kdreg2_mapping_changed(st, &mon.monitoring_params)) {
			step(cs, false, "mprotect", "a protection-only change invalidated the region");
		} else {
			step(cs, true, "mprotect", "protection-only change: region still valid");
		}
		if (cs->failed) {
			munmap(mem, (size_t)page);
			goto out;
		}
	}

	if (munmap(mem, (size_t)page)) {
		step(cs, false, "munmap", "%s", strerror(errno));
		goto out;
	}
	/* Synchronous: changed by the time munmap() returned. */
	if (!kdreg2_mapping_changed(st, &mon.monitoring_params)) {
		step(cs, false, "munmap", "kdreg2_mapping_changed() is false after munmap() returned");
		goto out;
	}
	step(cs, true, "munmap", "kdreg2_mapping_changed() true when munmap() returned, "
	     "%" PRIu64 " event(s) pending", kdreg2_read_counter(&st->pending_events));

	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 2000) != 1 || !(pfd.revents & POLLIN)) {
		step(cs, false, "event", "no event readable within 2 s (poll: %s)",
		     errno ? strerror(errno) : "timeout");
		goto out;
	}
	if (read(fd, &ev, sizeof(ev)) != (ssize_t)sizeof(ev)) {
		step(cs, false, "event", "read: %s", strerror(errno));
		goto out;
	}
	if (ev.type != KDREG2_EVENT_MAPPING_CHANGE || ev.u.mapping_change.cookie != cookie ||
	    ev.u.mapping_change.addr != (const void *)mem ||
	    ev.u.mapping_change.len != (size_t)page) {
		step(cs, false, "event", "got type %u cookie %#" PRIx64 " range %p+%zu, want "
		     "type 1 cookie %#" PRIx64 " range %p+%ld", ev.type,
		     (uint64_t)ev.u.mapping_change.cookie, ev.u.mapping_change.addr,
		     ev.u.mapping_change.len, cookie, (void *)mem, page);
		goto out;
	}
	step(cs, true, "event", "MAPPING_CHANGE for cookie %#" PRIx64 ", range %p+%ld",
	     cookie, (void *)mem, page);

	unmon.cookie = cookie;
	unmon.monitoring_params = mon.monitoring_params;
	errno = 0;
	if (ioctl(fd, KDREG2_IOCTL_UNMONITOR, &unmon) != -1 || errno != ESRCH) {
		step(cs, false, "retired", "UNMONITOR of the changed region: %s, want ESRCH",
		     errno ? strerror(errno) : "success");
		goto out;
	}
	if (kdreg2_read_counter(&st->pending_events) != 0 ||
	    kdreg2_read_counter(&st->num_active_regions) != 0) {
		step(cs, false, "retired", "%" PRIu64 " events pending, %" PRIu64
		     " regions active, want 0 and 0",
		     kdreg2_read_counter(&st->pending_events),
		     kdreg2_read_counter(&st->num_active_regions));
		goto out;
	}
	step(cs, true, "retired", "region gone (UNMONITOR: ESRCH), nothing pending");
out:
	close(fd);
}

static int cmd_check(bool json, const char *device)
{
	struct check_state cs = { .json = json };
	bool loaded = module_loaded(), mapwatch = false;
	const char *err = NULL;

	if (!device) {
		device = MAPWATCH_DEVICE_NAME;
		if (!path_exists(device) && path_exists("/dev/kdreg2"))
			device = "/dev/kdreg2";
	}
	if (!path_exists(device)) {
		if (!loaded)
			err = "the mapwatch module is not loaded (load it with: modprobe mapwatch; "
			      "see mapwatch status)";
		else
			err = "the device node is missing although the module is loaded "
			      "(is devtmpfs or udev running?)";
	}
	if (json) {
		printf("{\"device\":");
		json_str(stdout, device);
		printf(",\"module_loaded\":%s,\"steps\":[", loaded ? "true" : "false");
	} else {
		printf("mapwatch check: %s\n", device);
	}
	if (!err)
		run_check(&cs, device, &mapwatch);
	if (json) {
		printf("],\"mapwatch\":%s,\"passed\":%s,\"error\":", mapwatch ? "true" : "false",
		       !err && !cs.failed ? "true" : "false");
		if (err)
			json_str(stdout, err);
		else
			fputs("null", stdout);
		printf("}\n");
	}
	if (err) {
		fprintf(stderr, "%s check: FAIL: %s: %s\n", prog, device, err);
		return 1;
	}
	if (!json) {
		if (cs.failed)
			printf("mapwatch check: FAIL\n");
		else
			printf("mapwatch check: PASS: %s reports mapping changes synchronously\n",
			       device);
	}
	return cs.failed ? 1 : 0;
}

/* --- why ---------------------------------------------------------------- */

/* The mapwatch fds of one process: 0, -ENOENT (no such process), -EACCES
 * (its fds are not readable: another user's, run as root). */
static int pid_rows(int pid, struct snapshot *s)
{
	char fddir[64];
	struct dirent *e;
	DIR *fds;

	memset(s, 0, sizeof(*s));
	snprintf(fddir, sizeof(fddir), "/proc/%d", pid);
	if (!path_exists(fddir))
		return -ENOENT;
	snprintf(fddir, sizeof(fddir), "/proc/%d/fd", pid);
	fds = opendir(fddir);
	if (!fds)
		return errno == ENOENT ? -ENOENT : -EACCES;
	while ((e = readdir(fds))) {
		char fdpath[64 + 256];
		struct stat st;
		struct fd_row r, *nr;

		if (!is_number(e->d_name))
			continue;
		snprintf(fdpath, sizeof(fdpath), "%s/%s", fddir, e->d_name);
		if (stat(fdpath, &st) || !S_ISCHR(st.st_mode) ||
		    !parse_fdinfo(pid, atoi(e->d_name), &r))
			continue;
		nr = realloc(s->rows, (s->n + 1) * sizeof(*nr));
		if (!nr)
			break;
		s->rows = nr;
		s->rows[s->n++] = r;
	}
	closedir(fds);
	return 0;
}

/* What each cause means for the user, and what to do about it. */
static const struct {
	const char *cause, *what, *todo;
} advice[] = {
	{ "munmap", "unmapped by munmap()",
	  "the process frees registered buffers (free() of a large block unmaps it) -- keep them in a pool, or raise MALLOC_MMAP_THRESHOLD_ so that malloc keeps them mapped" },
	{ "mmap", "mapped over by mmap(MAP_FIXED)",
	  "the process maps new memory over registered buffers -- deregister them first, or map elsewhere" },
	{ "madvise", "released by madvise() (MADV_DONTNEED/FREE/REMOVE)",
	  "the allocator or a garbage collector gives free memory back -- raise MALLOC_TRIM_THRESHOLD_ and MALLOC_TOP_PAD_, or turn off your allocator's purging (jemalloc dirty_decay_ms:-1, tcmalloc TCMALLOC_RELEASE_RATE=0)" },
	{ "brk", "cut off by brk() (the heap shrank)",
	  "malloc trims the top of the heap -- raise MALLOC_TRIM_THRESHOLD_ or MALLOC_TOP_PAD_" },
	{ "shmdt", "detached by shmdt()",
	  "keep the segment attached while it is registered" },
	{ "mremap", "moved by mremap()",
	  "realloc() of a large buffer moves it -- size registered buffers once, or register after the last realloc()" },
	{ "mprotect", "invalidated by mprotect()",
	  "a protection change (nothing moved), reported because the fd asks for every invalidation or the kernel cannot tell it apart -- nothing to fix in the process" },
	{ "fork", "changed by fork()",
	  "copy-on-write or a THP split of registered memory at fork -- mark registered buffers MADV_DONTFORK with madvise() over whole huge pages (on Linux 5.13 and later ibv_fork_init() and RDMAV_FORK_SAFE=1 no longer do it), or do not fork (system(), popen()) while memory is registered" },
	{ "numa_scan", "invalidated by NUMA balancing's scan",
	  "bind memory (numactl --membind) or set kernel.numa_balancing=0" },
	{ "migrate", "moved by page migration (move_pages(), migrate_pages(), mbind(MPOL_MF_MOVE))",
	  "something migrates registered memory (numad, numactl --migrate, a job scheduler) -- stop it for this process, or allocate on the right node from the start" },
	{ "compaction", "moved by memory compaction",
	  "unpinned pages are movable -- keep buffers registered (pinned) while they are cached, or set vm.compaction_proactiveness=0" },
	{ "reclaim", "reclaimed (swapped out) under memory pressure",
	  "the process or its cgroup is short of memory -- give it more (memory.max), or mlock() registered buffers" },
	{ "ksm", "merged by KSM (ksmd)",
	  "KSM is on for this memory (MADV_MERGEABLE, prctl PR_SET_MEMORY_MERGE, a container runtime) -- turn it off for registered memory" },
	{ "khugepaged", "collapsed into huge pages by khugepaged",
	  "allocate registered buffers as huge pages from the start (2 MiB aligned, MADV_HUGEPAGE), or mark them MADV_NOHUGEPAGE" },
	{ "soft_dirty", "invalidated by a soft-dirty reset (/proc/PID/clear_refs)",
	  "a checkpointer or tracker (CRIU) resets soft-dirty bits; nothing moved -- stop it while the job runs" },
	{ "exit", "released as the process exits or execs", "nothing to do" },
	{ "ioctl", "invalidated by the application itself (mapwatch_invalidate())",
	  "nothing to do" },
	{ "syscall", "changed by another system call (truncate, fallocate of a mapped file...)",
	  "do not truncate or punch holes in files whose mappings are registered" },
	{ "kthread", "changed by a kernel thread",
	  "look at the kernel's memory tuning (compaction, THP, KSM)" },
	{ "unknown", "changed for a reason the kernel did not tell",
	  "module/README.md lists what this kernel lets mapwatch tell apart" },
};

struct finding {
	const char *cause;
	uint64_t regions;
	char text[512];
};

/*
 * Findings for the counters of one interval, biggest first.  Faults are
 * told apart by what came with them: NUMA balancing's scans (skipped or
 * not) make them its migrations; a fork makes them copy-on-write.
 */
static size_t why_findings(const struct why_counts *w, struct finding *out,
			   size_t max)
{
	int fault = name_index(cause_names, NCAUSES, "fault");
	int scan = name_index(cause_names, NCAUSES, "numa_scan");
	int fork_i = name_index(cause_names, NCAUSES, "fork");
	char numa[16] = "0";
	size_t n = 0;

	read_line("/proc/sys/kernel/numa_balancing", numa, sizeof(numa));
	for (size_t c = 0; c < NCAUSES && n < max; c++) {
		uint64_t v = w->cause[c];
		struct finding *f = &out[n];

		if (!v)
			continue;
		f->cause = cause_names[c];
		f->regions = v;
		if ((int)c == fault) {
			uint64_t scans = w->cause[scan] + w->skipped[scan];
			bool forked = w->cause[fork_i] || w->skipped[fork_i];

			if (scans || (!forked && strcmp(numa, "0")))
				snprintf(f->text, sizeof(f->text),
					 "%" PRIu64 " region%s: NUMA balancing moved pages (%" PRIu64 " fault%s, %" PRIu64 " scan%s) -- bind memory (numactl --membind) or set kernel.numa_balancing=0",
					 v, v == 1 ? "" : "s", v, v == 1 ? "" : "s",
					 scans, scans == 1 ? "" : "s");
			else if (forked)
				snprintf(f->text, sizeof(f->text),
					 "%" PRIu64 " region%s replaced on a write fault after fork(): copy-on-write of registered memory -- mark registered buffers MADV_DONTFORK with madvise() over whole huge pages (on Linux 5.13 and later ibv_fork_init() and RDMAV_FORK_SAFE=1 no longer do it)",
					 v, v == 1 ? "" : "s");
			else
				snprintf(f->text, sizeof(f->text),
					 "%" PRIu64 " region%s replaced on a page fault (copy-on-write after fork, or NUMA balancing) -- MADV_DONTFORK on registered buffers; numactl --membind or kernel.numa_balancing=0",
					 v, v == 1 ? "" : "s");
		} else {
			const char *what = "changed", *todo = "";

			for (size_t a = 0; a < sizeof(advice) / sizeof(advice[0]); a++)
				if (!strcmp(advice[a].cause, cause_names[c])) {
					what = advice[a].what;
					todo = advice[a].todo;
				}
			snprintf(f->text, sizeof(f->text), "%" PRIu64 " region%s %s: %s",
				 v, v == 1 ? "" : "s", what, todo);
		}
		n++;
	}
	for (size_t i = 1; i < n; i++)		/* biggest first */
		for (size_t j = i; j > 0 && out[j].regions > out[j - 1].regions; j--) {
			struct finding t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

static int cmd_why(const char *pid_arg, bool json, bool once, double interval)
{
	struct snapshot a, b = { 0 };
	struct why_counts w = { 0 }, wa = { 0 };
	struct finding f[NCAUSES];
	uint64_t events = 0, invalidated, skipped;
	char comm[32] = "?", path[64], text[1024];
	size_t nf;
	int pid = atoi(pid_arg), ret;

	if (!module_loaded()) {
		fprintf(stderr, "%s why: the mapwatch module is not loaded (load it with: modprobe mapwatch; see mapwatch status)\n",
			prog);
		return 1;
	}
	ret = pid_rows(pid, &a);
	if (ret) {
		fprintf(stderr, ret == -ENOENT ? "%s why: no process %d\n" :
			"%s why: cannot read the open files of process %d (another user's: run as root)\n",
			prog, pid);
		return 3;
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	read_line(path, comm, sizeof(comm));
	if (!a.n) {
		fprintf(stderr, "%s why: process %d (%s) holds no mapwatch fd%s\n", prog, pid,
			comm, has_uffd_reader(pid) ?
			": it uses libmapwatch's userfaultfd backend, whose reasons only its own cache statistics hold (mapwatch_cache_get_stats(3))" :
			" (it registers nothing through mapwatch)");
		free(a.rows);
		return 4;
	}
	if (!once) {
		struct timespec ts = {
			.tv_sec = (time_t)interval,
			.tv_nsec = (long)((interval - (double)(time_t)interval) * 1e9),
		};

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		ret = pid_rows(pid, &b);
		if (ret) {
			fprintf(stderr, "%s why: process %d went away during the interval\n",
				prog, pid);
			free(a.rows);
			return 3;
		}
	}
	/* Per fd: the second reading less the first (an fd opened meanwhile
	 * counts from 0). */
	for (size_t i = 0; i < (once ? a.n : b.n); i++) {
		const struct fd_row *r = once ? &a.rows[i] : &b.rows[i];
		struct why_counts d = r->why;
		uint64_t ev = r->events;

		for (size_t j = 0; !once && j < a.n; j++)
			if (a.rows[j].fd == r->fd) {
				why_sub(&d, &r->why, &a.rows[j].why);
				ev = r->events >= a.rows[j].events ?
				     r->events - a.rows[j].events : r->events;
			}
		why_add(&w, &d);
		why_add(&wa, &r->why);
		events += ev;
	}
	invalidated = why_sum(w.cause, NCAUSES);
	skipped = why_sum(w.skipped, NCAUSES);
	nf = w.seen ? why_findings(&w, f, NCAUSES) : 0;
	if (json) {
		printf("{\"pid\":%d,\"comm\":", pid);
		json_str(stdout, comm);
		printf(",\"fds\":%zu,\"interval\":", once ? a.n : b.n);
		if (once)
			fputs("null", stdout);
		else
			printf("%g", interval);
		printf(",\"events\":%" PRIu64 ",\"invalidated\":%" PRIu64
		       ",\"skipped\":%" PRIu64, events, invalidated, skipped);
		why_json(stdout, &w);
		printf(",\"findings\":[");
		for (size_t i = 0; i < nf; i++) {
			printf("%s{\"cause\":\"%s\",\"regions\":%" PRIu64 ",\"text\":",
			       i ? "," : "", f[i].cause, f[i].regions);
			json_str(stdout, f[i].text);
			printf("}");
		}
		printf("]}\n");
		goto out;
	}
	{
		char span[64];

		if (once)
			snprintf(span, sizeof(span), "since it opened %s", a.n == 1 ?
				 "its mapwatch fd" : "its mapwatch fds");
		else
			snprintf(span, sizeof(span), "in the last %g s", interval);
		if (!w.seen) {
			printf("mapwatch why %d (%s): %" PRIu64 " events %s; this module counts no reasons (mapwatch.ko before 1.4: load a newer one)\n",
			       pid, comm, events, span);
			goto out;
		}
		printf("mapwatch why %d (%s): %" PRIu64 " region%s invalidated %s (%zu mapwatch fd%s)\n",
		       pid, comm, invalidated, invalidated == 1 ? "" : "s", span,
		       once ? a.n : b.n, (once ? a.n : b.n) == 1 ? "" : "s");
	}
	if (invalidated) {
		counts_text(text, sizeof(text), reason_names, w.reason, NREASONS, false);
		printf("  by reason: %s\n", text);
	}
	for (size_t i = 0; i < nf; i++)
		printf("  %s\n", f[i].text);
	if (skipped) {
		counts_text(text, sizeof(text), cause_names, w.skipped, NCAUSES, false);
		printf("  %" PRIu64 " protection-only invalidation%s skipped, nothing moved (%s): nothing to do\n",
		       skipped, skipped == 1 ? "" : "s", text);
	}
	if (!invalidated && !skipped)
		printf("  nothing invalidated its regions\n");
out:
	free(a.rows);
	free(b.rows);
	return 0;
}

/* --- command line ------------------------------------------------------- */

int main(int argc, char **argv)
{
	const char *cmd = NULL, *device = NULL, *pid_arg = NULL;
	bool json = false, once = false;
	double interval = 2.0;
	long count = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		char *end;

		if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "help")) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("mapwatch %s\n", MAPWATCH_VERSION);
			return 0;
		}
		if (a[0] != '-') {
			if (cmd && !strcmp(cmd, "why") && !pid_arg) {
				if (!is_number(a) || strlen(a) > 9 || !atoi(a))
					return usage_error("bad PID '%s' (a process id)", a);
				pid_arg = a;
				continue;
			}
			if (cmd)
				return usage_error("unexpected argument '%s'", a);
			if (strcmp(a, "status") && strcmp(a, "top") && strcmp(a, "check") &&
			    strcmp(a, "why"))
				return usage_error("unknown command '%s' (commands: status, top, check, why)",
						   a);
			cmd = a;
			continue;
		}
		/* --opt=value or --opt value for the options that take one. */
		{
			const char *eq = strchr(a, '=');
			size_t len = eq ? (size_t)(eq - a) : strlen(a);
			int which = 0;

			if (len == 10 && !strncmp(a, "--interval", len))
				which = 1;
			else if (len == 7 && !strncmp(a, "--count", len))
				which = 2;
			else if (len == 8 && !strncmp(a, "--device", len))
				which = 3;
			if (which) {
				if (eq)
					val = eq + 1;
				else if (i + 1 < argc)
					val = argv[++i];
				else
					return usage_error("option '%s' needs a value", a);
			}
			if (which == 1) {
				errno = 0;
				interval = strtod(val, &end);
				if (errno || end == val || *end || !(interval > 0) ||
				    interval > 86400)
					return usage_error("bad --interval '%s' (seconds, > 0)", val);
				continue;
			}
			if (which == 2) {
				errno = 0;
				count = strtol(val, &end, 10);
				if (errno || end == val || *end || count <= 0)
					return usage_error("bad --count '%s' (a positive number)", val);
				continue;
			}
			if (which == 3) {
				if (!*val)
					return usage_error("empty --device");
				device = val;
				continue;
			}
		}
		if (!strcmp(a, "--json"))
			json = true;
		else if (!strcmp(a, "--once"))
			once = true;
		else
			return usage_error("unknown option '%s'", a);
	}
	if (!cmd) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (!strcmp(cmd, "why")) {
		if (!pid_arg)
			return usage_error("why needs a PID");
		if (count)
			return usage_error("--count is an option of top");
		if (once && interval != 2.0)
			return usage_error("why takes --interval or --once, not both");
	} else if (strcmp(cmd, "top") && (once || count || interval != 2.0)) {
		return usage_error("--once, --interval and --count are options of top");
	}
	if (strcmp(cmd, "check") && device)
		return usage_error("--device is an option of check");
	if (!strcmp(cmd, "status"))
		return cmd_status(json);
	if (!strcmp(cmd, "top"))
		return cmd_top(json, once, interval, count);
	if (!strcmp(cmd, "why"))
		return cmd_why(pid_arg, json, once, interval);
	return cmd_check(json, device);
}
