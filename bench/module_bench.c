// SPDX-License-Identifier: GPL-2.0-only
/*
 * Benchmarks of the kernel module's hot paths (figures 1-5, 9, 10 of
 * bench/README.md).  Every figure is a median over repeated runs and is
 * reported next to its baseline measured in the same process, as a ratio:
 * under QEMU TCG absolute times are emulated, ratios are what to read.
 *
 * --device PATH runs the figures against another kdreg2-ABI device (HPE's
 * /dev/kdreg2): rows that need mapwatch's extensions (batches, the lock
 * hold of figure 10) are left out when the device has none.
 *
 * --vs PEER compares the --device (default /dev/mapwatch) with PEER side
 * by side instead: figures 2-5 and kernel memory per watched region, each
 * device's state held by a worker process of its own, the workers measured
 * in turn (A B A B ...), ratios A/PEER (bench/README.md, "Side by side").
 *
 * --pair-loop SECONDS [--regions N] [--batch B]: fill N regions, stop
 * itself (SIGSTOP) so that a profiler can attach, then run MONITOR+UNMONITOR
 * pairs (or batches of B of each) for SECONDS (bench/ftrace-pairs).
 *
 * usage: module_bench [--quick] [--json FILE] [--only FIG] [--device PATH]
 *                     [--vs PEER] [--pair-loop SECONDS [--regions N] [--batch B]]
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
#include <libgen.h>
#include <signal.h>
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
/* The device every figure opens (--device); fig9's default is the alias. */
static const char *device = MAPWATCH_DEVICE_NAME;
static const char *fig9_device = KDREG2_DEVICE_NAME;

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
	bool mapwatch;			/* PROBE answered: mapwatch's layout */
	bool batch;			/* the *_BATCH ioctls */
};

static struct ctx open_dev(const char *path, size_t max)
{
	struct kdreg2_config_data c = { .max_regions = max };
	struct mapwatch_probe p = { .size = sizeof(p) };
	struct ctx x;

	x.fd = open(path, O_RDWR | O_NONBLOCK);
	if (x.fd < 0) {
		fprintf(stderr, "module_bench: open %s: %s\n", path,
			strerror(errno));
		exit(1);
	}
	/* HPE's kdreg2 answers ENOTTY (and logs it once per open). */
	x.mapwatch = !ioctl(x.fd, MAPWATCH_IOCTL_PROBE, &p);
	x.batch = x.mapwatch && (p.features & MAPWATCH_FEATURE_BATCH);
	if (ioctl(x.fd, KDREG2_IOCTL_CONFIG_DATA, &c))
		die("CONFIG_DATA");
	x.st = c.status_data;
	x.max = max;
	x.reserved = NULL;
	x.nreserved = 0;
	return x;
}

static struct ctx open_ctx(size_t max)
{
	return open_dev(device, max);
}

/*
 * Close, and unmap mapwatch's status area (close alone leaves it mapped).
 * kdreg2 unmaps its own two areas when the fd is released: unmapping them
 * here could hit whatever was mapped there since.
 */
