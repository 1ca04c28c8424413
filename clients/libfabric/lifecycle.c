// SPDX-License-Identifier: GPL-2.0-only
/*
 * libfabric's own lifecycle on mapwatch.  libfabric's kdreg2 monitor opens
 * /dev/kdreg2 (and CONFIG_DATA maps its status area) when the first MR
 * cache appears, and stops with close(fd) alone, the status area left
 * mapped, when the last one goes: every fi_domain close/open of a process
 * with one domain is a monitor restart.  Here one process opens and closes
 * a verbs domain CYCLES times and registers a buffer through the domain's
 * MR cache each time; afterwards mapwatch must hold no context of the
 * closed domains.  The cost of an unrelated munmap in the process before
 * and after is printed as a ratio (no assertion: timing goals belong to
 * make bench).  Built against clients/libfabric/build's libfabric, run in
 * the test guest with Soft-RoCE up (clients/libfabric/run-guest).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <time.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>

#include "tap.h"

#define CYCLES		500
#define MR_LEN		(64 * 1024)
#define MUNMAP_SAMPLES	1001
#define SYSFS		"/sys/kernel/mapwatch/"

/* The fd libfabric's monitor holds open on the device, or -1. */
static int monitor_fd(void)
{
	char link[300], target[PATH_MAX];
	struct dirent *d;
	int fd = -1;
	DIR *dir;

	dir = opendir("/proc/self/fd");
	if (!dir)
		return -1;
	while ((d = readdir(dir)) && fd < 0) {
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%s", d->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (!strcmp(target, "/dev/kdreg2") || !strcmp(target, "/dev/mapwatch"))
			fd = atoi(d->d_name);
	}
	closedir(dir);
	return fd;
}

/* A "mapwatch-KEY:" field of the fd's fdinfo: only mapwatch prints them. */
static long long fdinfo_field(int fd, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':')
			v = strtoll(line + klen + 1, NULL, 10);
	fclose(f);
	return v;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/* Median cost of munmap of a fresh, touched page nobody monitors. */
static long long unrelated_munmap_ns(void)
{
	static long long t[MUNMAP_SAMPLES];

	for (int i = 0; i < MUNMAP_SAMPLES; i++) {
		char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		long long t0;

		if (p == MAP_FAILED)
			return -1;
		p[0] = 1;
		t0 = now_ns();
		munmap(p, 4096);
		t[i] = now_ns() - t0;
	}
	qsort(t, MUNMAP_SAMPLES, sizeof(t[0]), cmp_ll);
	return t[MUNMAP_SAMPLES / 2];
}

static struct fi_info *verbs_info(void)
{
	struct fi_info *hints = fi_allocinfo(), *info = NULL;
	int ret;

	if (!hints)
		return NULL;
	hints->ep_attr->type = FI_EP_MSG;
	hints->caps = FI_MSG;
	hints->mode = FI_CONTEXT;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR |
				      FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	hints->fabric_attr->prov_name = strdup("verbs");
	ret = fi_getinfo(FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION),
			 NULL, NULL, 0, hints, &info);
	fi_freeinfo(hints);
	if (ret) {
		tap_diag("fi_getinfo(verbs): %s (Soft-RoCE up?)", fi_strerror(-ret));
		return NULL;
	}
	return info;
}

/*
 * Open and close a domain `cycles` times, one MR through the cache each
 * time, checking that the MR is monitored by a mapwatch context while the
 * domain lives and that libfabric closed the fd after.  Returns the number
 * of cycles that behaved so.
 */
static int domain_cycles(int cycles)
{
	struct fi_info *info = verbs_info();
	struct fid_fabric *fabric;
	int good = 0, ret;
	char *buf;

	if (!info)
		return -1;
	ret = fi_fabric(info->fabric_attr, &fabric, NULL);
	if (ret) {
		tap_diag("fi_fabric: %s", fi_strerror(-ret));
		return -1;
	}
	buf = mmap(NULL, MR_LEN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return -1;
	memset(buf, 1, MR_LEN);
	for (int i = 0; i < cycles; i++) {
		struct fid_domain *domain;
		struct fid_mr *mr;
		long long regions;
		int fd;

		ret = fi_domain(fabric, info, &domain, NULL);
		if (ret) {
			tap_diag("cycle %d: fi_domain: %s", i, fi_strerror(-ret));
			break;
		}
		ret = fi_mr_reg(domain, buf, MR_LEN, FI_SEND | FI_RECV, 0, 0, 0,
				&mr, NULL);
		if (ret) {
			tap_diag("cycle %d: fi_mr_reg: %s", i, fi_strerror(-ret));
			fi_close(&domain->fid);
			break;
		}
		/* Cached means monitored: libfabric's kdreg2 fd, a mapwatch one. */
		fd = monitor_fd();
		regions = fd < 0 ? -1 : fdinfo_field(fd, "mapwatch-regions");
		fi_close(&mr->fid);
		fi_close(&domain->fid);
		if (fd < 0) {
			tap_diag("cycle %d: no /dev/kdreg2 fd: libfabric's MR cache is not on the kdreg2 monitor", i);
			break;
		}
		if (regions != 1) {
			tap_diag("cycle %d: the monitor's fd has %lld mapwatch regions, want 1 (%s)",
				 i, regions, regions < 0 ? "not a mapwatch fd" : "MR not cached");
			break;
		}
		if (monitor_fd() >= 0) {
			tap_diag("cycle %d: the monitor's fd is still open after the domain closed", i);
			break;
		}
		good++;
	}
	munmap(buf, MR_LEN);
	fi_close(&fabric->fid);
	fi_freeinfo(info);
	return good;
}

static void cycles_then_no_context(int cycles, int measure)
{
	long long before, after, t_before = 0, t_after = 0;
	int done;

	/* A monitor restart per cycle: give slow guests time. */
	alarm(900);
	setenv("FI_MR_CACHE_MONITOR", "kdreg2", 1);
	before = tap_read_ll(SYSFS, "contexts");
	ASSERT_GE(before, 0);
	if (measure)
		t_before = unrelated_munmap_ns();
	done = domain_cycles(cycles);
	if (measure)
		t_after = unrelated_munmap_ns();
	after = tap_read_ll(SYSFS, "contexts");
	tap_diag("%d of %d cycles; /sys/kernel/mapwatch/contexts %lld before, %lld after",
		 done, cycles, before, after);
	if (measure && t_before > 0 && t_after > 0)
		tap_diag("unrelated munmap after %d domain cycles: %.2fx (median %lld ns before, %lld ns after)",
			 done, (double)t_after / t_before, t_before, t_after);
	ASSERT_EQ(done, cycles);
	/* Contexts of closed domains still held: the close did not free them. */
	ASSERT_EQ(after, before);
}

TEST(one_domain_cycle_frees_its_context)
{
	cycles_then_no_context(1, 0);
}

TEST(domain_open_close_500_frees_every_context)
{
	cycles_then_no_context(CYCLES, 1);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
