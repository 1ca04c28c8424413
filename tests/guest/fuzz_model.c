// SPDX-License-Identifier: GPL-2.0-only
/*
 * Model-based fuzzer for mapwatch.ko.
 *
 * Drives a seeded random sequence of ioctls (valid and invalid: zero and
 * wrapping lengths, bad cookies, duplicate cookies, stale and forged params,
 * bad pointers, resize), mapping changes (munmap, MAP_FIXED, madvise,
 * mprotect) and reads over a small arena, and compares every result, every
 * status counter and every region's validity with an executable model of
 * module/README.md.  The first divergence prints the seed and the operation
 * log; `fuzz_model --seed S --ops N` replays it.
 *
 * As a TAP program it runs one case per seed: `fuzz_model` (default seeds),
 * or `fuzz_model --seed S --ops N [--seeds K]`.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mapwatch_uapi.h"
#include "skipped_events.h"

#define PAGE 4096UL
#define NPAGES 64
#define NCOOKIES 48
#define MAXREG 40
#define LOGN 48
#define CAP 6		/* max_pending_events while fuzzing */

static const char *cap_param = "/sys/module/mapwatch/parameters/max_pending_events";

struct mregion {
	bool live, known;	/* live: monitored; known: has params */
	uint64_t start, last, seq;
	struct kdreg2_monitoring_params params;
};

struct mevent {
	uint64_t addr, len, cookie;
};

static struct model {
	int fd;
	const struct kdreg2_status_data *st;
	size_t max;
	bool configured;
	struct mregion reg[NCOOKIES];
	size_t live;
	struct mevent q[4096];
	size_t nq;
	bool ovf;
	uint64_t ovf_start, ovf_last;
	uint64_t total, overflows, seq;
	bool mapped[NPAGES];
	int prot[NPAGES];	/* of each mapped page */
	bool mprotect_retires;	/* PROTECTION_VMA not skipped here */
	char *arena;
} m;

static uint64_t rng;
static char oplog[LOGN][160];
static unsigned long opno;

/*
 * Minimisation: every operation draws from its own stream (seed, op
 * number), so a run may skip operations (keep[]) and the others stay the
 * same.  quiet: a trial run prints nothing; verbose: print every op.
 * *div_at (shared with the parent) records where a run diverged.
 */
static const unsigned char *keep;
static bool quiet, verbose;
static unsigned long *div_at;
/* A deliberately wrong model (FUZZ_PLANTED_BUG=1): the minimiser's test. */
static bool planted_bug;