static void close_ctx(struct ctx *x)
{
	size_t size = (MAPWATCH_STATE_ARRAY_OFFSET + (x->max + 1) * 4 +
		       PAGE - 1) / PAGE * PAGE;

	close(x->fd);
	if (x->mapwatch)
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
	if (!x->batch) {
		/* kdreg2: one MONITOR per region. */
		for (size_t i = 0; i < n; i++) {
			struct kdreg2_ioctl_monitor m = {
				.addr = base + i * PAGE, .length = PAGE,
				.cookie = cookie0 + i };

			if (ioctl(x->fd, KDREG2_IOCTL_MONITOR, &m))
				die("MONITOR fill");
		}
		return;
	}
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
	for (unsigned int k = 0; x.batch && k < sizeof(batches) / sizeof(batches[0]); k++) {
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
		int fd = open(fig9_device, O_RDWR);

		if (fd < 0)
			die(fig9_device);
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
	if (x.mapwatch)
		row("10", what, max_hold_ns(false) / 1e6, "ms",
		    max_hold_ns(false) / t, "of the munmap");
	close_ctx(&x);
}

/*
 * Side by side (--vs PEER): the same figures against two devices in one
 * boot.  Each device's context lives in a worker process of its own (so a
 * munmap meets only that module's notifier), driven over pipes; the
 * workers are measured in turn, who goes first alternating by round, so
 * a change in the host's load hits both alike.  A third worker without
 * any fd (but the same reserved range) is figure 4's "no fd".
 */
struct cmd {
	char op;
	long a, b;
};

struct worker {
	pid_t pid;
	int to, from;
	const char *dev;		/* NULL: no fd */
};

static const char *vs_peer;	/* --vs */
/*
 * Side by side: more, shorter samples than the single-device figures (a
 * shared host's load comes and goes; each round has both devices).
 */
#define VREPS 11
static char label_a[32], label_b[32];

/* One MONITOR+UNMONITOR pair per iteration, on one page. */
static double pairs_ns(struct ctx *x, char *p, long pairs)
{
	double t = now_ns();

	for (long i = 0; i < pairs; i++) {
		struct kdreg2_ioctl_monitor m = { .addr = p, .length = PAGE,
						  .cookie = 1 };
		struct kdreg2_ioctl_unmonitor u = { .cookie = 1 };

		if (ioctl(x->fd, KDREG2_IOCTL_MONITOR, &m))
			die("MONITOR");
		u.monitoring_params = m.monitoring_params;
		if (ioctl(x->fd, KDREG2_IOCTL_UNMONITOR, &u))
			die("UNMONITOR");
	}
	return (now_ns() - t) / pairs;
}

/* Watch+unwatch per region in batches of bs (mapwatch's extension). */
static double batch_ns(struct ctx *x, char *p, uint32_t bs, long total)
{
	static struct mapwatch_monitor_entry me[4096];
	static struct mapwatch_unmonitor_entry ue[4096];
	struct mapwatch_batch mb = { .size = sizeof(mb), .count = bs,
				     .entry_size = sizeof(me[0]),
				     .entries = (uintptr_t)me };
	struct mapwatch_batch ub = { .size = sizeof(ub), .count = bs,
				     .entry_size = sizeof(ue[0]),
				     .entries = (uintptr_t)ue };
	double t = now_ns();

	for (long done = 0; done < total; done += bs) {
		for (uint32_t i = 0; i < bs; i++)
			me[i] = (struct mapwatch_monitor_entry){
				.addr = (uintptr_t)p, .length = PAGE,
				.cookie = i + 1 };
		if (ioctl(x->fd, MAPWATCH_IOCTL_MONITOR_BATCH, &mb) != (long)bs)
			die("MONITOR_BATCH");
		for (uint32_t i = 0; i < bs; i++)
			ue[i] = (struct mapwatch_unmonitor_entry){
				.cookie = i + 1, .location = me[i].location,
				.generation = me[i].generation };
		if (ioctl(x->fd, MAPWATCH_IOCTL_UNMONITOR_BATCH, &ub) != (long)bs)
			die("UNMONITOR_BATCH");
	}
	return (now_ns() - t) / total;
}

/* Figure 4's loop, one sample. */
static double mmap_cycle_ns(long rounds)
{
	double t = now_ns();

	for (long i = 0; i < rounds; i++) {
		char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (q == MAP_FAILED)
			die("mmap");
		q[0] = 1;
		munmap(q, PAGE);
	}
	return (now_ns() - t) / rounds;
}

/*
 * Figure 5's watched munmap, one sample: the munmap of a touched page that
 * k regions watch; out[1] counts rounds where changed() was still false
 * after munmap returned, out[2] rounds where the events were not counted.
 */
static void watched_munmap(struct ctx *x, long k, long rounds, double *out)
{
	double spent = 0;
	long late = 0, event_late = 0;

	for (long i = 0; i < rounds; i++) {
		char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct kdreg2_monitoring_params first = { 0 };
		double t;

		if (q == MAP_FAILED)
			die("mmap");
		q[0] = 1;
		for (long c = 0; c < k; c++) {
			struct kdreg2_ioctl_monitor m = { .addr = q,
							  .length = PAGE,
							  .cookie = c + 1 };

			if (ioctl(x->fd, KDREG2_IOCTL_MONITOR, &m))
				die("MONITOR");
			if (!c)
				first = m.monitoring_params;
		}
		t = now_ns();
		munmap(q, PAGE);
		spent += now_ns() - t;
		late += !kdreg2_mapping_changed(x->st, &first);
		if (kdreg2_read_counter(&x->st->pending_events) != (uint64_t)k)
			event_late++;
		ioctl(x->fd, KDREG2_IOCTL_FLUSH);
	}
	out[0] = spent / rounds;
	out[1] = late;
	out[2] = event_late;
}

/* From munmap's return to read() returning the event, one sample. */
static double event_read_ns(struct ctx *x, long rounds)
{
	struct kdreg2_event ev[4];
	double spent = 0;

	for (long i = 0; i < rounds; i++) {
		char *q = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct kdreg2_ioctl_monitor m = { .addr = q, .length = PAGE,
						  .cookie = 9 };
		double t;

		if (q == MAP_FAILED)
			die("mmap");
		q[0] = 1;
		if (ioctl(x->fd, KDREG2_IOCTL_MONITOR, &m))
			die("MONITOR");
		munmap(q, PAGE);
		t = now_ns();
		if (read(x->fd, ev, sizeof(ev)) != sizeof(ev[0]))
			die("read after munmap");
		spent += now_ns() - t;
	}
	return spent / rounds;
}

static void worker_loop(int in, int out, const char *dev)
{
	struct ctx x = { .fd = -1 };
	char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct cmd c;

	if (p == MAP_FAILED)
		die("mmap");
	p[0] = 1;
	while (read(in, &c, sizeof(c)) == sizeof(c)) {
		double v[3] = { 0, 0, 0 };

		switch (c.op) {
		case 'o':	/* open + CONFIG_DATA(a) */
			if (dev)
				x = open_dev(dev, c.a);
			break;
		case 'f':	/* reserve a pages; watch them if we have a fd */
			if (dev) {
				fill(&x, c.a, 1000);
			} else if (c.a) {
				x.reserved = mmap(NULL, c.a * PAGE, PROT_NONE,
						  MAP_PRIVATE | MAP_ANONYMOUS |
						  MAP_NORESERVE, -1, 0);
				if (x.reserved == MAP_FAILED)
					die("mmap reserve");
			}
			break;
		case 'p':
			v[0] = pairs_ns(&x, p, c.a);
			break;
		case 'b':
			if (!x.batch) {
				v[0] = -1;
				break;
			}
			v[0] = batch_ns(&x, p, c.a, c.b);
			break;
		case 'm':
			v[0] = mmap_cycle_ns(c.a);
			break;
		case 'n':
			v[0] = unrelated_munmap_ns(c.a);
			break;
		case 'u':
			watched_munmap(&x, c.a, c.b, v);
			break;
		case 'r':
			v[0] = event_read_ns(&x, c.a);
			break;
		default:
			_exit(2);
		}
		if (write(out, v, sizeof(v)) != sizeof(v))
			_exit(1);
	}
	_exit(0);
}

/* The parent's ends of live workers' pipes: a new worker closes them. */
static int worker_fds[64], nworker_fds;

static struct worker worker_start(const char *dev)
{
	int to[2], from[2];
	struct worker w = { .dev = dev };

	if (pipe(to) || pipe(from))
		die("pipe");
	fflush(stdout);
	w.pid = fork();
	if (w.pid < 0)
		die("fork");
	if (w.pid == 0) {
		/* Else a worker would keep another's pipe open: no EOF. */
		for (int i = 0; i < nworker_fds; i++)
			close(worker_fds[i]);
		close(to[1]);
		close(from[0]);
		worker_loop(to[0], from[1], dev);
	}
	close(to[0]);
	close(from[1]);
	w.to = to[1];
	w.from = from[0];
	if (nworker_fds + 2 > 64)
		die("too many workers");
	worker_fds[nworker_fds++] = w.to;
	worker_fds[nworker_fds++] = w.from;
	return w;
}

static void forget_fd(int fd)
{
	for (int i = 0; i < nworker_fds; i++)
		if (worker_fds[i] == fd) {
			worker_fds[i] = worker_fds[--nworker_fds];
			return;
		}
}

/* Run one command in w, return its first value (all three in out). */
static double ask(struct worker *w, char op, long a, long b, double *out)
{
	struct cmd c = { .op = op, .a = a, .b = b };
	double v[3];

	if (getenv("MODULE_BENCH_TRACE"))
		fprintf(stderr, "ask %s %c %ld %ld\n", w->dev ? w->dev : "-", op, a, b);

	if (write(w->to, &c, sizeof(c)) != sizeof(c) ||
	    read(w->from, v, sizeof(v)) != sizeof(v)) {
		fprintf(stderr, "module_bench: worker for %s failed (op %c)\n",
			w->dev ? w->dev : "no fd", op);
		exit(1);
	}
	if (out)
		memcpy(out, v, sizeof(v));
	return v[0];
}

static void worker_stop(struct worker *w)
{
	int status;

	forget_fd(w->to);
	forget_fd(w->from);
	close(w->to);
	close(w->from);
	if (waitpid(w->pid, &status, 0) != w->pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "module_bench: worker for %s ended badly\n",
			w->dev ? w->dev : "no fd");
		exit(1);
	}
}

