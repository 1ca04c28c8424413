// SPDX-License-Identifier: GPL-2.0-only
/*
 * Benchmarks of the kernel module's hot paths (figures 1-5, 9, 10 of
 * bench/README.md).  Every figure is a median over repeated runs and is
 * reported next to its baseline measured in the same process, as a ratio:
 * under QEMU TCG absolute times are emulated, ratios are what to read.
 *
 * usage: module_bench [--quick] [--json FILE] [--only FIG]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mapwatch_uapi.h"
#include "bench.h"

#define PAGE 4096UL
#define REPS 5

static bool quick;
static FILE *json;
static int json_rows;

static void row(const char *fig, const char *what, double value,
		const char *unit, double ratio, const char *baseline)
{
	printf("%-4s %-52s %12.1f %-8s %8.2fx  %s\n", fig, what, value, unit,
	       ratio, baseline);
	if (json)
		fprintf(json, "%s{\"figure\":\"%s\",\"what\":\"%s\",\"value\":%.3f,"
			"\"unit\":\"%s\",\"ratio\":%.4f,\"baseline\":\"%s\"}",
			json_rows++ ? ",\n" : "", fig, what, value, unit, ratio,
			baseline);
}

static void die(const char *what)
{
	fprintf(stderr, "module_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

struct ctx {
	int fd;
	const struct kdreg2_status_data *st;
	size_t max;
	char *reserved;			/* what fill() watched */
	size_t nreserved;
};

static struct ctx open_ctx(size_t max)
{
	struct kdreg2_config_data c = { .max_regions = max };
	struct ctx x;

	x.fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_NONBLOCK);
	if (x.fd < 0)
		die("open " MAPWATCH_DEVICE_NAME);
	if (ioctl(x.fd, KDREG2_IOCTL_CONFIG_DATA, &c))
		die("CONFIG_DATA");
	x.st = c.status_data;
	x.max = max;
	x.reserved = NULL;
	x.nreserved = 0;
	return x;
}

/* Close, and unmap the status area (close alone leaves it mapped). */
static void close_ctx(struct ctx *x)
{
	size_t size = (MAPWATCH_STATE_ARRAY_OFFSET + (x->max + 1) * 4 +
		       PAGE - 1) / PAGE * PAGE;

	close(x->fd);
	munmap((void *)x->st, size);
	if (x->reserved)
		munmap(x->reserved, x->nreserved * PAGE);
}

/* Watch n one-page regions over a reserved, never-touched range. */
static void fill(struct ctx *x, size_t n, uint64_t cookie0)
{
	static struct mapwatch_monitor_entry e[4096];
	struct mapwatch_batch b = { .size = sizeof(b),
				    .entry_size = sizeof(e[0]),
				    .entries = (uintptr_t)e };
	char *base;

	if (!n)
		return;
	base = mmap(NULL, n * PAGE, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		die("mmap reserve");
	x->reserved = base;
	x->nreserved = n;
	for (size_t done = 0; done < n; done += b.count) {
		b.count = n - done < 4096 ? n - done : 4096;
		for (uint32_t i = 0; i < b.count; i++)
			e[i] = (struct mapwatch_monitor_entry){
				.addr = (uintptr_t)base + (done + i) * PAGE,
				.length = PAGE, .cookie = cookie0 + done + i };
		if (ioctl(x->fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b) !=
		    (long)b.count)
			die("MONITOR_BATCH fill");
	}
}

/* Figure 1: the validity check against a plain load. */
static void fig1(void)
{
	struct ctx x = open_ctx(4);
	char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct kdreg2_ioctl_monitor m = { .addr = p, .length = PAGE,
					  .cookie = 1 };
	long iters = quick ? 2000000 : 20000000;
	double chk[REPS], base[REPS];
	volatile uint32_t local = 7;

	if (ioctl(x.fd, KDREG2_IOCTL_MONITOR, &m))
		die("MONITOR");
	for (int r = 0; r < REPS; r++) {
		unsigned long hits = 0;
		double t = now_ns();

		for (long i = 0; i < iters; i++)
			hits += kdreg2_mapping_changed(x.st, &m.monitoring_params);
		chk[r] = (now_ns() - t) / iters;
		t = now_ns();
		for (long i = 0; i < iters; i++)
			hits += local != 7;
		base[r] = (now_ns() - t) / iters;
		if (hits)
			die("changed() reported a change");
	}
	double c = median(chk, REPS), b = median(base, REPS);

	row("1", "changed() check, per call", c, "ns", c / b,
	    "plain load of a local");
	close_ctx(&x);
	munmap(p, PAGE);
}

/* Figure 2: MONITOR + UNMONITOR pair vs regions already watched. */
static void fig2(void)
{
	static const size_t sizes[] = { 0, 1000, 100000, 1000000 };
	int pairs = quick ? 2000 : 20000;
	double base = 0;
	char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	for (unsigned int s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s];
		struct ctx x;

		if (quick && n > 100000)
			continue;	/* --quick: up to 100K regions */
		x = open_ctx(n + 1);
		double v[REPS];
		char what[64];

		fill(&x, n, 1000);
		for (int r = 0; r < REPS; r++) {
			double t = now_ns();

			for (int i = 0; i < pairs; i++) {
				struct kdreg2_ioctl_monitor m = {
					.addr = p, .length = PAGE, .cookie = 1 };
				struct kdreg2_ioctl_unmonitor u = { .cookie = 1 };

				if (ioctl(x.fd, KDREG2_IOCTL_MONITOR, &m))
					die("MONITOR");
				u.monitoring_params = m.monitoring_params;
				if (ioctl(x.fd, KDREG2_IOCTL_UNMONITOR, &u))
					die("UNMONITOR");
			}
			v[r] = (now_ns() - t) / pairs;
		}
		double med = median(v, REPS);

		if (!s)
			base = med;
		snprintf(what, sizeof(what), "watch+unwatch pair, %zu regions watched", n);
		row("2", what, med, "ns", med / base, "0 regions watched");
		close_ctx(&x);
	}
	munmap(p, PAGE);
}