static void seed_op(uint64_t seed, unsigned long op)
{
	uint64_t z = seed * 0x9E3779B97F4A7C15ULL + op + 1;

	/* splitmix64, so neighbouring (seed, op) pairs look unrelated. */
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	rng = (z ^ (z >> 31)) | 1;
}

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible across libcs. */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1DULL;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void logop(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logop(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(oplog[opno % LOGN], sizeof(oplog[0]), fmt, ap);
	va_end(ap);
	if (verbose)
		printf("#   %lu: %s\n", opno, oplog[opno % LOGN]);
}

static uint64_t failing_seed;

static void diverge(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void diverge(const char *fmt, ...)
{
	va_list ap;
	unsigned long first = opno >= LOGN ? opno - LOGN + 1 : 0;

	if (div_at)
		*div_at = opno;
	if (quiet)
		exit(1);
	printf("# DIVERGENCE seed %" PRIu64 " at op %lu: ", failing_seed, opno);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!verbose) {
		printf("# last operations (replay: fuzz_model --seed %" PRIu64
		       " --ops %lu):\n", failing_seed, opno + 1);
		for (unsigned long i = first; i <= opno; i++)
			if (!keep || keep[i])
				printf("#   %lu: %s\n", i, oplog[i % LOGN]);
	}
	fflush(stdout);
	exit(1);
}

/*
 * The classes of bad input this run tried, printed once per seed as
 * "# bad-input:" lines for tests/bad-input-table.
 */
static struct {
	const char *entry, *input, *err;
} tried[32];
static int ntried;

static void tally(const char *entry, const char *input, const char *err)
{
	for (int i = 0; i < ntried; i++)
		if (tried[i].entry == entry && tried[i].input == input)
			return;
	if (ntried < (int)(sizeof(tried) / sizeof(tried[0])))
		tried[ntried++] = (typeof(tried[0])){ entry, input, err };
}

static void expect_ret(const char *what, long got, int gerr, long want, int werr)
{
	if (got != want || (want == -1 && gerr != werr))
		diverge("%s returned %ld errno %d, model says %ld errno %d",
			what, got, got == -1 ? gerr : 0, want, werr);
}

/* Retire, in the kernel's order, every live region overlapping [s, e). */
static void model_retire(uint64_t s, uint64_t e)
{
	for (;;) {
		int best = -1;

		for (int c = 0; c < NCOOKIES; c++) {
			struct mregion *r = &m.reg[c];

			if (!r->live || r->last < s || r->start >= e)
				continue;
			if (best < 0 || r->start < m.reg[best].start ||
			    (r->start == m.reg[best].start &&
			     r->seq < m.reg[best].seq))
				best = c;
		}
		if (best < 0)
			return;
		struct mregion *r = &m.reg[best];

		r->live = false;
		m.live--;
		m.total++;
		if (m.nq < CAP) {
			m.q[m.nq++] = (struct mevent){ r->start,
				r->last - r->start + 1, (uint64_t)best };
		} else if (!m.ovf) {
			m.ovf = true;
			m.ovf_start = r->start;
			m.ovf_last = r->last;
			m.overflows++;
		} else {
			m.ovf_start = m.ovf_start < r->start ? m.ovf_start : r->start;
			m.ovf_last = m.ovf_last > r->last ? m.ovf_last : r->last;
			m.overflows++;
		}
	}
}

static bool any_mapped(size_t p0, size_t np)
{
	for (size_t i = p0; i < p0 + np; i++)
		if (m.mapped[i])
			return true;
	return false;
}

static void check_state(void)
{
	const struct kdreg2_status_data *st = m.st;

	if (!m.configured)
		return;
	if (kdreg2_read_counter(&st->num_active_regions) != m.live)
		diverge("num_active_regions %" PRIu64 ", model %zu",
			kdreg2_read_counter(&st->num_active_regions), m.live);
	if (kdreg2_read_counter(&st->pending_events) != m.nq + m.ovf)
		diverge("pending_events %" PRIu64 ", model %zu",
			kdreg2_read_counter(&st->pending_events), m.nq + m.ovf);
	if (kdreg2_read_counter(&st->total_events) != m.total)
		diverge("total_events %" PRIu64 ", model %" PRIu64,
			kdreg2_read_counter(&st->total_events), m.total);
	if (kdreg2_read_counter(&mapwatch_status_ext(st)->overflows) !=
	    m.overflows)
		diverge("overflows %" PRIu64 ", model %" PRIu64,
			kdreg2_read_counter(&mapwatch_status_ext(st)->overflows),
			m.overflows);
	for (int c = 0; c < NCOOKIES; c++) {
		struct mregion *r = &m.reg[c];

		if (!r->known)
			continue;
		if (kdreg2_mapping_changed(st, &r->params) == r->live)
			diverge("cookie %d: mapping_changed %d but model says %s",
				c, !r->live, r->live ? "live" : "retired");
	}
}

static bool bad_is_kernel;

/* A pointer no copy can use; kernel ones fail access_ok() in the VFS. */
static void *bad_pointer(void)
{
	static void *const bad[] = {
		NULL, (void *)8, (void *)0xffff888000000000UL,
		(void *)-4096L,
	};
	unsigned int i = below(4);

	bad_is_kernel = i >= 2;
	return bad[i];
}

static void op_config(void)
{
	struct kdreg2_config_data c = { .max_regions = below(MAXREG + 1) };
	bool busy = m.live || m.nq || m.ovf;
	long ret;

	if (below(10) == 0) {
		logop("CONFIG_DATA(bad pointer)");
		errno = 0;
		ret = ioctl(m.fd, KDREG2_IOCTL_CONFIG_DATA, bad_pointer());
		expect_ret("CONFIG_DATA(bad)", ret, errno, -1, EFAULT);
		tally("CONFIG_DATA", "bad pointer (NULL, low, kernel, top page)", "EFAULT");
		return;
	}
	logop("CONFIG_DATA(max %zu) busy %d", c.max_regions, busy);
	errno = 0;
	ret = ioctl(m.fd, KDREG2_IOCTL_CONFIG_DATA, &c);
	/* kdreg2: the size it already has is no change, busy or not. */
	if (m.configured && c.max_regions == m.max) {
		expect_ret("CONFIG_DATA(same size)", ret, errno, 0, 0);
		if (c.status_data != m.st)
			diverge("same-size CONFIG_DATA moved the status area");
		return;
	}
	expect_ret("CONFIG_DATA", ret, errno, busy ? -1 : 0, EBUSY);
	if (busy)
		tally("CONFIG_DATA", "resize while regions or events are pending", "EBUSY");
	if (busy)
		return;
	m.st = c.status_data;
	m.max = c.max_regions;
	m.configured = true;
	for (int i = 0; i < NCOOKIES; i++)
		m.reg[i].known = false;
	if (m.st->max_regions != m.max)
		diverge("status max_regions %zu, asked %zu", m.st->max_regions, m.max);
}

static void monitor_expect(int c, uint64_t s, uint64_t len, long *want, int *werr)
{
	struct mregion *r = &m.reg[c];

	*want = -1;
	if (!len || s + len - 1 < s)
		*werr = EINVAL;
	else if (!m.configured)
		*werr = ENOSPC;
	else if (r->live && (r->start != s || r->last != s + len - 1))
		*werr = EBUSY;
	else if (r->live)
		*want = 0;
	else if (m.live >= m.max)
		*werr = ENOSPC;
	else
		*want = 0;
}

static void monitor_commit(int c, uint64_t s, uint64_t len,
			   struct kdreg2_monitoring_params p)
{
	struct mregion *r = &m.reg[c];

	if (r->live) {
		if (p.location != r->params.location ||
		    p.generation != r->params.generation)
			diverge("re-MONITOR of cookie %d gave other params", c);
		return;
	}
	if (p.location >= m.max)
		diverge("MONITOR gave location %zu >= max %zu", p.location, m.max);
	for (int i = 0; i < NCOOKIES; i++)
		if (m.reg[i].live && m.reg[i].params.location == p.location)
			diverge("slot %zu handed out twice", p.location);
	*r = (struct mregion){ .live = true, .known = true, .start = s,
			       .last = s + len - 1, .seq = m.seq++,
			       .params = p };
	m.live++;
}

static void pick_range(uint64_t *s, uint64_t *len)
{
	size_t p0 = below(NPAGES), np = 1 + below(4);

	*s = (uint64_t)(uintptr_t)m.arena + p0 * PAGE + (below(4) ? 0 : below(PAGE));
	*len = np * PAGE - (below(4) ? 0 : below(PAGE));
	switch (below(40)) {
	case 0:
		*len = 0;
		break;
	case 1:
		*len = UINT64_MAX - 100;	/* wraps */
		break;
	}
	if (*s + *len > (uint64_t)(uintptr_t)m.arena + NPAGES * PAGE &&
	    *len < UINT64_MAX / 2)
		*len = (uint64_t)(uintptr_t)m.arena + NPAGES * PAGE - *s;
}

static void op_monitor(void)
{
	int c = below(NCOOKIES);
	struct kdreg2_ioctl_monitor a = { 0 };
	uint64_t s, len;
	long ret, want;
	int werr = 0;

	pick_range(&s, &len);
	if (below(8) == 0 && m.reg[c].live) {	/* exact duplicate */
		s = m.reg[c].start;
		len = m.reg[c].last - s + 1;
	}
	a.addr = (void *)(uintptr_t)s;
	a.length = len;
	a.cookie = below(30) ? (uint64_t)c : KDREG2_BAD_COOKIE_VALUE;
	if (below(25) == 0) {
		logop("MONITOR(bad pointer)");
		errno = 0;
		ret = ioctl(m.fd, KDREG2_IOCTL_MONITOR, bad_pointer());
		expect_ret("MONITOR(bad)", ret, errno, -1, EFAULT);
		tally("MONITOR", "bad pointer (NULL, low, kernel, top page)", "EFAULT");
		return;
	}
	logop("MONITOR(%#" PRIx64 "+%#" PRIx64 ", cookie %" PRId64 ")", s, len,
	      (int64_t)a.cookie);
	if (a.cookie == KDREG2_BAD_COOKIE_VALUE) {
		want = -1;
		werr = EINVAL;
	} else {
		monitor_expect(c, s, len, &want, &werr);
	}
	errno = 0;
	ret = ioctl(m.fd, KDREG2_IOCTL_MONITOR, &a);
	expect_ret("MONITOR", ret, errno, want, werr);
	if (a.cookie == KDREG2_BAD_COOKIE_VALUE)
		tally("MONITOR", "random range with cookie KDREG2_BAD_COOKIE_VALUE", "EINVAL");
	else if (werr == EINVAL)
		tally("MONITOR", "random length 0 or wrapping range", "EINVAL");
	else if (werr == EBUSY)
		tally("MONITOR", "random cookie already monitored, other range", "EBUSY");
	else if (werr == ENOSPC)
		tally("MONITOR", "random range with every slot taken or before CONFIG_DATA", "ENOSPC");
	if (!ret)
		monitor_commit(c, s, len, a.monitoring_params);
}

static void op_monitor_batch(void)
{
	struct mapwatch_monitor_entry e[8];
	struct mapwatch_batch b = { .size = sizeof(b), .entry_size = sizeof(e[0]),
				    .entries = (uintptr_t)e };
	long ret, ok = 0;
	int cookie[8];

	b.count = below(9);
	logop("MONITOR_BATCH(%u)", b.count);
	for (unsigned int i = 0; i < b.count; i++) {
		uint64_t s, len;

		pick_range(&s, &len);
		cookie[i] = below(NCOOKIES);
		e[i] = (struct mapwatch_monitor_entry){ .addr = s, .length = len,
							.cookie = cookie[i] };
	}
	errno = 0;
	ret = ioctl(m.fd, MAPWATCH_IOCTL_MONITOR_BATCH, &b);
	if (ret < 0)
		diverge("MONITOR_BATCH failed errno %d", errno);
	for (unsigned int i = 0; i < b.count; i++) {
		long want;
		int werr = 0;

		monitor_expect(cookie[i], e[i].addr, e[i].length, &want, &werr);
		if ((want == 0) != (e[i].status == 0) ||
		    (want && e[i].status != -werr))
			diverge("MONITOR_BATCH entry %u status %d, model %d", i,
				e[i].status, want ? -werr : 0);
		if (!e[i].status) {
			struct kdreg2_monitoring_params p = {
				.location = e[i].location,
				.generation = e[i].generation };

			monitor_commit(cookie[i], e[i].addr, e[i].length, p);
			ok++;
		}
	}
	if (ret != ok)
		diverge("MONITOR_BATCH returned %ld, %ld entries succeeded", ret, ok);
}

static void op_unmonitor(void)
{
	int c = below(NCOOKIES);
	struct mregion *r = &m.reg[c];
	struct kdreg2_ioctl_unmonitor u = { .cookie = c };
	long ret, want = -1;
	int werr, how = below(6);

	if (r->known)
		u.monitoring_params = r->params;
	if (how == 1)
		u.monitoring_params.generation++;
	if (how == 2)
		u.monitoring_params.location = below(MAXREG + 2);
	if (how == 3 && below(3) == 0) {
		logop("UNMONITOR(bad pointer)");
		errno = 0;
		ret = ioctl(m.fd, KDREG2_IOCTL_UNMONITOR, bad_pointer());
		expect_ret("UNMONITOR(bad)", ret, errno, -1, EFAULT);
		tally("UNMONITOR", "bad pointer (NULL, low, kernel, top page)", "EFAULT");
		return;
	}
	logop("UNMONITOR(cookie %d, loc %zu, gen %u) live %d", c,
	      u.monitoring_params.location, u.monitoring_params.generation,
	      r->live);
	if (!m.configured || u.monitoring_params.location >= m.max)
		werr = EINVAL;
	else if (!r->live)
		werr = ESRCH;
	else if (u.monitoring_params.location != r->params.location ||
		 u.monitoring_params.generation != r->params.generation)
		werr = EBADSLT;
	else
		want = 0, werr = 0;
	errno = 0;
	ret = ioctl(m.fd, KDREG2_IOCTL_UNMONITOR, &u);
	expect_ret("UNMONITOR", ret, errno, want, werr);
	if (werr == EINVAL)
		tally("UNMONITOR", "random location >= max_regions or before CONFIG_DATA", "EINVAL");
	else if (werr == ESRCH)
		tally("UNMONITOR", "random cookie not monitored (never, retired, unmonitored)", "ESRCH");
	else if (werr == EBADSLT)
		tally("UNMONITOR", "random stale or forged location/generation", "EBADSLT");
	if (!ret) {
		r->live = false;
		m.live--;
	}
}

static void op_unmonitor_all(void)
{
	logop("UNMONITOR_ALL");
	expect_ret("UNMONITOR_ALL", ioctl(m.fd, KDREG2_IOCTL_UNMONITOR_ALL),
		   errno, 0, 0);
	for (int c = 0; c < NCOOKIES; c++)
		m.reg[c].live = false;
	m.live = 0;
}

static void op_flush(void)
{
	logop("FLUSH");
	expect_ret("FLUSH", ioctl(m.fd, KDREG2_IOCTL_FLUSH), errno, 0, 0);
	if (!planted_bug)
		m.nq = 0;
	m.ovf = false;
}

static void op_read(void)
{
	struct kdreg2_event ev[8];
	size_t want = below(9), pending = m.nq + m.ovf, n, extra;
	ssize_t ret;

	if (below(12) == 0) {
		logop("read(bad pointer)");
		errno = 0;
		ret = read(m.fd, bad_pointer(), sizeof(ev));
		/* The VFS refuses a kernel pointer (EFAULT) before the
		 * module looks; the module's own copy fails with kdreg2's
		 * EACCES, and only when there is something to copy. */
		expect_ret("read(bad)", ret, errno, -1,
			   bad_is_kernel ? EFAULT : pending ? EACCES : EAGAIN);
		return;
	}
	logop("read(%zu records) pending %zu", want, pending);
	errno = 0;
	extra = below(2) * 7;
	ret = read(m.fd, ev, want * sizeof(ev[0]) + extra);
	if (!want) {
		/* kdreg2: 0 bytes asked, 0 read; 1..31: EINVAL. */
		expect_ret("read(short)", ret, errno, extra ? -1 : 0, EINVAL);
		return;
	}
	if (!pending) {
		expect_ret("read(empty)", ret, errno, -1, EAGAIN);
		return;
	}
	n = want < pending ? want : pending;
	if (ret != (ssize_t)(n * sizeof(ev[0])))
		diverge("read returned %zd, model %zu records", ret, n);
	for (size_t i = 0; i < n; i++) {
		struct mevent e;

		if (i < m.nq)
			e = m.q[i];
		else
			e = (struct mevent){ m.ovf_start,
					     m.ovf_last - m.ovf_start + 1,
					     KDREG2_BAD_COOKIE_VALUE };
		if (ev[i].type != KDREG2_EVENT_MAPPING_CHANGE ||
		    (uintptr_t)ev[i].u.mapping_change.addr != e.addr ||
		    ev[i].u.mapping_change.len != e.len ||
		    ev[i].u.mapping_change.cookie != e.cookie)
			diverge("record %zu: type %u addr %p len %zu cookie %" PRId64
				", model addr %#" PRIx64 " len %#" PRIx64 " cookie %" PRId64,
				i, ev[i].type, ev[i].u.mapping_change.addr,
				ev[i].u.mapping_change.len,
				(int64_t)ev[i].u.mapping_change.cookie, e.addr,
				e.len, (int64_t)e.cookie);
	}
	if (n > m.nq) {
		m.ovf = false;
		n = m.nq;
	}
	memmove(m.q, m.q + n, (m.nq - n) * sizeof(m.q[0]));
	m.nq -= n;
}

static void op_mapping(void)
{
	size_t p0 = below(NPAGES), np = 1 + below(6);
	char *a;
	uint64_t s, e;
	int kind = below(5);

	if (p0 + np > NPAGES)
		np = NPAGES - p0;
	a = m.arena + p0 * PAGE;
	s = (uintptr_t)a;
	e = s + np * PAGE;
	switch (kind) {
	case 0:
		logop("munmap(page %zu +%zu)", p0, np);
		if (munmap(a, np * PAGE))
			diverge("munmap failed: %s", strerror(errno));
		if (any_mapped(p0, np))
			model_retire(s, e);
		memset(m.mapped + p0, 0, np);
		break;
	case 1:
		logop("mmap FIXED(page %zu +%zu)", p0, np);
		if (mmap(a, np * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != a)
			diverge("mmap failed: %s", strerror(errno));
		if (any_mapped(p0, np))
			model_retire(s, e);
		memset(m.mapped + p0, 1, np);
		for (size_t i = p0; i < p0 + np; i++)
			m.prot[i] = PROT_READ | PROT_WRITE;
		if (below(2))
			memset(a, 0x5a, np * PAGE);
		break;
	case 2:
	case 3: {
		int advice = kind == 2 ? MADV_DONTNEED : MADV_FREE;

		logop("madvise(page %zu +%zu, %s)", p0, np,
		      kind == 2 ? "DONTNEED" : "FREE");
		(void)madvise(a, np * PAGE, advice);	/* ENOMEM on holes */
		/*
		 * Zapped one VMA at a time, in address order: only regions
		 * over mapped pages change.  Visiting pages in order retires
		 * regions in the same (start address) order as the kernel.
		 */
		for (size_t i = p0; i < p0 + np; i++)
			if (m.mapped[i])
				model_retire((uintptr_t)m.arena + i * PAGE,
					     (uintptr_t)m.arena + (i + 1) * PAGE);
		break;
	}
	default: {
		int prot = below(2) ? PROT_READ : PROT_READ | PROT_WRITE;

		logop("mprotect(page %zu +%zu)", p0, np);
		(void)mprotect(a, np * PAGE, prot);	/* ENOMEM on holes */
		/*
		 * The kernel changes the VMAs in order and stops at the first
		 * hole; a VMA whose protection is already @prot is left
		 * alone.  Each one it changes is one PROTECTION_VMA range
		 * (change_pmd_range(): the arena's page table always exists),
		 * which retires its regions where that event is not skipped.
		 */
		for (size_t i = p0; i < p0 + np && m.mapped[i]; i++) {
			if (m.prot[i] == prot)
				continue;
			m.prot[i] = prot;
			if (m.mprotect_retires)
				model_retire((uintptr_t)m.arena + i * PAGE,
					     (uintptr_t)m.arena + (i + 1) * PAGE);
		}
		break;
	}
	}
}

/*
 * The arena, in one 2 MiB block with a touched read-only page of its own
 * VMA after it: whatever the operations unmap, the block's page table stays
 * (free_pgtables() frees none that another VMA shares), so every mprotect
 * announces its range (the kernel skips a PMD without one).
 */
static char *map_arena(void)
{
	const size_t block = 2UL << 20, len = NPAGES * PAGE;
	char *r = mmap(NULL, 2 * block, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a, *end;

	if (r == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)r + block - 1) & ~(block - 1));
	end = r + 2 * block;
	if (mprotect(a + len, PAGE, PROT_READ))
		return NULL;
	*(volatile char *)(a + len);
	if (a > r)
		munmap(r, a - r);
	munmap(a + len + PAGE, end - (a + len + PAGE));
	return a;
}

static int run_seed(uint64_t seed, unsigned long ops)
{
	int pfd;
	char saved[32] = { 0 };

	failing_seed = seed;
	rng = seed * 2 + 1;
	memset(&m, 0, sizeof(m));
	opno = 0;
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	pfd = open(cap_param, O_RDWR);
	if (pfd < 0 || read(pfd, saved, sizeof(saved) - 1) <= 0) {
		printf("# cannot read %s: %s\n", cap_param, strerror(errno));
		return 3;	/* set-up failure, not a divergence */
	}
	if (pwrite(pfd, "6\n", 2, 0) != 2) {
		printf("# cannot set %s\n", cap_param);
		return 3;
	}
	m.fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_NONBLOCK);
	if (m.fd < 0) {
		printf("# open %s: %s\n", MAPWATCH_DEVICE_NAME, strerror(errno));
		return 3;
	}
	m.arena = map_arena();
	if (!m.arena)
		return 3;
	memset(m.mapped, 1, sizeof(m.mapped));
	for (size_t i = 0; i < NPAGES; i++)
		m.prot[i] = PROT_READ | PROT_WRITE;
	m.mprotect_retires = !mw_skips("protection_vma");
	for (opno = 0; opno < ops; opno++) {
		unsigned int r;

		if (keep && !keep[opno])
			continue;
		seed_op(seed, opno);
		r = below(100);

		if (r < 4)
			op_config();
		else if (r < 34)
			op_monitor();
		else if (r < 40)
			op_monitor_batch();
		else if (r < 52)
			op_unmonitor();
		else if (r < 54)
			op_unmonitor_all();
		else if (r < 56)
			op_flush();
		else if (r < 72)
			op_read();
		else
			op_mapping();
		check_state();
	}
	for (int i = 0; i < ntried && !quiet && !keep; i++)
		printf("# bad-input: %s | %s (fuzz_model) | %s\n", tried[i].entry,
		       tried[i].input, tried[i].err);
	fflush(stdout);
	close(m.fd);
	munmap(m.arena, NPAGES * PAGE);
	if (pwrite(pfd, saved, strlen(saved), 0) < 0)
		return 1;
	close(pfd);
	return 0;
}