/* A row with both devices' medians and their ratio. */
static void row2(const char *fig, const char *what, double a, double b,
		 const char *unit, const char *note)
{
	printf("%-4s %-50s %11.1f %11.1f %-6s %7.2fx  %s\n", fig, what, a, b,
	       unit, a / b, note);
	if (json)
		fprintf(json, "%s{\"figure\":\"%s\",\"what\":\"%s\",\"%s\":%.3f,"
			"\"%s\":%.3f,\"unit\":\"%s\",\"ratio\":%.4f,\"note\":\"%s\"}",
			json_rows++ ? ",\n" : "", fig, what, label_a, a,
			label_b, b, unit, a / b, note);
}

/* The goals of issue 25 section 3, filled in as the figures run. */
static struct {
	double pair_best, pair_peer, pair_a, batch256;
	double growth_a, unrel_a;
	double mem_a, mem_b;
	double own_a;
} g;

/*
 * Figures 2 and 4: every size's workers (A, B and a no-fd one that only
 * reserves the same range) are up at once, and each round visits all of
 * them in a rotating order, so growth with the size is measured inside
 * each round too; ratios are medians of the rounds' own ratios.
 */
static double ratio_med(const double *x, const double *y, int n)
{
	double v[VREPS];

	for (int r = 0; r < n; r++)
		v[r] = x[r] / y[r];
	return median(v, n);
}