/* Figure 3: batched watch+unwatch per region vs one ioctl per region. */
static void fig3(void)
{
	static const uint32_t batches[] = { 1, 16, 256, 4096 };
	static struct mapwatch_monitor_entry me[4096];
	static struct mapwatch_unmonitor_entry ue[4096];
	int total = quick ? 8192 : 65536;
	struct ctx x = open_ctx(4096);
	char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double single = 0;

	/* Baseline: the kdreg2 way, one MONITOR and one UNMONITOR each. */
	{
		double v[REPS];

		for (int r = 0; r < REPS; r++) {
			double t = now_ns();

			for (int i = 0; i < total; i++) {
				struct kdreg2_ioctl_monitor m = {
					.addr = p, .length = PAGE, .cookie = 1 };
				struct kdreg2_ioctl_unmonitor u = { .cookie = 1 };

				if (ioctl(x.fd, KDREG2_IOCTL_MONITOR, &m))
					die("MONITOR");
				u.monitoring_params = m.monitoring_params;
				if (ioctl(x.fd, KDREG2_IOCTL_UNMONITOR, &u))
					die("UNMONITOR");
			}
			v[r] = (now_ns() - t) / total;
		}
		single = median(v, REPS);
		row("3", "watch+unwatch per region, single ioctls", single, "ns",
		    1.0, "single ioctls");
	}
	for (unsigned int k = 0; k < sizeof(batches) / sizeof(batches[0]); k++) {
		uint32_t bs = batches[k];
		struct mapwatch_batch mb = { .size = sizeof(mb), .count = bs,
					     .entry_size = sizeof(me[0]),
					     .entries = (uintptr_t)me };
		struct mapwatch_batch ub = { .size = sizeof(ub), .count = bs,
					     .entry_size = sizeof(ue[0]),
					     .entries = (uintptr_t)ue };
		double v[REPS];
		char what[64];

		for (int r = 0; r < REPS; r++) {
			double t = now_ns();

			for (int done = 0; done < total; done += bs) {
				for (uint32_t i = 0; i < bs; i++)
					me[i] = (struct mapwatch_monitor_entry){
						.addr = (uintptr_t)p,
						.length = PAGE, .cookie = i };
				if (ioctl(x.fd, MAPWATCH_IOCTL_MONITOR_BATCH, &mb) != (long)bs)
					die("MONITOR_BATCH");
				for (uint32_t i = 0; i < bs; i++)
					ue[i] = (struct mapwatch_unmonitor_entry){
						.cookie = i,
						.location = me[i].location,
						.generation = me[i].generation };
				if (ioctl(x.fd, MAPWATCH_IOCTL_UNMONITOR_BATCH, &ub) != (long)bs)
					die("UNMONITOR_BATCH");
			}
			v[r] = (now_ns() - t) / total;
		}
		double med = median(v, REPS);

		snprintf(what, sizeof(what), "watch+unwatch per region, batch %u", bs);
		row("3", what, med, "ns", single / med, "single ioctls (x cheaper)");
	}
	close_ctx(&x);
	munmap(p, PAGE);
}

static double mmap_munmap_ns(int rounds)
{
	double v[REPS];

	for (int r = 0; r < REPS; r++) {
		double t = now_ns();

		for (int i = 0; i < rounds; i++) {
			char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (q == MAP_FAILED)
				die("mmap");
			q[0] = 1;
			munmap(q, PAGE);
		}
		v[r] = (now_ns() - t) / rounds;
	}
	return median(v, REPS);
}