/* Run @seed with only the operations in @mask; true if it diverged. */
static bool trial(uint64_t seed, unsigned long ops, const unsigned char *mask)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		keep = mask;
		quiet = true;
		_exit(run_seed(seed, ops));
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 1;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/*
 * Delta debugging (ddmin) over the operations up to the divergence: drop
 * chunks while the run still diverges, then replay the survivors verbosely.
 * Returns how many operations the minimal sequence has.
 */
static unsigned long minimize(uint64_t seed)
{
	unsigned long n = *div_at + 1, len = n, gran = 2, runs = 0;
	unsigned long *idx = malloc(n * sizeof(*idx));
	unsigned char *mask = calloc(n, 1);
	double deadline = now() + 120;

	for (unsigned long i = 0; i < n; i++)
		idx[i] = i;
	while (len >= 2 && now() < deadline) {
		unsigned long chunk = (len + gran - 1) / gran;
		bool reduced = false;

		for (unsigned long c0 = 0; c0 < len && !reduced; c0 += chunk) {
			unsigned long c1 = c0 + chunk < len ? c0 + chunk : len;

			memset(mask, 0, n);
			for (unsigned long i = 0; i < len; i++)
				if (i < c0 || i >= c1)
					mask[idx[i]] = 1;
			runs++;
			if (!trial(seed, n, mask))
				continue;
			memmove(idx + c0, idx + c1, (len - c1) * sizeof(*idx));
			len -= c1 - c0;
			gran = gran > 2 ? gran - 1 : 2;
			reduced = true;
		}
		if (!reduced) {
			if (gran >= len)
				break;
			gran = gran * 2 < len ? gran * 2 : len;
		}
	}
	memset(mask, 0, n);
	for (unsigned long i = 0; i < len; i++)
		mask[idx[i]] = 1;
	printf("# minimal reproducing sequence: %lu of %lu operations (%lu trial runs);"
	       " replay: fuzz_model --seed %" PRIu64 " --ops %lu --keep ", len, n,
	       runs, seed, n);
	for (unsigned long i = 0; i < len; i++)
		printf("%s%lu", i ? "," : "", idx[i]);
	printf("\n");
	fflush(stdout);
	if (fork() == 0) {
		keep = mask;
		verbose = true;
		_exit(run_seed(seed, n));
	}
	wait(NULL);
	free(idx);
	free(mask);
	return len;
}