static void vs_fig2_4(void)
{
	static const size_t sizes[] = { 0, 1000, 100000, 1000000 };
	unsigned int ns = quick ? 3 : 4;	/* --quick: up to 100K */
	long pairs = quick ? 2000 : 10000, rounds = quick ? 1000 : 5000;
	struct worker w[4][3];
	double p[4][2][VREPS], m[4][3][VREPS];
	char what[128], note[256];

	for (unsigned int s = 0; s < ns; s++) {
		w[s][0] = worker_start(device);
		w[s][1] = worker_start(vs_peer);
		w[s][2] = worker_start(NULL);
		for (int i = 0; i < 3; i++) {
			ask(&w[s][i], 'o', sizes[s] + 1, 0, NULL);
			ask(&w[s][i], 'f', sizes[s], 0, NULL);
		}
	}
	for (int r = 0; r < VREPS; r++) {
		unsigned int nj = ns * 3;

		for (unsigned int k = 0; k < nj; k++) {
			unsigned int j = (k + r * 5) % nj, s = j / 3, i = j % 3;

			if (i < 2)
				p[s][i][r] = ask(&w[s][i], 'p', pairs, 0, NULL);
			m[s][i][r] = ask(&w[s][i], 'm', rounds, 0, NULL);
		}
	}
	for (unsigned int s = 0; s < ns; s++)
		for (int i = 2; i >= 0; i--)
			worker_stop(&w[s][i]);
	for (unsigned int s = 0; s < ns; s++) {
		double ga = ratio_med(p[s][0], p[0][0], VREPS);
		double gb = ratio_med(p[s][1], p[0][1], VREPS);

		snprintf(what, sizeof(what), "watch+unwatch pair, %zu regions watched",
			 sizes[s]);
		snprintf(note, sizeof(note), "growth from 0: %s %.2fx, %s %.2fx; A/B per round %.2fx",
			 label_a, ga, label_b, gb, ratio_med(p[s][0], p[s][1], VREPS));
		row2("2", what, median(p[s][0], VREPS), median(p[s][1], VREPS),
		     "ns", note);
		if (s == ns - 1)
			g.growth_a = ga;
	}
	for (unsigned int s = 0; s < ns; s++) {
		double ra = ratio_med(m[s][0], m[s][2], VREPS);
		double rb = ratio_med(m[s][1], m[s][2], VREPS);

		snprintf(what, sizeof(what), "mmap+touch+munmap, %zu regions elsewhere",
			 sizes[s]);
		snprintf(note, sizeof(note), "vs no fd (%.0f ns), per round: %s %.2fx, %s %.2fx",
			 median(m[s][2], VREPS), label_a, ra, label_b, rb);
		row2("4", what, median(m[s][0], VREPS), median(m[s][1], VREPS),
		     "ns", note);
		if (s == ns - 1)
			g.unrel_a = ra;
	}
}