/* Figure 4: what an unwatched mmap+munmap pays for regions elsewhere. */
static void fig4(void)
{
	static const size_t sizes[] = { 0, 1000, 100000, 1000000 };
	int rounds = quick ? 2000 : 20000;
	double base = mmap_munmap_ns(rounds);

	row("4", "mmap+touch+munmap, no mapwatch fd", base, "ns", 1.0,
	    "no fd");
	for (unsigned int s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s];
		struct ctx x;

		if (quick && n > 100000)
			continue;	/* --quick: up to 100K regions */
		x = open_ctx(n + 1);
		char what[64];
		double med;

		fill(&x, n, 1000);
		med = mmap_munmap_ns(rounds);
		snprintf(what, sizeof(what),
			 "mmap+touch+munmap, %zu regions elsewhere", n);
		row("4", what, med, "ns", med / base, "no fd");
		close_ctx(&x);
	}
}

/* Figure 5: munmap of watched memory; changed() and the event. */
static void fig5(void)
{
	static const int counts[] = { 1, 64, 4096 };
	int rounds = quick ? 100 : 500;
	struct ctx x = open_ctx(4096);
	double unwatched[REPS];
	struct kdreg2_event ev[64];

	for (int r = 0; r < REPS; r++) {
		double spent = 0;

		for (int i = 0; i < rounds; i++) {
			char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			double t;

			q[0] = 1;
			t = now_ns();
			munmap(q, PAGE);
			spent += now_ns() - t;
		}
		unwatched[r] = spent / rounds;
	}
	double base = median(unwatched, REPS);
	long late = 0, event_late = 0;

	for (unsigned int k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		int n = counts[k];
		double v[REPS];
		char what[64];
		int rr = n > 64 ? rounds / 10 : rounds;

		for (int r = 0; r < REPS; r++) {
			double spent = 0;

			for (int i = 0; i < rr; i++) {
				char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
					       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				struct kdreg2_monitoring_params first = { 0 };

				q[0] = 1;
				for (int c = 0; c < n; c++) {
					struct kdreg2_ioctl_monitor m = {
						.addr = q, .length = PAGE,
						.cookie = c };

					if (ioctl(x.fd, KDREG2_IOCTL_MONITOR, &m))
						die("MONITOR");
					if (!c)
						first = m.monitoring_params;
				}
				double t = now_ns();

				munmap(q, PAGE);
				spent += now_ns() - t;
				late += !kdreg2_mapping_changed(x.st, &first);
				if (kdreg2_read_counter(&x.st->pending_events) != (uint64_t)n)
					event_late++;
				ioctl(x.fd, KDREG2_IOCTL_FLUSH);
			}
			v[r] = spent / rr;
		}
		double med = median(v, REPS);

		snprintf(what, sizeof(what), "munmap of a page watched by %d regions", n);
		row("5", what, med, "ns", med / base, "munmap of an unwatched page");
	}
	row("5", "changed() false after munmap returned (rounds)", late, "count",
	    0, "must be 0");
	row("5", "event not yet counted after munmap returned", event_late,
	    "count", 0, "must be 0");

	/* Time from munmap's return until a read() returns the event. */
	double v[REPS];

	for (int r = 0; r < REPS; r++) {
		double spent = 0;

		for (int i = 0; i < rounds; i++) {
			char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			struct kdreg2_ioctl_monitor m = { .addr = q,
							  .length = PAGE,
							  .cookie = 9 };

			q[0] = 1;
			if (ioctl(x.fd, KDREG2_IOCTL_MONITOR, &m))
				die("MONITOR");
			munmap(q, PAGE);
			double t = now_ns();

			if (read(x.fd, ev, sizeof(ev)) != sizeof(ev[0]))
				die("read after munmap");
			spent += now_ns() - t;
		}
		v[r] = spent / rounds;
	}
	double med = median(v, REPS);

	row("5", "munmap return -> event read (one read() call)", med, "ns",
	    med / base, "munmap of an unwatched page");
	close_ctx(&x);
}

/*
 * Figure 9: client lifecycle.  libfabric's kdreg2 monitor restarts (open,
 * CONFIG_DATA with its cache size, MONITOR, close without munmap) each time
 * a domain closes and a new one opens; what do the restarts leave behind
 * for the rest of the process?  The munmap of an unrelated page after 500
 * restarts, against a twin process forked before them that never opened
 * the device; the two take turns measuring, so a change in the host's load
 * (TCG, shared CPUs) hits both alike.
 */
static double unrelated_munmap_ns(int rounds)
{
	double spent = 0;

	for (int i = 0; i < rounds; i++) {
		char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		double t;

		if (q == MAP_FAILED)
			die("mmap");
		q[0] = 1;
		t = now_ns();
		munmap(q, PAGE);
		spent += now_ns() - t;
	}
	return spent / rounds;
}

