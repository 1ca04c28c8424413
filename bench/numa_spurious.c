// SPDX-License-Identifier: GPL-2.0-only
/*
 * Figure 8: spurious invalidations under NUMA balancing.
 *
 * In a guest with two NUMA nodes, a working set allocated on node 0 is
 * watched page by page and touched for T seconds by a thread on node 1,
 * with automatic NUMA balancing on and aggressive scan settings.  NUMA
 * hinting (a protection-only change) must not invalidate; the migrations it
 * triggers must.  Reports the generation changes whose page never left
 * node 0 (spurious, must be 0) next to the regions whose page really moved.
 *
 * usage: numa_spurious [--seconds T] [--pages N] [--json FILE]
 * Exits 77 (skip) on a machine with fewer than two nodes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mapwatch_uapi.h"

#define PAGE 4096UL
#define MPOL_DEFAULT 0
#define MPOL_BIND 2

static long move_pages_query(unsigned long n, void **pages, int *status)
{
	return syscall(SYS_move_pages, 0, n, pages, NULL, status, 0);
}

static long set_mempolicy_node(int mode, int node)
{
	unsigned long mask = 1UL << node;

	return syscall(SYS_set_mempolicy, mode, mode == MPOL_DEFAULT ? NULL : &mask,
		       mode == MPOL_DEFAULT ? 0 : 64);
}

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, val, strlen(val));
	close(fd);
	return n < 0 ? -1 : 0;
}

static long vmstat(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ' ')
			v = atol(line + strlen(key) + 1);
	fclose(f);
	return v;
}

static int cpu_of_node(int node)
{
	char path[128], buf[64];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist", node);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f))
		return -1;
	fclose(f);
	return atoi(buf);
}

int main(int argc, char **argv)
{
	int seconds = 10, npages = 4096, cpu1;
	const char *json = NULL;
	struct kdreg2_config_data cfg;
	struct mapwatch_monitor_entry *e;
	struct mapwatch_batch b = { .size = sizeof(b), .entry_size = sizeof(*e) };
	void **pages;
	int *status;
	bool *moved;
	char *ws;
	int fd;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--pages") && i + 1 < argc)
			npages = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--seconds T] [--pages N] [--json FILE]\n",
				argv[0]);
			return 2;
		}
	}
	cpu1 = cpu_of_node(1);
	if (cpu1 < 0) {
		printf("numa_spurious: needs two NUMA nodes (vm/run --numa): skipped\n");
		return 77;
	}
	mkdir("/sys/kernel/debug", 0755);
	mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
	if (write_file("/proc/sys/kernel/numa_balancing", "1")) {
		fprintf(stderr, "numa_spurious: cannot enable numa_balancing: %s\n",
			strerror(errno));
		return 1;
	}
	/* Scan early and often: the most hinting faults per second. */
	write_file("/sys/kernel/debug/sched/numa_balancing/scan_delay_ms", "10");
	write_file("/sys/kernel/debug/sched/numa_balancing/scan_period_min_ms", "10");
	write_file("/sys/kernel/debug/sched/numa_balancing/scan_period_max_ms", "100");
	write_file("/sys/kernel/debug/sched/numa_balancing/scan_size_mb", "256");

	fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_NONBLOCK);
	cfg = (struct kdreg2_config_data){ .max_regions = npages };
	if (fd < 0 || ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &cfg)) {
		perror("numa_spurious: open/config");
		return 1;
	}

	/* Allocate on node 0, then let the balancer move it freely. */
	set_mempolicy_node(MPOL_BIND, 0);
	ws = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ws == MAP_FAILED)
		return 1;
	madvise(ws, npages * PAGE, MADV_NOHUGEPAGE);
	memset(ws, 1, npages * PAGE);
	set_mempolicy_node(MPOL_DEFAULT, 0);

	e = calloc(npages, sizeof(*e));
	pages = calloc(npages, sizeof(*pages));
	status = calloc(npages, sizeof(*status));
	moved = calloc(npages, sizeof(*moved));
	for (int i = 0; i < npages; i++) {
		pages[i] = ws + i * PAGE;
		e[i] = (struct mapwatch_monitor_entry){
			.addr = (uintptr_t)pages[i], .length = PAGE, .cookie = i };
	}
	b.count = npages;
	b.entries = (uintptr_t)e;
	if (ioctl(fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b) != npages) {
		perror("numa_spurious: MONITOR_BATCH");
		return 1;
	}
	if (move_pages_query(npages, pages, status)) {
		perror("numa_spurious: move_pages");
		return 1;
	}
	int on0 = 0;

	for (int i = 0; i < npages; i++)
		on0 += status[i] == 0;

	/*
	 * Phase 1, half the time: touch from node 0, where the pages live.
	 * Hinting faults happen, migrations should not: any change is spurious.
	 * Phase 2: touch from node 1, so the balancer migrates the pages.
	 */
	long mig0 = vmstat("numa_pages_migrated"), hint0 = vmstat("numa_hint_faults");
	unsigned long sweeps = 0;
	long hints_local = 0, mig_local = 0;
	int changed_local = 0;

	for (int phase = 0; phase < 2; phase++) {
		cpu_set_t set;
		time_t end = time(NULL) + (seconds + 1) / 2;

		CPU_ZERO(&set);
		CPU_SET(phase ? cpu1 : cpu_of_node(0), &set);
		sched_setaffinity(0, sizeof(set), &set);
		while (time(NULL) < end) {
			for (int i = 0; i < npages; i++)
				((volatile char *)ws)[i * PAGE] += 1;
			sweeps++;
			if (!move_pages_query(npages, pages, status))
				for (int i = 0; i < npages; i++)
					moved[i] |= status[i] != 0;
		}
		if (phase == 0) {
			hints_local = vmstat("numa_hint_faults") - hint0;
			mig_local = vmstat("numa_pages_migrated") - mig0;
			for (int i = 0; i < npages; i++) {
				struct kdreg2_monitoring_params p = {
					.location = e[i].location,
					.generation = e[i].generation };

				changed_local += kdreg2_mapping_changed(cfg.status_data, &p) &&
						 !moved[i];
			}
		}
	}
	long migrated = vmstat("numa_pages_migrated") - mig0;
	long hints = vmstat("numa_hint_faults") - hint0;
	int changed = 0, spurious = 0, moved_n = 0, missed = 0;

	for (int i = 0; i < npages; i++) {
		struct kdreg2_monitoring_params p = { .location = e[i].location,
						      .generation = e[i].generation };
		bool ch = kdreg2_mapping_changed(cfg.status_data, &p);

		changed += ch;
		moved_n += moved[i];
		spurious += ch && !moved[i];
		missed += moved[i] && !ch;
	}
	printf("fig8 NUMA balancing, %d watched pages (%d on node 0 at start), %d s, %lu sweeps\n",
	       npages, on0, seconds, sweeps);
	printf("fig8 phase 1 (touched from node 0): hinting faults %ld, migrated %ld, regions changed without moving %d (goal 0)\n",
	       hints_local, mig_local, changed_local);
	printf("fig8 whole run: hinting faults %ld, pages migrated (vmstat) %ld\n", hints, migrated);
	printf("fig8 regions whose page moved %d, regions changed %d, spurious %d (goal 0), missed %d (must be 0)\n",
	       moved_n, changed, spurious, missed);
	printf("fig8 skipped protection-only invalidations (this fd): %llu\n",
	       (unsigned long long)kdreg2_read_counter(&mapwatch_status_ext(cfg.status_data)->skipped_invalidations));
	if (json) {
		FILE *f = fopen(json, "w");

		if (f) {
			fprintf(f, "{\"figure\":\"8\",\"pages\":%d,\"seconds\":%d,"
				"\"hint_faults\":%ld,\"migrated\":%ld,\"moved\":%d,"
				"\"changed\":%d,\"spurious\":%d,\"missed\":%d}\n",
				npages, seconds, hints, migrated, moved_n, changed,
				spurious, missed);
			fclose(f);
		}
	}
	return missed ? 1 : 0;
}