/* Figure 3: per region, batches (A) against the peer's single ioctls. */
static void vs_fig3(void)
{
	static const uint32_t batches[] = { 16, 256, 4096 };
	long total = quick ? 8192 : 16384;
	struct worker w[2] = { worker_start(device), worker_start(vs_peer) };
	double sa[VREPS], sb[VREPS], ba[3][VREPS], bb[3];
	char what[128], note[256];

	for (int i = 0; i < 2; i++) {
		ask(&w[i], 'o', 4096 + 64, 0, NULL);
		ask(&w[i], 'f', 0, 0, NULL);
	}
	for (int r = 0; r < VREPS; r++) {
		for (int k = 0; k < 2; k++) {
			int i = k ^ (r & 1);

			(i ? sb : sa)[r] = ask(&w[i], 'p', total, 0, NULL);
			if (!i)
				for (int j = 0; j < 3; j++)
					ba[j][r] = ask(&w[0], 'b', batches[j],
						       total, NULL);
		}
	}
	for (int i = 0; i < 2; i++)
		worker_stop(&w[i]);
	double a = median(sa, VREPS), b = median(sb, VREPS);

	row2("3", "watch+unwatch per region, single ioctls", a, b, "ns",
	     "both: one MONITOR + one UNMONITOR");
	g.pair_a = a;
	g.pair_peer = b;
	g.pair_best = a;
	for (int j = 0; j < 3; j++) {
		bb[j] = median(ba[j], VREPS);
		if (bb[j] < 0)
			continue;	/* A has no batches */
		snprintf(what, sizeof(what), "watch+unwatch per region, %s batch %u",
			 label_a, batches[j]);
		snprintf(note, sizeof(note), "%s has no batch: its single pair; %.2fx cheaper than %s single",
			 label_b, a / bb[j], label_a);
		row2("3", what, bb[j], b, "ns", note);
		if (bb[j] < g.pair_best)
			g.pair_best = bb[j];
		if (batches[j] == 256)
			g.batch256 = bb[j];
	}
}

