/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What a guest test reads or sets of mapwatch.ko from outside the device:
 * its parameters (/sys/module/mapwatch/parameters), a fd's fdinfo fields,
 * and the status areas mapped in this process (/proc/self/maps).
 */
#ifndef MAPWATCH_TESTS_MODULE_STATE_H
#define MAPWATCH_TESTS_MODULE_STATE_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MW_PARAM_DIR "/sys/module/mapwatch/parameters/"

/* 0, or the errno of writing @val to the module parameter @name. */
static inline int write_param(const char *name, const char *val)
{
	char path[128];
	int fd, err = 0;

	snprintf(path, sizeof(path), MW_PARAM_DIR "%s", name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return errno;
	if (write(fd, val, strlen(val)) < 0)
		err = errno;
	close(fd);
	return err;
}

static inline int write_param_ll(const char *name, long long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", v);
	return write_param(name, buf);
}

/* How many status areas this process has mapped. */
static inline int status_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "[mapwatch-status]") != NULL;
	fclose(f);
	return n;
}

/* The field @key ("mapwatch-...") of /proc/@pid/fdinfo/@fd (0: self), or -1. */
static inline long long fdinfo_of(pid_t pid, int fd, const char *key)
{
	char path[64], line[256];
	size_t n = strlen(key);
	long long v = -1;
	FILE *f;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	else
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = atoll(line + n + 1);
			break;
		}
	fclose(f);
	return v;
}

static inline long long fdinfo(int fd, const char *key)
{
	return fdinfo_of(0, fd, key);
}

#endif /* MAPWATCH_TESTS_MODULE_STATE_H */