static void fig9(void)
{
	int cycles = 500, rounds = quick ? 200 : 1000, turns = 2 * REPS + 1;
	int to_twin[2], to_me[2];
	double mine[2 * REPS + 1], twin[2 * REPS + 1], t;
	char *buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pid_t pid;

	if (buf == MAP_FAILED || pipe(to_twin) || pipe(to_me))
		die("fig9 setup");
	buf[0] = 1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* The twin: measures a turn whenever asked, reports it. */
		char c;

		close(to_twin[1]);
		close(to_me[0]);
		while (read(to_twin[0], &c, 1) == 1) {
			double v = unrelated_munmap_ns(rounds);

			if (write(to_me[1], &v, sizeof(v)) != sizeof(v))
				_exit(1);
		}
		_exit(0);
	}
	/* Only the twin keeps these ends: it sees EOF when we are done. */
	close(to_twin[0]);
	close(to_me[1]);
	t = now_ns();
	for (int i = 0; i < cycles; i++) {
		struct kdreg2_config_data c = { .max_regions = 1024 };
		struct kdreg2_ioctl_monitor m = { .addr = buf, .length = PAGE,
						  .cookie = i + 1 };
		int fd = open(KDREG2_DEVICE_NAME, O_RDWR);

		if (fd < 0)
			die("open " KDREG2_DEVICE_NAME);
		if (ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c))
			die("CONFIG_DATA");
		if (ioctl(fd, KDREG2_IOCTL_MONITOR, &m))
			die("MONITOR");
		close(fd);
	}
	t = (now_ns() - t) / cycles;
	for (int r = 0; r < turns; r++) {
		if (write(to_twin[1], "m", 1) != 1 ||
		    read(to_me[0], &twin[r], sizeof(twin[r])) !=
		    sizeof(twin[r]))
			die("twin");
		mine[r] = unrelated_munmap_ns(rounds);
	}
	close(to_twin[1]);
	close(to_me[0]);
	waitpid(pid, NULL, 0);
	double a = median(mine, turns), b = median(twin, turns);

	row("9", "open+CONFIG_DATA(1024)+MONITOR+close cycle", t, "ns", 1.0,
	    "-");
	row("9", "unrelated munmap after 500 restarts", a, "ns", a / b,
	    "twin process without them");
	munmap(buf, PAGE);
}

/*
 * Figure 10: how long the notifier holds a context's lock when one munmap
 * retires 1M regions (4 GiB of reserved address space, one page each).
 * The module keeps the worst hold in /sys/kernel/mapwatch/max_hold_ns
 * (root resets it by writing 0).
 */
static long long max_hold_ns(bool reset)
{
	const char *path = "/sys/kernel/mapwatch/max_hold_ns";
	long long v = -1;
	FILE *f = fopen(path, reset ? "w" : "r");

	if (!f)
		return -1;
	if (reset)
		v = fputs("0", f) < 0 ? -1 : 0;
	else if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	if (fclose(f))
		v = -1;
	return v;
}

static void fig10(void)
{
	size_t n = quick ? 100000 : 1000000;
	struct ctx x = open_ctx(n);
	char what[64];
	double t;

	fill(&x, n, 1);
	max_hold_ns(true);
	t = now_ns();
	munmap(x.reserved, x.nreserved * PAGE);
	t = now_ns() - t;
	x.reserved = NULL;
	if (kdreg2_read_counter(&x.st->num_active_regions))
		die("regions left after munmap");
	snprintf(what, sizeof(what), "munmap retiring %zu regions", n);
	row("10", what, t / 1e6, "ms", 1.0, "-");
	snprintf(what, sizeof(what),
		 "worst notifier lock hold in it (-1: not reported)");
	row("10", what, max_hold_ns(false) / 1e6, "ms",
	    max_hold_ns(false) / t, "of the munmap");
	close_ctx(&x);
}

int main(int argc, char **argv)
{
	const char *json_path = NULL;
	int only = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json_path = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: %s [--quick] [--json FILE] [--only FIG]\n",
				argv[0]);
			return 2;
		}
	}
	if (json_path) {
		json = fopen(json_path, "w");
		if (!json)
			die(json_path);
		fprintf(json, "[\n");
	}
	printf("%-4s %-52s %12s %-8s %9s  %s\n", "fig", "what", "median",
	       "unit", "ratio", "baseline (same run)");
	static void (*const figs[])(void) = { NULL, fig1, fig2, fig3, fig4,
					      fig5, NULL, NULL, NULL, fig9,
					      fig10 };

	for (int f = 1; f < (int)(sizeof(figs) / sizeof(figs[0])); f++)
		if (figs[f] && (!only || only == f))
			figs[f]();
	if (json) {
		fprintf(json, "\n]\n");
		fclose(json);
	}
	return 0;
}