/* Figure 5: munmap of watched memory, changed() and the event. */
static void vs_fig5(void)
{
	static const long counts[] = { 1, 64, 4096 };
	long rounds = quick ? 100 : 200;
	struct worker w[2] = { worker_start(device), worker_start(vs_peer) };
	double un[2][VREPS], wa[2][3][VREPS], rd[2][VREPS], own[2][VREPS];
	double late[2][3] = { { 0 } }, evlate[2][3] = { { 0 } };
	char what[128], note[256];

	for (int i = 0; i < 2; i++) {
		ask(&w[i], 'o', 8192, 0, NULL);
		ask(&w[i], 'f', 0, 0, NULL);
	}
	for (int r = 0; r < VREPS; r++) {
		for (int k = 0; k < 2; k++) {
			int i = k ^ (r & 1);
			double v[3];

			un[i][r] = ask(&w[i], 'n', rounds, 0, NULL);
			for (int j = 0; j < 3; j++) {
				ask(&w[i], 'u', counts[j],
				    counts[j] > 64 ? rounds / 10 : rounds, v);
				wa[i][j][r] = v[0];
				late[i][j] += v[1];
				evlate[i][j] += v[2];
			}
			own[i][r] = wa[i][0][r] / un[i][r];
			rd[i][r] = ask(&w[i], 'r', rounds, 0, NULL);
		}
	}
	for (int i = 0; i < 2; i++)
		worker_stop(&w[i]);
	double ua = median(un[0], VREPS), ub = median(un[1], VREPS);

	row2("5", "munmap of an unwatched page (fd open)", ua, ub, "ns", "");
	for (int j = 0; j < 3; j++) {
		double a = median(wa[0][j], VREPS), b = median(wa[1][j], VREPS);

		snprintf(what, sizeof(what), "munmap of a page watched by %ld regions",
			 counts[j]);
		snprintf(note, sizeof(note), "vs unwatched: %s %.2fx, %s %.2fx",
			 label_a, a / ua, label_b, b / ub);
		row2("5", what, a, b, "ns", note);
	}
	row2("5", "munmap watched by 1 / unwatched, per round", median(own[0], VREPS),
	     median(own[1], VREPS), "x", "median of the rounds' own ratios");
	row2("5", "munmap return -> event read (one read() call)",
	     median(rd[0], VREPS), median(rd[1], VREPS), "ns", "");
	for (int j = 0; j < 3; j++)
		printf("5    rounds late after munmap, %4ld regions: changed() false %s %.0f, %s %.0f; events not counted %s %.0f, %s %.0f (must be 0)\n",
		       counts[j], label_a, late[0][j], label_b, late[1][j],
		       label_a, evlate[0][j], label_b, evlate[1][j]);
	g.own_a = median(own[0], VREPS);
}

/* Kernel memory, /proc/meminfo, in kB. */
struct meminfo {
	long free, slab, vmalloc, percpu, pagetables;
};

static struct meminfo read_meminfo(void)
{
	struct meminfo m = { 0 };
	char line[128];
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		die("/proc/meminfo");
	while (fgets(line, sizeof(line), f)) {
		long v;

		if (sscanf(line, "MemFree: %ld", &v) == 1)
			m.free = v;
		else if (sscanf(line, "Slab: %ld", &v) == 1)
			m.slab = v;
		else if (sscanf(line, "VmallocUsed: %ld", &v) == 1)
			m.vmalloc = v;
		else if (sscanf(line, "Percpu: %ld", &v) == 1)
			m.percpu = v;
		else if (sscanf(line, "PageTables: %ld", &v) == 1)
			m.pagetables = v;
	}
	fclose(f);
	return m;
}

static long kernel_kb(const struct meminfo *m)
{
	return m->slab + m->vmalloc + m->percpu;
}

/* Wait (up to 10 s) until slab+vmalloc stop moving: deferred frees done. */
static struct meminfo settled_meminfo(void)
{
	struct meminfo a = read_meminfo(), b;

	for (int i = 0; i < 40; i++) {
		usleep(250000);
		b = read_meminfo();
		if (labs(kernel_kb(&b) - kernel_kb(&a)) < 64)
			return b;
		a = b;
	}
	return a;
}