static unsigned char *parse_keep(const char *list, unsigned long ops)
{
	unsigned char *mask = calloc(ops, 1);
	char *end;

	for (const char *p = list; *p; p = *end ? end + 1 : end) {
		unsigned long i = strtoul(p, &end, 10);

		if (end == p || i >= ops) {
			fprintf(stderr, "fuzz_model: bad --keep list\n");
			exit(2);
		}
		mask[i] = 1;
	}
	return mask;
}

int main(int argc, char **argv)
{
	uint64_t seed = 1;
	unsigned long ops = 20000, seeds = 8;
	const char *keep_list = NULL;
	bool fixed = false;
	char saved[32] = { 0 };
	int pfd, failed = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			seed = strtoull(argv[++i], NULL, 0);
			fixed = true;
			seeds = 1;
		} else if (!strcmp(argv[i], "--ops") && i + 1 < argc) {
			ops = strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
			seeds = strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--keep") && i + 1 < argc) {
			keep_list = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [--seed S] [--ops N] [--seeds K] [--keep I,J,...]\n",
				argv[0]);
			return 2;
		}
	}
	/* The debug lane scales the run up through the environment. */
	if (!fixed && getenv("FUZZ_SEED"))
		seed = strtoull(getenv("FUZZ_SEED"), NULL, 0);
	if (getenv("FUZZ_OPS"))
		ops = strtoul(getenv("FUZZ_OPS"), NULL, 0);
	if (!fixed && getenv("FUZZ_SEEDS"))
		seeds = strtoul(getenv("FUZZ_SEEDS"), NULL, 0);
	if (keep_list) {
		keep = parse_keep(keep_list, ops);
		verbose = true;
	}
	div_at = mmap(NULL, sizeof(*div_at), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pfd = open(cap_param, O_RDWR);
	if (div_at == MAP_FAILED || pfd < 0 ||
	    read(pfd, saved, sizeof(saved) - 1) <= 0) {
		printf("# cannot set up: %s\n", strerror(errno));
		return 1;
	}
	printf("1..%lu\n", seeds + (!fixed && !keep));
	for (unsigned long k = 0; k < seeds; k++) {
		pid_t pid = fork();
		int status;

		if (pid == 0)
			_exit(run_seed(seed + k, ops));
		waitpid(pid, &status, 0);
		bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;

		if (!ok && !keep && WIFEXITED(status) && WEXITSTATUS(status) == 1)
			minimize(seed + k);
		printf("%sok %lu seed_%" PRIu64 "_%lu_ops\n", ok ? "" : "not ",
		       k + 1, seed + k, ops);
		fflush(stdout);
		failed += !ok;
	}
	printf("# fuzz_model: %lu seeds x %lu ops, %d divergent\n", seeds, ops,
	       failed);
	if (!fixed && !keep) {
		/*
		 * The minimiser's own test: with a planted model bug (FLUSH
		 * leaves the model's queue alone) the run must diverge and
		 * shrink to a handful of operations.
		 */
		unsigned long len = 0;
		pid_t pid;
		int status;

		*div_at = 0;
		pid = fork();
		if (pid == 0) {
			planted_bug = true;
			quiet = true;
			_exit(run_seed(1, 20000));
		}
		waitpid(pid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 1) {
			planted_bug = true;
			len = minimize(1);
			planted_bug = false;
		}
		printf("%sok %lu minimizer_shrinks_planted_bug\n",
		       len && len <= 8 ? "" : "not ", seeds + 1);
		failed += !(len && len <= 8);
	}
	if (pwrite(pfd, saved, strlen(saved), 0) < 0)
		return 1;
	return failed ? 1 : 0;
}