/* The slab cache a region lives in: its sysfs object and slot sizes. */
static void slab_sizes(const char *cache, long *obj, long *slot)
{
	char path[128];
	FILE *f;

	*obj = *slot = -1;
	snprintf(path, sizeof(path), "/sys/kernel/slab/%s/object_size", cache);
	if ((f = fopen(path, "r"))) {
		if (fscanf(f, "%ld", obj) != 1)
			*obj = -1;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/sys/kernel/slab/%s/slab_size", cache);
	if ((f = fopen(path, "r"))) {
		if (fscanf(f, "%ld", slot) != 1)
			*slot = -1;
		fclose(f);
	}
}

/*
 * Kernel memory per watched region: /proc/meminfo's Slab + VmallocUsed +
 * Percpu before the open, after CONFIG_DATA(n) (what a context sets aside
 * per slot: status area, slot array, event storage) and after n MONITORs
 * (the regions), divided by n; MemFree's drop over the whole as a check.
 * One worker at a time, the devices in turn, after the kernel settled.
 */
static void vs_mem(void)
{
	size_t n = quick ? 100000 : 1000000;
	int reps = quick ? 1 : 3;
	double cfg[2][3], mon[2][3], slab[2][3], vm[2][3];
	long obj[2] = { -1, -1 }, slot[2] = { -1, -1 };
	char what[128], note[256];

	for (int r = 0; r < reps; r++) {
		for (int k = 0; k < 2; k++) {
			int i = k ^ (r & 1);
			struct worker w = worker_start(i ? vs_peer : device);
			struct meminfo m0, m1, m2;
			char cache[64];

			m0 = settled_meminfo();
			ask(&w, 'o', n, 0, NULL);
			m1 = read_meminfo();
			ask(&w, 'f', n, 0, NULL);
			m2 = read_meminfo();
			/* kdreg2: one named cache per opener ("kdreg2_PID"). */
			if (i)
				snprintf(cache, sizeof(cache), "kdreg2_%d", (int)w.pid);
			else
				snprintf(cache, sizeof(cache), "mw_region");
			slab_sizes(cache, &obj[i], &slot[i]);
			worker_stop(&w);
			cfg[i][r] = (kernel_kb(&m1) - kernel_kb(&m0)) * 1024.0 / n;
			mon[i][r] = (kernel_kb(&m2) - kernel_kb(&m1)) * 1024.0 / n;
			slab[i][r] = (m2.slab - m0.slab) * 1024.0 / n;
			vm[i][r] = (m2.vmalloc - m0.vmalloc) * 1024.0 / n;
		}
	}
	double c0 = median(cfg[0], reps), c1 = median(cfg[1], reps);
	double o0 = median(mon[0], reps), o1 = median(mon[1], reps);

	snprintf(what, sizeof(what), "kernel memory per watched region, %zu regions", n);
	row2("M", what, c0 + o0, c1 + o1, "bytes", "Slab+VmallocUsed+Percpu delta / regions");
	row2("M", "  of which set aside at CONFIG_DATA(n), per slot", c0, c1,
	     "bytes", "status area, slot array, event storage");
	snprintf(note, sizeof(note), "region objects: %s %ld B in %ld B slots, %s %ld B in %ld B",
		 label_a, obj[0], slot[0], label_b, obj[1], slot[1]);
	row2("M", "  of which per MONITOR", o0, o1, "bytes", note);
	row2("M", "  slab part (Slab)", median(slab[0], reps),
	     median(slab[1], reps), "bytes", "");
	row2("M", "  vmalloc part (VmallocUsed)", median(vm[0], reps),
	     median(vm[1], reps), "bytes", "");
	g.mem_a = c0 + o0;
	g.mem_b = c1 + o1;
}

static void goal(const char *what, double v, const char *unit, double limit,
		 bool at_least)
{
	bool met = at_least ? v >= limit : v <= limit;

	printf("goal %-62s %7.2f%-1s %s %.2f%s  %s\n", what, v, unit,
	       at_least ? ">=" : "<=", limit, unit, met ? "met" : "NOT MET");
	if (json)
		fprintf(json, "%s{\"figure\":\"goal\",\"what\":\"%s\",\"value\":%.4f,"
			"\"limit\":%.4f,\"met\":%s}", json_rows++ ? ",\n" : "",
			what, v, limit, met ? "true" : "false");
}

static void vs_main(int only)
{
	snprintf(label_a, sizeof(label_a), "%s", basename(strdupa(device)));
	snprintf(label_b, sizeof(label_b), "%s", basename(strdupa(vs_peer)));
	printf("Side by side: A = %s, B = %s (each in a worker process of its own, measured in turn)\n",
	       device, vs_peer);
	printf("%-4s %-50s %11s %11s %-6s %8s  %s\n", "fig", "what", label_a,
	       label_b, "unit", "A/B", "note");
	if (!only || only == 2 || only == 4)
		vs_fig2_4();
	if (!only || only == 3)
		vs_fig3();
	if (!only || only == 5)
		vs_fig5();
	if (!only || only == 'M')
		vs_mem();
	if (only)
		return;
	printf("\nIssue 25 section 3 goals (this run):\n");
	goal("watch+unwatch per region, best of A's ways / B's pair", g.pair_best / g.pair_peer, "x", 0.5, false);
	goal("A's batch-256 gain over A's single ioctls", g.pair_a / g.batch256, "x", 5, true);
	goal("A's pair cost growth, 0 to the largest size", g.growth_a, "x", 1.3, false);
	goal("kernel memory per watched region, A / B", g.mem_a / g.mem_b, "x", 0.75, false);
	goal("unrelated mmap+munmap at the largest size, A / no fd", g.unrel_a, "x", 1.05, false);
	goal("munmap of a watched page / an unwatched one, A", g.own_a, "x", 1.1, false);
}

/* --pair-loop: fill, stop for a profiler, then pairs for `secs` seconds. */
static void pair_loop(double secs, size_t n, uint32_t batch)
{
	struct ctx x = open_ctx(n + 1 + batch);
	char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long done = 0;
	double t0, t;

	if (p == MAP_FAILED)
		die("mmap");
	p[0] = 1;
	fill(&x, n, 1000);
	fflush(stdout);
	raise(SIGSTOP);
	t0 = now_ns();
	do {
		if (batch) {
			if (!x.batch)
				die("--batch: the device has no batches");
			batch_ns(&x, p, batch, 4096 / batch * batch);
			done += 4096 / batch * batch;
		} else {
			pairs_ns(&x, p, 1000);
			done += 1000;
		}
		t = now_ns();
	} while (t - t0 < secs * 1e9);
	printf("pair-loop %s: %zu regions watched, batch %u, %ld pairs, %.1f ns/pair\n",
	       device, n, batch, done, (t - t0) / done);
	close_ctx(&x);
}

int main(int argc, char **argv)
{
	const char *json_path = NULL;
	double loop_secs = 0;
	size_t loop_regions = 0;
	uint32_t loop_batch = 0;
	int only = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json_path = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			i++;
			only = !strcmp(argv[i], "M") ? 'M' : atoi(argv[i]);
		} else if (!strcmp(argv[i], "--device") && i + 1 < argc)
			device = fig9_device = argv[++i];
		else if (!strcmp(argv[i], "--vs") && i + 1 < argc)
			vs_peer = argv[++i];
		else if (!strcmp(argv[i], "--pair-loop") && i + 1 < argc)
			loop_secs = atof(argv[++i]);
		else if (!strcmp(argv[i], "--regions") && i + 1 < argc)
			loop_regions = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
			loop_batch = strtoul(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "usage: %s [--quick] [--json FILE] [--only FIG] [--device PATH]\n"
				"       [--vs PEER] [--pair-loop SECONDS [--regions N] [--batch B]]\n",
				argv[0]);
			return 2;
		}
	}
	if (loop_secs > 0) {
		if (loop_batch > 4096)
			loop_batch = 4096;
		pair_loop(loop_secs, loop_regions, loop_batch);
		return 0;
	}
	if (json_path) {
		json = fopen(json_path, "w");
		if (!json)
			die(json_path);
		fprintf(json, "[\n");
	}
	if (vs_peer) {
		vs_main(only);
		goto out;
	}
	printf("%-4s %-52s %12s %-8s %9s  %s\n", "fig", "what", "median",
	       "unit", "ratio", "baseline (same run)");
	static void (*const figs[])(void) = { NULL, fig1, fig2, fig3, fig4,
					      fig5, NULL, NULL, NULL, fig9,
					      fig10 };

	for (int f = 1; f < (int)(sizeof(figs) / sizeof(figs[0])); f++)
		if (figs[f] && (!only || only == f))
			figs[f]();
out:
	if (json) {
		fprintf(json, "\n]\n");
		fclose(json);
	}
	return 0;
}
