// SPDX-License-Identifier: GPL-2.0-only
/*
 * Which calls invalidate, and when: every call that changes a monitored
 * range's translation has changed the region's generation and queued its
 * event by the time it returns; protection-only changes (mprotect, fork's
 * write-protect, soft-dirty clearing) do not invalidate, and the real change
 * that follows them (the unmap, the COW copy) is still caught.  Also exact
 * range boundaries, overlapping regions, the no-window guarantee under
 * threads, and the event-queue overflow.  Huge pages, KSM, collapse,
 * swap-out, UFFDIO_MOVE, soft-offline and the OOM reaper: each real change
 * is caught, and the spurious reports of today (a PMD split that keeps the
 * same pages, hugetlb's fork) are stated and asserted as they are.
 *
 * usage: invalidation [CASE...]      (TAP)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>

#include "mapwatch_uapi.h"
#include "pagemap.h"
#include "skipped_events.h"
#include "tap.h"

#define PAGE 4096UL
#define EV_SIZE sizeof(struct kdreg2_event)
#define PARAM_MAX_PENDING "/sys/module/mapwatch/parameters/max_pending_events"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE 101
#endif
#ifndef MNT_DETACH
#define MNT_DETACH 2
#endif

typedef struct kdreg2_monitoring_params params_t;
typedef const struct kdreg2_status_data status_t;

/* ---- helpers ---------------------------------------------------------- */

static int fd;
static status_t *st;

/* Open and configure this case's fd (non-blocking reads). */
static void setup(size_t max)
{
	struct kdreg2_config_data c = { .max_regions = max };

	fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	st = c.status_data;
}

static char *map_anon(size_t n)
{
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	ASSERT_OK(madvise(p, n * PAGE, MADV_NOHUGEPAGE));
	memset(p, 0x5a, n * PAGE);
	return p;
}

static params_t watch(const void *addr, size_t len, uint64_t cookie)
{
	struct kdreg2_ioctl_monitor m = { .addr = addr, .length = len,
					  .cookie = cookie };

	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
	return m.monitoring_params;
}

static uint64_t pending(void)
{
	return kdreg2_read_counter(&st->pending_events);
}

static uint64_t total(void)
{
	return kdreg2_read_counter(&st->total_events);
}

static uint64_t active(void)
{
	return kdreg2_read_counter(&st->num_active_regions);
}

static uint64_t skipped(void)
{
	return kdreg2_read_counter(&mapwatch_status_ext(st)->skipped_invalidations);
}

static uint64_t overflows(void)
{
	return kdreg2_read_counter(&mapwatch_status_ext(st)->overflows);
}

static bool changed(params_t p)
{
	return kdreg2_mapping_changed(st, &p);
}

/* The physical page under @addr (/proc/self/pagemap; the guest is root). */
static uint64_t pfn_of(const void *addr)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t f;

	ASSERT_TRUE(fd >= 0);
	f = pagemap_frame(fd, addr);
	close(fd);
	ASSERT_TRUE(f);		/* present, and a PFN we may see */
	return f;
}

/*
 * A write fault on a write-protected private page reuses the page where the
 * kernel can (no translation change, so no event); older kernels (5.10) copy
 * a page that anything else holds a reference to (the LRU's per-CPU batch,
 * say), a real change that must be caught.  Which one happened is read from
 * the page frames, so the test asserts the module, not the kernel's choice.
 */
static bool write_copied(char *p, size_t n)
{
	uint64_t before[4];
	bool copied = false;
	size_t i;

	ASSERT_TRUE(n <= 4);
	for (i = 0; i < n; i++)
		before[i] = pfn_of(p + i * PAGE);
	for (i = 0; i < n; i++)
		p[i * PAGE] = 1;
	for (i = 0; i < n; i++)
		copied |= pfn_of(p + i * PAGE) != before[i];
	if (copied)
		tap_diag("the write fault copied the page: a real change, caught");
	return copied;
}

/* The next event must be exactly this one. */
static void expect_event(const void *addr, size_t len, uint64_t cookie)
{
	struct kdreg2_event ev;

	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)EV_SIZE);
	ASSERT_EQ(ev.type, KDREG2_EVENT_MAPPING_CHANGE);
	ASSERT_EQ((uintptr_t)ev.u.mapping_change.addr, (uintptr_t)addr);
	ASSERT_EQ(ev.u.mapping_change.len, len);
	ASSERT_EQ(ev.u.mapping_change.cookie, cookie);
}

static void expect_no_event(void)
{
	struct kdreg2_event ev;

	ASSERT_EQ(pending(), 0);
	ASSERT_ERRNO(read(fd, &ev, sizeof(ev)), EAGAIN);
}

/*
 * Right after the call that changed it: the region reports changed, its
 * event is counted and is the one queued, and it no longer counts as active.
 */
static void expect_retired(params_t p, const void *addr, size_t len,
			   uint64_t cookie)
{
	ASSERT_TRUE(changed(p));
	ASSERT_EQ(pending(), 1);
	expect_event(addr, len, cookie);
	expect_no_event();
}

/* One region over [addr, addr+len), the call, then expect_retired(). */
#define CHANGES(addr, len, call)					\
	do {								\
		params_t ch_p_ = watch((addr), (len), 42);		\
		uint64_t ch_t_ = total(), ch_a_ = active();		\
									\
		ASSERT_FALSE(changed(ch_p_));				\
		ASSERT_EQ(pending(), 0);				\
		ASSERT_OK(call);					\
		ASSERT_EQ(total(), ch_t_ + 1);				\
		ASSERT_EQ(active(), ch_a_ - 1);				\
		expect_retired(ch_p_, (addr), (len), 42);		\
	} while (0)

static int wait_child(pid_t pid)
{
	int status;

	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/*
 * A helper process, forked before the memory under test exists (so it
 * shares none of it), that runs one request at a time for the test process
 * and answers with the call's result.
 */
struct req {
	int op;
	uintptr_t addr;
	size_t len;
	int arg;
	char path[128];
};

enum { OP_EXIT, OP_TRUNCATE, OP_PUNCH, OP_PAGEOUT };

struct helper {
	pid_t pid;
	int to[2], from[2];
};

static long helper_do(pid_t target, struct req *r)
{
	long ret = -1;
	int f, pidfd;

	switch (r->op) {
	case OP_TRUNCATE:
	case OP_PUNCH:
		f = open(r->path, O_RDWR);
		if (f < 0)
			return -errno;
		if (r->op == OP_TRUNCATE)
			ret = ftruncate(f, r->len);
		else
			ret = fallocate(f, FALLOC_FL_PUNCH_HOLE |
					FALLOC_FL_KEEP_SIZE, r->addr, r->len);
		close(f);
		break;
	case OP_PAGEOUT: {
		struct iovec iov = { .iov_base = (void *)r->addr,
				     .iov_len = r->len };

		pidfd = syscall(SYS_pidfd_open, target, 0);
		if (pidfd < 0)
			return -errno;
		ret = syscall(SYS_process_madvise, pidfd, &iov, 1,
			      MADV_PAGEOUT, 0);
		close(pidfd);
		break;
	}
	}
	return ret < 0 ? -errno : ret;
}

static void helper_start(struct helper *h)
{
	pid_t parent = getpid();

	ASSERT_OK(pipe(h->to));
	ASSERT_OK(pipe(h->from));
	h->pid = fork();
	ASSERT_GE(h->pid, 0);
	if (h->pid == 0) {
		struct req r;

		while (read(h->to[0], &r, sizeof(r)) == sizeof(r) &&
		       r.op != OP_EXIT) {
			long ret = helper_do(parent, &r);

			if (write(h->from[1], &ret, sizeof(ret)) != sizeof(ret))
				_exit(2);
		}
		_exit(0);
	}
}

/* Run one request in the helper; returns once its call has returned. */
static long helper_call(struct helper *h, struct req *r)
{
	long ret;

	ASSERT_EQ(write(h->to[1], r, sizeof(*r)), (ssize_t)sizeof(*r));
	ASSERT_EQ(read(h->from[0], &ret, sizeof(ret)), (ssize_t)sizeof(ret));
	return ret;
}

static void helper_stop(struct helper *h)
{
	struct req r = { .op = OP_EXIT };

	ASSERT_EQ(write(h->to[1], &r, sizeof(r)), (ssize_t)sizeof(r));
	ASSERT_EQ(wait_child(h->pid), 0);
}

/* A tmpfs file of n pages, filled, mapped shared. */
static char *map_shared_file(const char *path, size_t n, int *fdp)
{
	int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	char *p;

	ASSERT_TRUE(f >= 0);
	ASSERT_OK(ftruncate(f, n * PAGE));
	p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 0x33, n * PAGE);
	*fdp = f;
	return p;
}

/* ---- unmapping -------------------------------------------------------- */

TEST(munmap_whole_region)
{
	char *p = map_anon(4);

	setup(8);
	CHANGES(p, 4 * PAGE, munmap(p, 4 * PAGE));
}

TEST(munmap_middle_page_of_region)
{
	char *p = map_anon(3);

	setup(8);
	CHANGES(p, 3 * PAGE, munmap(p + PAGE, PAGE));
	ASSERT_EQ(p[0], 0x5a);	/* the rest is still mapped */
}

TEST(munmap_first_page_of_region)
{
	char *p = map_anon(3);

	setup(8);
	CHANGES(p, 3 * PAGE, munmap(p, PAGE));
}

TEST(munmap_last_page_of_region)
{
	char *p = map_anon(3);

	setup(8);
	CHANGES(p, 3 * PAGE, munmap(p + 2 * PAGE, PAGE));
}

TEST(munmap_range_over_several_regions)
{
	char *p = map_anon(6);
	params_t a[6];
	struct kdreg2_event ev[8];

	setup(8);
	for (int i = 0; i < 6; i++)
		a[i] = watch(p + i * PAGE, PAGE, i);
	ASSERT_OK(munmap(p + 2 * PAGE, 3 * PAGE));
	for (int i = 0; i < 6; i++)
		ASSERT_EQ(changed(a[i]), i >= 2 && i <= 4);
	ASSERT_EQ(pending(), 3);
	ASSERT_EQ(active(), 3);
	ASSERT_EQ(read(fd, ev, sizeof(ev)), (ssize_t)(3 * EV_SIZE));
	/* One event per region, whatever the order. */
	ASSERT_EQ(ev[0].u.mapping_change.cookie + ev[1].u.mapping_change.cookie +
		  ev[2].u.mapping_change.cookie, 2 + 3 + 4);
	for (int i = 0; i < 3; i++) {
		uint64_t c = ev[i].u.mapping_change.cookie;

		ASSERT_TRUE(c >= 2 && c <= 4);
		ASSERT_EQ((uintptr_t)ev[i].u.mapping_change.addr,
			  (uintptr_t)p + c * PAGE);
		for (int j = 0; j < i; j++)
			ASSERT_NE(ev[j].u.mapping_change.cookie, c);
	}
}

TEST(mremap_move)
{
	char *p = map_anon(2);
	char *q = map_anon(2);
	params_t a, b;

	setup(8);
	a = watch(p, 2 * PAGE, 1);
	b = watch(q, PAGE, 2);	/* what was at the destination goes too */
	ASSERT_TRUE(mremap(p, 2 * PAGE, 2 * PAGE,
			   MREMAP_MAYMOVE | MREMAP_FIXED, q) == q);
	ASSERT_TRUE(changed(a));
	ASSERT_TRUE(changed(b));
	ASSERT_EQ(pending(), 2);
	ASSERT_EQ(q[0], 0x5a);
}

TEST(mremap_move_to_grow)
{
	char *p = map_anon(3), *r;

	setup(8);
	ASSERT_OK(munmap(p + 2 * PAGE, PAGE));
	/* A guard right after the region forces the move. */
	ASSERT_TRUE(mmap(p + PAGE, PAGE, PROT_NONE, MAP_PRIVATE |
			 MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p + PAGE);
	params_t a = watch(p, PAGE, 1);

	r = mremap(p, PAGE, 8 * PAGE, MREMAP_MAYMOVE);
	ASSERT_TRUE(r != MAP_FAILED);
	ASSERT_TRUE(r != p);
	expect_retired(a, p, PAGE, 1);
}

TEST(mremap_shrink)
{
	char *p = map_anon(4);
	params_t head, tail;

	setup(8);
	head = watch(p, PAGE, 1);
	tail = watch(p + 3 * PAGE, PAGE, 2);
	ASSERT_TRUE(mremap(p, 4 * PAGE, 2 * PAGE, 0) == p);
	ASSERT_FALSE(changed(head));
	expect_retired(tail, p + 3 * PAGE, PAGE, 2);
}

TEST(mremap_grow_in_place_keeps_region)
{
	char *p = map_anon(4);
	params_t a;

	setup(8);
	ASSERT_OK(munmap(p + 2 * PAGE, 2 * PAGE));
	a = watch(p, 2 * PAGE, 1);
	ASSERT_TRUE(mremap(p, 2 * PAGE, 4 * PAGE, 0) == p);
	ASSERT_FALSE(changed(a));
	expect_no_event();
	ASSERT_OK(munmap(p, 4 * PAGE));
	expect_retired(a, p, 2 * PAGE, 1);
}

TEST(map_fixed_over_region)
{
	char *p = map_anon(3);

	setup(8);
	CHANGES(p, 3 * PAGE, (long)mmap(p + PAGE, PAGE, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
					-1, 0) == (long)(p + PAGE) ? 0 : -1);
	ASSERT_EQ(p[PAGE], 0);	/* a new, zeroed page */
}

TEST(monitor_before_mapping_then_unmap)
{
	char *p = map_anon(2);
	params_t a;

	setup(8);
	ASSERT_OK(munmap(p, 2 * PAGE));
	a = watch(p, 2 * PAGE, 1);
	/* Mapping over a hole changes no existing translation. */
	ASSERT_TRUE(mmap(p, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE |
			 MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p);
	p[0] = 1;
	ASSERT_FALSE(changed(a));
	ASSERT_OK(munmap(p, 2 * PAGE));
	expect_retired(a, p, 2 * PAGE, 1);
}

/* ---- madvise ---------------------------------------------------------- */

TEST(madvise_dontneed)
{
	char *p = map_anon(2);

	setup(8);
	CHANGES(p, 2 * PAGE, madvise(p, PAGE, MADV_DONTNEED));
	ASSERT_EQ(p[0], 0);	/* refaulted as a new zero page */
}

TEST(madvise_free)
{
	char *p = map_anon(2);

	setup(8);
	CHANGES(p, 2 * PAGE, madvise(p + PAGE, PAGE, MADV_FREE));
}

TEST(madvise_remove_on_memfd)
{
	int f = memfd_create("mw", MFD_CLOEXEC);
	char *p;

	ASSERT_TRUE(f >= 0);
	ASSERT_OK(ftruncate(f, 4 * PAGE));
	p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 7, 4 * PAGE);
	setup(8);
	CHANGES(p + PAGE, 2 * PAGE, madvise(p + 2 * PAGE, PAGE, MADV_REMOVE));
	ASSERT_EQ(p[2 * PAGE], 0);	/* the hole reads as zeros */
}

TEST(madvise_remove_on_shared_anonymous)
{
	char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 7, 2 * PAGE);
	setup(8);
	CHANGES(p, 2 * PAGE, madvise(p, PAGE, MADV_REMOVE));
}

TEST(madvise_dontneed_on_shared_file)
{
	int f;
	char *p = map_shared_file("/tmp/mw-inval-dontneed", 2, &f);

	setup(8);
	CHANGES(p, PAGE, madvise(p, PAGE, MADV_DONTNEED));
	ASSERT_EQ(p[0], 0x33);	/* the file's page again */
	unlink("/tmp/mw-inval-dontneed");
}

/* ---- brk, SysV shm ---------------------------------------------------- */

TEST(brk_shrink)
{
	uintptr_t cur = (uintptr_t)sbrk(0);
	uintptr_t base = (cur + PAGE - 1) & ~(PAGE - 1);
	params_t low, high;

	setup(8);
	ASSERT_TRUE(sbrk(base - cur + 4 * PAGE) == (void *)cur);
	memset((void *)base, 1, 4 * PAGE);
	low = watch((void *)base, PAGE, 1);
	high = watch((void *)(base + 2 * PAGE), 2 * PAGE, 2);
	ASSERT_TRUE(sbrk(-2 * (intptr_t)PAGE) == (void *)(base + 4 * PAGE));
	ASSERT_FALSE(changed(low));
	expect_retired(high, (void *)(base + 2 * PAGE), 2 * PAGE, 2);
	ASSERT_TRUE(sbrk(-(intptr_t)PAGE) == (void *)(base + 2 * PAGE));
	ASSERT_FALSE(changed(low));
	ASSERT_TRUE(sbrk(-(intptr_t)PAGE) == (void *)(base + PAGE));
	expect_retired(low, (void *)base, PAGE, 1);
}

TEST(shmdt_detaches)
{
	int id = shmget(IPC_PRIVATE, 2 * PAGE, IPC_CREAT | 0600);
	char *p;

	ASSERT_TRUE(id >= 0);
	p = shmat(id, NULL, 0);
	ASSERT_OK(shmctl(id, IPC_RMID, NULL));
	ASSERT_TRUE(p != (void *)-1);
	memset(p, 9, 2 * PAGE);
	setup(8);
	CHANGES(p + PAGE, 100, shmdt(p));
}

/* ---- files: truncate, hole punch -------------------------------------- */

TEST(ftruncate_shared_file_mapping)
{
	int f;
	char *p = map_shared_file("/tmp/mw-inval-trunc", 4, &f);
	params_t head;

	setup(8);
	head = watch(p, 2 * PAGE, 1);
	CHANGES(p + 2 * PAGE, 2 * PAGE, ftruncate(f, 2 * PAGE));
	ASSERT_FALSE(changed(head));
	unlink("/tmp/mw-inval-trunc");
}

TEST(ftruncate_memfd_mapping)
{
	int f = memfd_create("mw", MFD_CLOEXEC);
	char *p;

	ASSERT_TRUE(f >= 0);
	ASSERT_OK(ftruncate(f, 2 * PAGE));
	p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 1, 2 * PAGE);
	setup(8);
	CHANGES(p, 2 * PAGE, ftruncate(f, 0));
}

TEST(fallocate_punch_hole)
{
	int f;
	char *p = map_shared_file("/tmp/mw-inval-punch", 4, &f);
	params_t other;

	setup(8);
	other = watch(p + 3 * PAGE, PAGE, 1);
	CHANGES(p + PAGE, PAGE, fallocate(f, FALLOC_FL_PUNCH_HOLE |
					   FALLOC_FL_KEEP_SIZE, PAGE, PAGE));
	ASSERT_FALSE(changed(other));
	ASSERT_EQ(p[PAGE], 0);
	unlink("/tmp/mw-inval-punch");
}

TEST(ftruncate_by_another_process)
{
	struct helper h;
	struct req r = { .op = OP_TRUNCATE, .len = PAGE };
	int f;
	char *p;
	params_t head, tail;

	helper_start(&h);
	p = map_shared_file("/tmp/mw-inval-other", 3, &f);
	setup(8);
	head = watch(p, PAGE, 1);
	tail = watch(p + PAGE, 2 * PAGE, 2);
	strcpy(r.path, "/tmp/mw-inval-other");
	ASSERT_EQ(helper_call(&h, &r), 0);
	/* The other process's call has returned: ours already reports. */
	ASSERT_FALSE(changed(head));
	expect_retired(tail, p + PAGE, 2 * PAGE, 2);
	helper_stop(&h);
	unlink("/tmp/mw-inval-other");
}

TEST(punch_hole_by_another_process)
{
	struct helper h;
	struct req r = { .op = OP_PUNCH, .addr = 2 * PAGE, .len = PAGE };
	int f;
	char *p;
	params_t a, b;

	helper_start(&h);
	p = map_shared_file("/tmp/mw-inval-other-punch", 4, &f);
	setup(8);
	a = watch(p, 2 * PAGE, 1);
	b = watch(p + 2 * PAGE, 2 * PAGE, 2);
	strcpy(r.path, "/tmp/mw-inval-other-punch");
	ASSERT_EQ(helper_call(&h, &r), 0);
	ASSERT_FALSE(changed(a));
	expect_retired(b, p + 2 * PAGE, 2 * PAGE, 2);
	helper_stop(&h);
	unlink("/tmp/mw-inval-other-punch");
}

/*
 * process_madvise(MADV_PAGEOUT) from another process on a clean file page
 * (a file on the host's 9p share: reclaimable without swap).  Whether the
 * kernel reclaims it is its choice: if the page stayed resident the case
 * is skipped, never passed.
 */
TEST(process_madvise_pageout_from_another_process)
{
	const char *dir = getenv("MAPWATCH_RESULTS");
	struct helper h;
	struct req r = { .op = OP_PAGEOUT };
	char path[256], buf[4 * PAGE];
	unsigned char vec[4];
	cpu_set_t one;
	params_t a, b;
	volatile char sink;
	long ret;
	char *p;
	int f;

	if (!dir)
		SKIP("MAPWATCH_RESULTS not set (not in the test guest)");
	/* Same CPU, so the helper's LRU drain covers our faults. */
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	ASSERT_OK(sched_setaffinity(0, sizeof(one), &one));
	helper_start(&h);
	snprintf(path, sizeof(path), "%s/mw-inval-pageout.%d", dir, getpid());
	f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_TRUE(f >= 0);
	memset(buf, 0x44, sizeof(buf));
	ASSERT_EQ(write(f, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	p = mmap(NULL, 4 * PAGE, PROT_READ, MAP_PRIVATE, f, 0);
	ASSERT_TRUE(p != MAP_FAILED);
	close(f);
	unlink(path);
	for (int i = 0; i < 4; i++)
		sink = p[i * PAGE];
	(void)sink;
	setup(8);
	a = watch(p + PAGE, PAGE, 1);
	b = watch(p + 3 * PAGE, PAGE, 2);
	r.addr = (uintptr_t)p + PAGE;
	r.len = PAGE;
	ret = helper_call(&h, &r);
	if (ret == -EINVAL || ret == -ENOSYS || ret == -EPERM)
		SKIP("process_madvise(MADV_PAGEOUT) refused: %ld", ret);
	ASSERT_GE(ret, 0);
	helper_stop(&h);
	ASSERT_OK(mincore(p, 4 * PAGE, vec));
	if (vec[1] & 1)
		SKIP("the kernel kept the page resident: nothing to check");
	expect_retired(a, p + PAGE, PAGE, 1);
	ASSERT_FALSE(changed(b));
	ASSERT_EQ(p[PAGE], 0x44);	/* read back from the file */
}

/* ---- skipped: protection-only changes --------------------------------- */

TEST(mprotect_skipped_then_munmap_caught)
{
	char *p = map_anon(2);
	params_t a;
	uint64_t s0;

	setup(8);
	a = watch(p, 2 * PAGE, 1);
	s0 = skipped();
	ASSERT_OK(mprotect(p, 2 * PAGE, PROT_READ));
	if (!mw_skips("protection_vma")) {
		/* Not skipped here (5.10: NUMA balancing moves a THP under
		 * this event alone): reported at once, nothing counted. */
		expect_retired(a, p, 2 * PAGE, 1);
		ASSERT_EQ(skipped(), s0);
		return;
	}
	ASSERT_FALSE(changed(a));
	ASSERT_OK(mprotect(p, PAGE, PROT_NONE));
	ASSERT_FALSE(changed(a));
	ASSERT_OK(mprotect(p, 2 * PAGE, PROT_READ | PROT_WRITE));
	ASSERT_FALSE(changed(a));
	ASSERT_GE(skipped(), s0 + 3);
	if (write_copied(p, 2)) {
		expect_retired(a, p, 2 * PAGE, 1);
		return;
	}
	ASSERT_FALSE(changed(a));
	expect_no_event();
	ASSERT_EQ(total(), 0);
	/* The real change afterwards is caught. */
	ASSERT_OK(munmap(p + PAGE, PAGE));
	expect_retired(a, p, 2 * PAGE, 1);
}

TEST(fork_skipped_then_cow_copy_caught)
{
	char *p = map_anon(2);
	params_t a, b;
	int go[2];
	pid_t pid;
	char c;

	setup(8);
	a = watch(p, PAGE, 1);
	b = watch(p + PAGE, PAGE, 2);
	ASSERT_OK(pipe(go));
	pid = fork();
	if (pid == 0) {
		/* Keep sharing the pages until told; touch nothing. */
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(p[0] == 0x5a ? 0 : 1);
	}
	/* fork write-protected our pages: no translation changed. */
	ASSERT_FALSE(changed(a));
	ASSERT_FALSE(changed(b));
	expect_no_event();
	ASSERT_GE(skipped(), 1);
	/* Our write copies the page the child still maps: a new page. */
	p[0] = 1;
	expect_retired(a, p, PAGE, 1);
	ASSERT_FALSE(changed(b));
	ASSERT_EQ(write(go[1], "g", 1), 1);
	ASSERT_EQ(wait_child(pid), 0);	/* the child saw the old data */
}

TEST(fork_child_cow_leaves_parent_region)
{
	char *p = map_anon(1);
	params_t a;
	pid_t pid;

	setup(8);
	a = watch(p, PAGE, 1);
	pid = fork();
	if (pid == 0) {
		p[0] = 2;	/* the child's copy */
		_exit(0);
	}
	ASSERT_EQ(wait_child(pid), 0);
	ASSERT_FALSE(changed(a));
	ASSERT_EQ(p[0], 0x5a);
	expect_no_event();
	ASSERT_OK(munmap(p, PAGE));
	expect_retired(a, p, PAGE, 1);
}

TEST(soft_dirty_clear_skipped_then_munmap_caught)
{
	char *p = map_anon(2);
	int cr = open("/proc/self/clear_refs", O_WRONLY);
	params_t a;
	uint64_t s0;

	ASSERT_TRUE(cr >= 0);
	setup(8);
	a = watch(p, 2 * PAGE, 1);
	s0 = skipped();
	errno = 0;
	if (write(cr, "4", 1) != 1) {
		if (errno == EINVAL)
			NEED("soft_dirty", "kernel without CONFIG_MEM_SOFT_DIRTY");
		ASSERT_TRUE(!"write to clear_refs failed");
	}
	ASSERT_FALSE(changed(a));
	ASSERT_GT(skipped(), s0);
	/* The write fault that sets soft-dirty again (reuses the page). */
	if (write_copied(p, 1)) {
		expect_retired(a, p, 2 * PAGE, 1);
		return;
	}
	ASSERT_FALSE(changed(a));
	expect_no_event();
	ASSERT_OK(munmap(p, PAGE));
	expect_retired(a, p, 2 * PAGE, 1);
}

/* ---- huge pages, KSM, reclaim and the rest ----------------------------- */

#define MIB (1024 * 1024UL)
#define HPAGE (2 * MIB)

/*
 * Kernel knobs a case changes (sysfs, /proc/sys): the old value is put back
 * at the end of the case, or by exit() when an ASSERT ends it early.
 */
struct knob {
	char path[128];
	char old[64];
};

static struct knob knobs[8];
static int nknobs;

static int write_str(const char *path, const char *val)
{
	int f = open(path, O_WRONLY);
	ssize_t n;

	if (f < 0)
		return -errno;
	n = write(f, val, strlen(val));
	n = n < 0 ? -errno : 0;
	close(f);
	return (int)n;
}

static void knobs_restore(void)
{
	while (nknobs > 0) {
		nknobs--;
		write_str(knobs[nknobs].path, knobs[nknobs].old);
	}
}

static void knob_set(const char *path, const char *val)
{
	struct knob *k = &knobs[nknobs];
	int f = open(path, O_RDONLY);
	ssize_t n;

	ASSERT_TRUE(f >= 0);
	ASSERT_LT(nknobs, 8);
	n = read(f, k->old, sizeof(k->old) - 1);
	close(f);
	ASSERT_GT(n, 0);
	k->old[n] = 0;
	snprintf(k->path, sizeof(k->path), "%s", path);
	if (nknobs++ == 0)
		atexit(knobs_restore);
	ASSERT_EQ(write_str(path, val), 0);
}

/* The page's /proc/self/pagemap entry (present bit 63, swapped bit 62). */
static uint64_t pagemap_of(const void *addr)
{
	int f = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;

	ASSERT_TRUE(f >= 0);
	ASSERT_EQ(pread(f, &e, sizeof(e), (uintptr_t)addr / PAGE * sizeof(e)),
		  (ssize_t)sizeof(e));
	close(f);
	return e;
}

/* AnonHugePages (kB, PMD-mapped THP) of the VMA holding @addr. */
static long anon_huge_kb(const void *addr)
{
	long kb = smaps_anon_huge_kb(addr);

	ASSERT_GE(kb, 0);
	return kb;
}

/* A child that exits at once: the fork is the event under test. */
static void fork_and_wait(void)
{
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(0);
	ASSERT_EQ(wait_child(pid), 0);
}

/* A 2 MiB-aligned 2 MiB of anonymous memory of its own VMA, touched. */
static char *map_2m(bool huge)
{
	char *a = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	ASSERT_TRUE(a != MAP_FAILED);
	p = (char *)(((uintptr_t)a + HPAGE - 1) & ~(HPAGE - 1));
	ASSERT_OK(madvise(p, HPAGE, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE));
	memset(p, 0x5a, HPAGE);
	if (huge && anon_huge_kb(p) != (long)(HPAGE / 1024))
		NEED("thp", "no transparent huge page behind a touched, "
		     "aligned MADV_HUGEPAGE range");
	return p;
}

/*
 * Spurious but safe: a fork splits the PMD of a pinned THP in the parent
 * (copy_huge_pmd() cannot share a pinned page, so it splits and copies the
 * pinned PTEs for the child).  The split announces MMU_NOTIFY_CLEAR over
 * the 2 MiB and the module retires the region, though every page under it
 * keeps its frame.  The pin is an io_uring fixed buffer (FOLL_LONGTERM, as
 * ibv_reg_mr's).
 */
TEST(spurious_fork_with_pinned_thp)
{
	struct io_uring_params prm = { 0 };
	char *p = map_2m(true), *q = map_anon(1);
	struct iovec iov = { .iov_base = p, .iov_len = HPAGE };
	uint64_t pfn;
	params_t a, b;
	int ring;

	ring = syscall(__NR_io_uring_setup, 1, &prm);
	if (ring < 0)
		NEED("io_uring", "io_uring_setup: errno %d", errno);
	ASSERT_OK(syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS,
			  &iov, 1));
	setup(8);
	a = watch(p + MIB, PAGE, 1);
	b = watch(q, PAGE, 2);
	pfn = pfn_of(p + MIB);
	fork_and_wait();
	ASSERT_EQ(pfn_of(p + MIB), pfn);	/* no translation changed */
	ASSERT_EQ(anon_huge_kb(p), 0);		/* but the PMD was split */
	tap_diag("today: the split of the pinned THP reports the region");
	expect_retired(a, p + MIB, PAGE, 1);
	ASSERT_FALSE(changed(b));	/* an unpinned small page: skipped */
	/* Split once: the next fork copies the pinned PTEs, no report. */
	a = watch(p + MIB, PAGE, 3);
	fork_and_wait();
	ASSERT_FALSE(changed(a));
	expect_no_event();
	close(ring);
}

/* A pinned THP that fork does not copy (MADV_DONTFORK) is not reported. */
TEST(fork_with_pinned_thp_dontfork_not_reported)
{
	struct io_uring_params prm = { 0 };
	char *p = map_2m(true);
	struct iovec iov = { .iov_base = p, .iov_len = HPAGE };
	params_t a;
	int ring;

	ring = syscall(__NR_io_uring_setup, 1, &prm);
	if (ring < 0)
		NEED("io_uring", "io_uring_setup: errno %d", errno);
	ASSERT_OK(syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS,
			  &iov, 1));
	ASSERT_OK(madvise(p, HPAGE, MADV_DONTFORK));
	setup(8);
	a = watch(p + MIB, PAGE, 1);
	fork_and_wait();
	ASSERT_EQ(anon_huge_kb(p), (long)(HPAGE / 1024));
	ASSERT_FALSE(changed(a));
	expect_no_event();
	close(ring);
}

/*
 * Spurious but safe: fork write-protects a private hugetlb mapping with
 * MMU_NOTIFY_CLEAR over the whole VMA (copy_hugetlb_page_range()), not
 * PROTECTION_PAGE as for other memory, so every region in it is retired.
 */
TEST(spurious_fork_with_private_hugetlb)
{
	char *p, *q = map_anon(1);
	uint64_t pfn[2];
	params_t a, b, c;
	struct kdreg2_event ev[2];
	long have = tap_read_ll("/proc/sys/vm/", "nr_hugepages");
	char want[32];

	ASSERT_GE(have, 0);
	snprintf(want, sizeof(want), "%ld\n", have + 2);
	knob_set("/proc/sys/vm/nr_hugepages", want);
	p = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED)
		NEED("hugetlb", "no 2 MiB hugetlb pages: errno %d", errno);
	memset(p, 0x5a, 2 * HPAGE);
	setup(8);
	a = watch(p + PAGE, PAGE, 1);
	b = watch(p + HPAGE + MIB, 100, 2);
	c = watch(q, PAGE, 3);
	pfn[0] = pfn_of(p + PAGE);
	pfn[1] = pfn_of(p + HPAGE + MIB);
	fork_and_wait();
	ASSERT_EQ(pfn_of(p + PAGE), pfn[0]);
	ASSERT_EQ(pfn_of(p + HPAGE + MIB), pfn[1]);
	tap_diag("today: fork reports every region of a private hugetlb VMA");
	ASSERT_TRUE(changed(a));
	ASSERT_TRUE(changed(b));
	ASSERT_FALSE(changed(c));
	ASSERT_EQ(pending(), 2);
	ASSERT_EQ(read(fd, ev, sizeof(ev)), (ssize_t)sizeof(ev));
	ASSERT_EQ(ev[0].u.mapping_change.cookie + ev[1].u.mapping_change.cookie,
		  3);
	/* Every fork does it again; one that skips the VMA does not. */
	a = watch(p + PAGE, PAGE, 4);
	fork_and_wait();
	ASSERT_TRUE(changed(a));
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
	ASSERT_OK(madvise(p, 2 * HPAGE, MADV_DONTFORK));
	a = watch(p + PAGE, PAGE, 5);
	fork_and_wait();
	ASSERT_FALSE(changed(a));
	expect_no_event();
	ASSERT_OK(munmap(p, 2 * HPAGE));
	knobs_restore();
}

/*
 * Spurious but safe: mprotect over part of a THP splits the VMA, and the
 * VMA split splits the PMD (MMU_NOTIFY_CLEAR over the 2 MiB) before the
 * protection change itself (PROTECTION_VMA, skipped).  Over the whole THP
 * nothing is split and nothing reported where PROTECTION_VMA is skipped;
 * where it is not (5.10), each mprotect reports the region, and the page
 * stays where it was all the same.
 */
TEST(spurious_partial_mprotect_over_thp)
{
	bool skips = mw_skips("protection_vma");
	char *p = map_2m(true);
	uint64_t pfn, cookie = 1;
	params_t a;

	setup(8);
	a = watch(p + MIB, PAGE, cookie);
	pfn = pfn_of(p + MIB);
	for (int i = 0; i < 2; i++) {
		ASSERT_OK(mprotect(p, HPAGE, i ? PROT_READ | PROT_WRITE :
					       PROT_READ));
		if (skips)
			continue;
		expect_retired(a, p + MIB, PAGE, cookie);
		a = watch(p + MIB, PAGE, ++cookie);
	}
	ASSERT_FALSE(changed(a));
	expect_no_event();
	ASSERT_EQ(pfn_of(p + MIB), pfn);
	ASSERT_EQ(anon_huge_kb(p), (long)(HPAGE / 1024));
	ASSERT_OK(mprotect(p, 16 * PAGE, PROT_READ));
	ASSERT_EQ(pfn_of(p + MIB), pfn);
	ASSERT_EQ(anon_huge_kb(p + MIB), 0);
	tap_diag("today: the PMD split of a partial mprotect reports the region");
	expect_retired(a, p + MIB, PAGE, cookie);
}

/*
 * Spurious but safe, without any huge page: an mprotect that splits a VMA
 * at an address that is not 2 MiB-aligned, with the 2 MiB around it inside
 * the VMA, announces a PMD split there (vma_adjust_trans_huge() calls
 * __split_huge_pmd(), whose MMU_NOTIFY_CLEAR over the 2 MiB comes before it
 * looks at the PMD), so regions within 1 MiB of the boundary are retired.
 * This is the report seen on 6.1 for mprotect(PROT_READ) of a touched
 * 64 MiB mmap that had merged with its neighbour; from 6.7 on, anonymous
 * mmaps of 2 MiB or more start 2 MiB-aligned, so that one split no longer
 * happens, but the one below does.
 */
TEST(spurious_mprotect_splitting_vma_off_2m)
{
	const size_t len = 64 * MIB;
	char *area = mmap(NULL, len + 4 * MIB, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;
	uint64_t pfn[2];
	params_t whole, mid;

	ASSERT_TRUE(area != MAP_FAILED);
	ASSERT_OK(madvise(area, len + 4 * MIB, MADV_NOHUGEPAGE));
	memset(area, 0x5a, len + 4 * MIB);
	/* 1 MiB past a 2 MiB boundary: both ends split off-2 MiB. */
	p = (char *)(((uintptr_t)area + HPAGE - 1) & ~(HPAGE - 1)) + MIB;
	setup(8);
	whole = watch(p, len, 1);
	mid = watch(p + len / 2, PAGE, 2);
	pfn[0] = pfn_of(p);
	pfn[1] = pfn_of(p + len - PAGE);
	ASSERT_EQ(anon_huge_kb(p), 0);
	ASSERT_OK(mprotect(p, len, PROT_READ));
	ASSERT_EQ(pfn_of(p), pfn[0]);
	ASSERT_EQ(pfn_of(p + len - PAGE), pfn[1]);
	tap_diag("today: the VMA split announces a PMD split over the ends");
	if (!mw_skips("protection_vma")) {
		/* 5.10: the protection change itself reports the middle too,
		 * after the split (the ends) reported the whole. */
		ASSERT_TRUE(changed(whole));
		ASSERT_TRUE(changed(mid));
		ASSERT_EQ(pending(), 2);
		expect_event(p, len, 1);
		expect_event(p + len / 2, PAGE, 2);
		expect_no_event();
	} else {
		ASSERT_FALSE(changed(mid));
		expect_retired(whole, p, len, 1);
	}
	area = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(area != MAP_FAILED);
	tap_diag("a new 64 MiB mmap here starts %s2 MiB-aligned",
		 (uintptr_t)area % HPAGE ? "not " : "");
}

static bool ksm_all_merged(const char *p, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (pfn_of(p + i * PAGE) != pfn_of(p))
			return false;
	return true;
}

/*
 * Caught: ksmd merging identical pages into one KSM page.  Of n identical
 * pages, n - 1 are replaced by the one KSM keeps in place (which page that
 * is, is the scan's choice); that one is write-protected with
 * MMU_NOTIFY_CLEAR first, so it is reported too (spurious, but the
 * notifier cannot tell that write-protect from a replace).
 */
TEST(ksm_merge_caught)
{
	char *p = map_anon(4);
	uint64_t before[4];
	params_t a[4];
	int i, moved = 0;

	if (access("/sys/kernel/mm/ksm/run", W_OK) ||
	    madvise(p, 4 * PAGE, MADV_MERGEABLE))
		NEED("ksm", "kernel without KSM (CONFIG_KSM)");
	setup(8);
	for (i = 0; i < 4; i++) {
		a[i] = watch(p + i * PAGE, PAGE, i);
		before[i] = pfn_of(p + i * PAGE);
	}
	knob_set("/sys/kernel/mm/ksm/pages_to_scan", "1000");
	knob_set("/sys/kernel/mm/ksm/sleep_millisecs", "10");
	knob_set("/sys/kernel/mm/ksm/run", "1");
	/* A hang guard on a slow guest, not a timing check. */
	for (i = 0; i < 3000 && !ksm_all_merged(p, 4); i++)
		usleep(20000);
	ASSERT_TRUE(ksm_all_merged(p, 4));
	for (i = 0; i < 4; i++) {
		if (pfn_of(p + i * PAGE) != before[i])
			moved++;
		ASSERT_TRUE(changed(a[i]));
		ASSERT_EQ(p[i * PAGE], 0x5a);
	}
	ASSERT_EQ(moved, 3);
	ASSERT_EQ(pending(), 4);
	knobs_restore();
}

/* Caught: MADV_COLLAPSE copies small pages into a new huge page. */
TEST(madv_collapse_caught)
{
	char *p = map_2m(false);
	uint64_t before;
	params_t a;
	int r, tries = 0;

	setup(8);
	a = watch(p + 5 * PAGE, PAGE, 1);
	before = pfn_of(p + 5 * PAGE);
	ASSERT_EQ(anon_huge_kb(p), 0);
	ASSERT_OK(madvise(p, HPAGE, MADV_HUGEPAGE));
	do {
		r = madvise(p, HPAGE, MADV_COLLAPSE);
	} while (r && (errno == EAGAIN || errno == ENOMEM) && ++tries < 5);
	if (r && errno == EINVAL)
		NEED("madv_collapse", "kernel without MADV_COLLAPSE (6.1)");
	ASSERT_EQ(r, 0);
	ASSERT_EQ(anon_huge_kb(p), (long)(HPAGE / 1024));
	ASSERT_NE(pfn_of(p + 5 * PAGE), before);
	expect_retired(a, p + 5 * PAGE, PAGE, 1);
	ASSERT_EQ(p[5 * PAGE], 0x5a);
}

/* Caught: khugepaged collapsing small pages into a huge page. */
TEST(khugepaged_collapse_caught)
{
	const char *kh = "/sys/kernel/mm/transparent_hugepage/khugepaged/";
	char path[128];
	uint64_t before;
	params_t a;
	char *p;
	int i;

	if (access(kh, F_OK))
		NEED("thp", "kernel without transparent huge pages");
	p = map_2m(false);
	setup(8);
	a = watch(p + 7 * PAGE, PAGE, 1);
	before = pfn_of(p + 7 * PAGE);
	snprintf(path, sizeof(path), "%spages_to_scan", kh);
	knob_set(path, "4096");
	snprintf(path, sizeof(path), "%salloc_sleep_millisecs", kh);
	knob_set(path, "10");
	snprintf(path, sizeof(path), "%sscan_sleep_millisecs", kh);
	knob_set(path, "10");
	ASSERT_OK(madvise(p, HPAGE, MADV_HUGEPAGE));
	/* A hang guard on a slow guest, not a timing check. */
	for (i = 0; i < 3000 && anon_huge_kb(p) == 0; i++)
		usleep(20000);
	ASSERT_EQ(anon_huge_kb(p), (long)(HPAGE / 1024));
	ASSERT_NE(pfn_of(p + 7 * PAGE), before);
	expect_retired(a, p + 7 * PAGE, PAGE, 1);
	knobs_restore();
}

/* Swap on a zram device for the case; swap_off() (also at exit) undoes it. */
static void swap_off(void)
{
	syscall(SYS_swapoff, "/dev/zram0");
	write_str("/sys/block/zram0/reset", "1");
}

static void swap_on_zram(void)
{
	if (system("modprobe zram num_devices=1 2>/dev/null") != 0 ||
	    access("/sys/block/zram0/disksize", W_OK))
		NEED("zram", "no zram device for swap (CONFIG_ZRAM)");
	swap_off();
	atexit(swap_off);
	ASSERT_EQ(write_str("/sys/block/zram0/disksize", "64M"), 0);
	ASSERT_EQ(system("mkswap /dev/zram0 >/dev/null"), 0);
	ASSERT_OK(syscall(SYS_swapon, "/dev/zram0", 0));
}

/* Caught: MADV_PAGEOUT writes private anonymous pages out to swap. */
TEST(madv_pageout_swap_out_caught)
{
	char *p = map_anon(4);
	params_t a, b;

	swap_on_zram();
	setup(8);
	a = watch(p + PAGE, PAGE, 1);
	b = watch(p + 3 * PAGE, PAGE, 2);
	ASSERT_OK(madvise(p + PAGE, PAGE, MADV_PAGEOUT));
	ASSERT_TRUE(pagemap_of(p + PAGE) >> 62 & 1);	/* swapped out */
	expect_retired(a, p + PAGE, PAGE, 1);
	ASSERT_FALSE(changed(b));
	ASSERT_EQ(p[PAGE], 0x5a);	/* swapped in again */
	swap_off();
}

/*
 * Caught: swap-out under memory pressure.  The case runs in a cgroup-v2
 * group with memory.high (reclaim, never the OOM killer) and fills more
 * memory than that: reclaim writes the oldest pages, the watched ones, to
 * swap.  Reclaim may also start on a page and keep it, so only the pages
 * that went (swapped, per pagemap) must be reported.
 */
static void cg2_cleanup(void)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d\n", getpid());
	write_str("/tmp/mw-cg2/cgroup.procs", buf);
	rmdir("/tmp/mw-cg2/mw");
	syscall(SYS_umount2, "/tmp/mw-cg2", MNT_DETACH);
	rmdir("/tmp/mw-cg2");
}

TEST(memory_pressure_swap_out_caught)
{
	const size_t fill = 96 * MIB;
	char buf[32], *p, *f;
	params_t a[4];
	size_t done = 0;
	int i, swapped = 0;

	swap_on_zram();
	mkdir("/tmp/mw-cg2", 0700);
	if (syscall(SYS_mount, "cgroup2", "/tmp/mw-cg2", "cgroup2", 0, NULL))
		NEED("memcg", "no cgroup2: errno %d", errno);
	atexit(cg2_cleanup);
	if (write_str("/tmp/mw-cg2/cgroup.subtree_control", "+memory"))
		NEED("memcg", "no memory controller (CONFIG_MEMCG)");
	ASSERT_OK(mkdir("/tmp/mw-cg2/mw", 0700));
	ASSERT_EQ(write_str("/tmp/mw-cg2/mw/memory.high", "16M"), 0);
	snprintf(buf, sizeof(buf), "%d\n", getpid());
	ASSERT_EQ(write_str("/tmp/mw-cg2/mw/cgroup.procs", buf), 0);
	p = map_anon(4);	/* charged to the group from here on */
	setup(8);
	for (i = 0; i < 4; i++)
		a[i] = watch(p + i * PAGE, PAGE, i);
	f = mmap(NULL, fill, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(f != MAP_FAILED);
	ASSERT_OK(madvise(f, fill, MADV_NOHUGEPAGE));
	while (!swapped && done < fill) {
		memset(f + done, 0x11, 4 * MIB);
		done += 4 * MIB;
		for (i = 0; i < 4; i++)
			swapped += pagemap_of(p + i * PAGE) >> 62 & 1;
	}
	tap_diag("%d of 4 watched pages swapped out after %zu MiB", swapped,
		 done / MIB);
	ASSERT_GT(swapped, 0);
	for (i = 0; i < 4; i++)
		if (pagemap_of(p + i * PAGE) >> 62 & 1)
			ASSERT_TRUE(changed(a[i]));
	ASSERT_EQ(p[0], 0x5a);
	ASSERT_OK(munmap(f, fill));
	cg2_cleanup();
	swap_off();
}

#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
struct uffdio_move {
	__u64 dst, src, len, mode;
	__s64 move;
};

#define UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct uffdio_move)
#endif

/* Caught: UFFDIO_MOVE takes a watched page away to another address. */
TEST(uffdio_move_caught)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_MOVE };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_move mv = { .len = PAGE };
	char *src = map_anon(2), *dst;
	uint64_t before;
	params_t a, b;
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	ASSERT_TRUE(uffd >= 0);
	if (ioctl(uffd, UFFDIO_API, &api))
		NEED("uffd_move", "kernel without UFFDIO_MOVE (6.8)");
	dst = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(dst != MAP_FAILED);
	ASSERT_OK(madvise(dst, 2 * PAGE, MADV_NOHUGEPAGE));
	reg.range.start = (uintptr_t)dst;
	reg.range.len = 2 * PAGE;
	ASSERT_OK(ioctl(uffd, UFFDIO_REGISTER, &reg));
	setup(8);
	a = watch(src, PAGE, 1);
	b = watch(src + PAGE, PAGE, 2);
	before = pfn_of(src);
	mv.dst = (uintptr_t)dst;
	mv.src = (uintptr_t)src;
	ASSERT_OK(ioctl(uffd, UFFDIO_MOVE, &mv));
	ASSERT_EQ(mv.move, (long long)PAGE);
	ASSERT_EQ(pfn_of(dst), before);		/* the page went */
	expect_retired(a, src, PAGE, 1);
	ASSERT_FALSE(changed(b));
	close(uffd);
}

/* Caught: soft-offlining migrates a page to a new frame. */
TEST(soft_offline_caught)
{
	char *p = map_anon(2);
	uint64_t before;
	params_t a, b;
	int r;

	setup(8);
	a = watch(p, PAGE, 1);
	b = watch(p + PAGE, PAGE, 2);
	before = pfn_of(p);
	r = madvise(p, PAGE, MADV_SOFT_OFFLINE);
	if (r && errno == EINVAL)
		NEED("soft_offline", "kernel without CONFIG_MEMORY_FAILURE "
		     "(MADV_SOFT_OFFLINE)");
	ASSERT_EQ(r, 0);
	ASSERT_NE(pfn_of(p), before);
	expect_retired(a, p, PAGE, 1);
	ASSERT_FALSE(changed(b));
	ASSERT_EQ(p[0], 0x5a);
}

/*
 * Caught: the OOM reaper.  What it runs, __oom_reap_task_mm() (unmap every
 * private mapping of a killed process, with non-blocking notifiers), is
 * also what process_mrelease(2) runs; the case uses that rather than a real
 * OOM kill, whose report vm/run rightly counts as a kernel problem.  The
 * victim is held in a frozen cgroup-v1 freezer group (a SIGKILL does not
 * thaw it), so its exit cannot do the reaper's work first: the region must
 * read changed while the victim has not exited.  A process the victim
 * forked, sharing its status area, reads it.
 */
struct reap_shared {
	params_t a;
	atomic_int step;	/* 1 victim ready, 2/3 check asked/done */
	int changed, pending, total;
};

static void reap_reader(struct reap_shared *sh)
{
	while (atomic_load(&sh->step) != 2)
		usleep(1000);
	sh->changed = changed(sh->a);
	sh->pending = (int)pending();
	sh->total = (int)total();
	atomic_store(&sh->step, 3);
	_exit(0);
}

static void reap_check(struct reap_shared *sh)
{
	atomic_store(&sh->step, 2);
	while (atomic_load(&sh->step) != 3)
		usleep(1000);
}

static void freezer_cleanup(void)
{
	write_str("/tmp/mw-freezer/mw/freezer.state", "THAWED");
	rmdir("/tmp/mw-freezer/mw");
	syscall(SYS_umount2, "/tmp/mw-freezer", MNT_DETACH);
	rmdir("/tmp/mw-freezer");
}

TEST(oom_reaper_caught)
{
	struct reap_shared *sh = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char buf[32];
	pid_t victim;
	int pidfd, f, i, r;

	ASSERT_TRUE(sh != MAP_FAILED);
	ASSERT_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	mkdir("/tmp/mw-freezer", 0700);
	if (syscall(SYS_mount, "freezer", "/tmp/mw-freezer", "cgroup", 0,
		    "freezer"))
		NEED("oom_reap", "no cgroup-v1 freezer: errno %d", errno);
	atexit(freezer_cleanup);
	ASSERT_OK(mkdir("/tmp/mw-freezer/mw", 0700));
	victim = fork();
	ASSERT_GE(victim, 0);
	if (victim == 0) {
		char *p = map_anon(4);

		setup(8);
		sh->a = watch(p, 4 * PAGE, 1);
		if (fork() == 0)
			reap_reader(sh);
		atomic_store(&sh->step, 1);
		for (;;)
			pause();
	}
	pidfd = syscall(SYS_pidfd_open, victim, 0);
	ASSERT_TRUE(pidfd >= 0);
	while (atomic_load(&sh->step) != 1)
		usleep(1000);
	snprintf(buf, sizeof(buf), "%d\n", victim);
	ASSERT_EQ(write_str("/tmp/mw-freezer/mw/cgroup.procs", buf), 0);
	ASSERT_EQ(write_str("/tmp/mw-freezer/mw/freezer.state", "FROZEN"), 0);
	for (i = 0; i < 1000; i++) {
		f = open("/tmp/mw-freezer/mw/freezer.state", O_RDONLY);
		ASSERT_TRUE(f >= 0);
		memset(buf, 0, sizeof(buf));
		ASSERT_GT(read(f, buf, sizeof(buf) - 1), 0);
		close(f);
		if (!strncmp(buf, "FROZEN", 6))
			break;
		usleep(10000);
	}
	ASSERT_EQ(strncmp(buf, "FROZEN", 6), 0);
	ASSERT_OK(kill(victim, SIGKILL));
	r = syscall(SYS_process_mrelease, pidfd, 0);
	if (r && errno == ENOSYS)
		NEED("oom_reap", "kernel without process_mrelease (5.15)");
	ASSERT_EQ(r, 0);
	/* Reaped, not exited: still frozen. */
	ASSERT_EQ(waitpid(victim, &i, WNOHANG), 0);
	reap_check(sh);
	ASSERT_EQ(sh->changed, 1);
	ASSERT_EQ(sh->pending, 1);
	ASSERT_EQ(sh->total, 1);
	ASSERT_EQ(write_str("/tmp/mw-freezer/mw/freezer.state", "THAWED"), 0);
	ASSERT_EQ(waitpid(victim, &i, 0), victim);
	ASSERT_TRUE(WIFSIGNALED(i) && WTERMSIG(i) == SIGKILL);
	close(pidfd);
	freezer_cleanup();
}

/* ---- boundaries and overlap ------------------------------------------- */

TEST(unmapping_neighbour_pages_leaves_region)
{
	char *p = map_anon(4);
	params_t a;

	setup(8);
	a = watch(p + PAGE, 2 * PAGE, 1);
	ASSERT_OK(munmap(p, PAGE));
	ASSERT_OK(munmap(p + 3 * PAGE, PAGE));
	ASSERT_OK(madvise(p + PAGE, 0, MADV_DONTNEED));
	ASSERT_FALSE(changed(a));
	expect_no_event();
	ASSERT_OK(munmap(p + 2 * PAGE, PAGE));
	expect_retired(a, p + PAGE, 2 * PAGE, 1);
}

TEST(unaligned_region_boundaries)
{
	char *p = map_anon(6);
	params_t straddle, inner, short_;

	setup(8);
	/* The last byte of page 0 and the first of page 1. */
	straddle = watch(p + PAGE - 1, 2, 1);
	/* Ten bytes inside page 3. */
	inner = watch(p + 3 * PAGE + 1, 10, 2);
	/* Page 5 but its last byte: ends before page 6. */
	short_ = watch(p + 5 * PAGE, PAGE - 1, 3);
	ASSERT_OK(munmap(p + 2 * PAGE, PAGE));
	ASSERT_OK(munmap(p + 4 * PAGE, PAGE));
	ASSERT_FALSE(changed(straddle));
	ASSERT_FALSE(changed(inner));
	ASSERT_FALSE(changed(short_));
	expect_no_event();
	ASSERT_OK(munmap(p + PAGE, PAGE));
	expect_retired(straddle, p + PAGE - 1, 2, 1);
	ASSERT_OK(madvise(p + 3 * PAGE, PAGE, MADV_DONTNEED));
	expect_retired(inner, p + 3 * PAGE + 1, 10, 2);
	ASSERT_OK(munmap(p + 5 * PAGE, PAGE));
	expect_retired(short_, p + 5 * PAGE, PAGE - 1, 3);
}

TEST(overlapping_nested_adjacent_regions)
{
	char *p = map_anon(4);
	params_t same[3], nested, left, right, last;
	struct kdreg2_event ev[16];
	int n, seen[8] = { 0 };

	setup(16);
	for (int i = 0; i < 3; i++)
		same[i] = watch(p, 4 * PAGE, 1 + i);	/* one range, 3 cookies */
	nested = watch(p + PAGE, PAGE, 4);
	left = watch(p, PAGE, 5);			/* adjacent to nested */
	right = watch(p + 2 * PAGE, PAGE, 6);		/* adjacent to nested */
	last = watch(p + 3 * PAGE, PAGE, 7);
	ASSERT_EQ(active(), 7);

	ASSERT_OK(munmap(p + PAGE, PAGE));
	for (int i = 0; i < 3; i++)
		ASSERT_TRUE(changed(same[i]));
	ASSERT_TRUE(changed(nested));
	ASSERT_FALSE(changed(left));
	ASSERT_FALSE(changed(right));
	ASSERT_FALSE(changed(last));
	ASSERT_EQ(pending(), 4);
	n = read(fd, ev, sizeof(ev));
	ASSERT_EQ(n, (int)(4 * EV_SIZE));
	for (int i = 0; i < 4; i++) {
		uint64_t c = ev[i].u.mapping_change.cookie;

		ASSERT_TRUE(c >= 1 && c <= 4);
		ASSERT_EQ(seen[c], 0);
		seen[c] = 1;
		ASSERT_EQ((uintptr_t)ev[i].u.mapping_change.addr,
			  (uintptr_t)(c == 4 ? p + PAGE : p));
		ASSERT_EQ(ev[i].u.mapping_change.len, c == 4 ? PAGE : 4 * PAGE);
	}
	/* The retired big regions are not reported again. */
	ASSERT_OK(munmap(p + 2 * PAGE, PAGE));
	ASSERT_FALSE(changed(left));
	ASSERT_FALSE(changed(last));
	expect_retired(right, p + 2 * PAGE, PAGE, 6);
	ASSERT_EQ(total(), 5);
	ASSERT_EQ(active(), 2);
}

TEST(event_carries_region_fields)
{
	char *p = map_anon(3);
	const uint64_t cookie = 0xdeadbeefcafef00dULL;
	params_t a;

	setup(8);
	a = watch(p + 123, 5000, cookie);
	ASSERT_OK(madvise(p + PAGE, PAGE, MADV_DONTNEED));
	expect_retired(a, p + 123, 5000, cookie);
}

/* ---- no window: threads ----------------------------------------------- */

#define NW_UNMAPPERS 2
#define NW_CHURNERS 2
#define NW_ROUNDS 4000
#define NW_PAGES 8
#define NW_FOREIGN 4

struct unmapper {
	pthread_mutex_t lock;
	char *area;		/* published while open */
	bool open;
	unsigned int round;
	int nforeign;
	params_t foreign[NW_FOREIGN];
	uint64_t cookie_base;
};

static struct unmapper um[NW_UNMAPPERS];
static atomic_bool nw_stop;
static atomic_ulong nw_violations, nw_rounds, nw_churn, nw_foreign, nw_events;

#define NW_VIOLATION(...)						\
	do {								\
		atomic_fetch_add(&nw_violations, 1);			\
		tap_diag("violation: " __VA_ARGS__);			\
	} while (0)

static void *nw_unmapper(void *arg)
{
	struct unmapper *u = arg;
	uint64_t cookie = u->cookie_base;

	for (unsigned int r = 0; r < NW_ROUNDS; r++) {
		char *p = mmap(NULL, NW_PAGES * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		params_t own[NW_PAGES + 1];
		int nf;

		if (p == MAP_FAILED) {
			NW_VIOLATION("mmap failed");
			break;
		}
		for (int i = 0; i < NW_PAGES; i++) {
			p[i * PAGE] = (char)r;
			own[i] = watch(p + i * PAGE, PAGE, cookie++);
		}
		own[NW_PAGES] = watch(p, NW_PAGES * PAGE, cookie++);
		pthread_mutex_lock(&u->lock);
		u->area = p;
		u->round = r;
		u->nforeign = 0;
		u->open = true;
		pthread_mutex_unlock(&u->lock);
		sched_yield();
		/* Close: what is registered now was monitored before munmap. */
		pthread_mutex_lock(&u->lock);
		u->open = false;
		nf = u->nforeign;
		pthread_mutex_unlock(&u->lock);

		if (r % 4 == 3) {
			/* Every fourth round drops the pages instead. */
			if (madvise(p, NW_PAGES * PAGE, MADV_DONTNEED))
				NW_VIOLATION("madvise failed");
		} else if (munmap(p, NW_PAGES * PAGE)) {
			NW_VIOLATION("munmap failed");
		}
		for (int i = 0; i <= NW_PAGES; i++)
			if (!kdreg2_mapping_changed(st, &own[i]))
				NW_VIOLATION("round %u: own region %d unchanged after return",
					     r, i);
		for (int i = 0; i < nf; i++)
			if (!kdreg2_mapping_changed(st, &u->foreign[i]))
				NW_VIOLATION("round %u: foreign region %d unchanged after return",
					     r, i);
		if (r % 4 == 3)
			munmap(p, NW_PAGES * PAGE);
		atomic_fetch_add(&nw_rounds, 1);
	}
	return NULL;
}

/* Monitors pages of the unmappers' areas, and churns a private one. */
static void *nw_churner(void *arg)
{
	uint64_t cookie = (uint64_t)(uintptr_t)arg << 40;
	char *mine = map_anon(4);
	unsigned int k = 0;

	while (!atomic_load(&nw_stop)) {
		struct unmapper *u = &um[k++ % NW_UNMAPPERS];
		struct kdreg2_ioctl_monitor m = { .length = PAGE };
		params_t own;
		char *area;

		/* Private churn: never unmapped, so never changed. */
		own = watch(mine + (k % 4) * PAGE, PAGE, cookie++);
		if (kdreg2_mapping_changed(st, &own))
			NW_VIOLATION("private region changed");
		struct kdreg2_ioctl_unmonitor un = { .cookie = cookie - 1,
						     .monitoring_params = own };
		if (ioctl(fd, KDREG2_IOCTL_UNMONITOR, &un))
			NW_VIOLATION("unmonitor of a private region: errno %d",
				     errno);
		atomic_fetch_add(&nw_churn, 1);

		/* A foreign region on an unmapper's current area. */
		pthread_mutex_lock(&u->lock);
		area = u->open ? u->area : NULL;
		pthread_mutex_unlock(&u->lock);
		if (!area)
			continue;
		m.addr = area + (k % NW_PAGES) * PAGE;
		m.cookie = cookie++;
		if (ioctl(fd, KDREG2_IOCTL_MONITOR, &m)) {
			NW_VIOLATION("foreign monitor: errno %d", errno);
			continue;
		}
		pthread_mutex_lock(&u->lock);
		if (u->open && u->area == area && u->nforeign < NW_FOREIGN) {
			u->foreign[u->nforeign++] = m.monitoring_params;
			atomic_fetch_add(&nw_foreign, 1);
			area = NULL;
		}
		pthread_mutex_unlock(&u->lock);
		if (area) {
			/* Too late: may have raced with the unmap.  Drop it. */
			struct kdreg2_ioctl_unmonitor x = {
				.cookie = m.cookie,
				.monitoring_params = m.monitoring_params };

			if (ioctl(fd, KDREG2_IOCTL_UNMONITOR, &x) &&
			    errno != ESRCH)
				NW_VIOLATION("late unmonitor: errno %d", errno);
		}
	}
	return NULL;
}

static void *nw_reader(void *arg)
{
	struct kdreg2_event ev[64];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	(void)arg;
	while (!atomic_load(&nw_stop) || pending()) {
		ssize_t n = read(fd, ev, sizeof(ev));

		if (n > 0) {
			atomic_fetch_add(&nw_events, n / EV_SIZE);
			for (ssize_t i = 0; i < n / (ssize_t)EV_SIZE; i++)
				if (ev[i].u.mapping_change.cookie ==
				    KDREG2_BAD_COOKIE_VALUE)
					NW_VIOLATION("unexpected overflow record");
		} else if (errno == EAGAIN) {
			poll(&pfd, 1, 20);
		} else {
			NW_VIOLATION("read: errno %d", errno);
			break;
		}
	}
	return NULL;
}

TEST(no_window_under_threads)
{
	pthread_t tu[NW_UNMAPPERS], tc[NW_CHURNERS], tr;
	struct timespec t0, t1;

	alarm(900);	/* a hang guard for a slow, shared host; not a timing check */
	setup(4096);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < NW_UNMAPPERS; i++) {
		pthread_mutex_init(&um[i].lock, NULL);
		um[i].cookie_base = (uint64_t)(i + 1) << 48;
	}
	ASSERT_EQ(pthread_create(&tr, NULL, nw_reader, NULL), 0);
	for (int i = 0; i < NW_CHURNERS; i++)
		ASSERT_EQ(pthread_create(&tc[i], NULL, nw_churner,
					 (void *)(uintptr_t)(i + 1)), 0);
	for (int i = 0; i < NW_UNMAPPERS; i++)
		ASSERT_EQ(pthread_create(&tu[i], NULL, nw_unmapper, &um[i]), 0);
	for (int i = 0; i < NW_UNMAPPERS; i++)
		pthread_join(tu[i], NULL);
	atomic_store(&nw_stop, true);
	for (int i = 0; i < NW_CHURNERS; i++)
		pthread_join(tc[i], NULL);
	pthread_join(tr, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	tap_diag("no-window: %lu unmap rounds in %.1f s (%d threads unmapping, "
		 "%d monitoring), %lu foreign regions checked, %lu monitor/"
		 "unmonitor pairs, %lu events, %lu violations",
		 atomic_load(&nw_rounds), t1.tv_sec - t0.tv_sec +
		 (t1.tv_nsec - t0.tv_nsec) / 1e9, NW_UNMAPPERS, NW_CHURNERS,
		 atomic_load(&nw_foreign), atomic_load(&nw_churn),
		 atomic_load(&nw_events), atomic_load(&nw_violations));
	unsigned long violations = atomic_load(&nw_violations);
	unsigned long rounds = atomic_load(&nw_rounds);
	unsigned long events = atomic_load(&nw_events);

	ASSERT_EQ(violations, 0);
	ASSERT_EQ(rounds, NW_UNMAPPERS * NW_ROUNDS);
	/* Every retired region was reported, once. */
	ASSERT_EQ(events, total());
	ASSERT_GE(total(), NW_UNMAPPERS * NW_ROUNDS * (NW_PAGES + 1));
	ASSERT_EQ(overflows(), 0);
}

/*
 * A region monitored while a change of its range is already in flight (the
 * kernel announced it but has not reached that page yet) must be caught
 * too: if the page still held its old contents after MONITOR returned, the
 * change that follows is a change of the monitored translation.
 *
 * The contents are read through /proc/self/mem, i.e. through the page
 * tables as a registration's pinning does, not through a TLB entry the
 * change has not flushed yet.
 *
 * To land inside that window on purpose, both threads share one CPU, the
 * changing one at nice 19, the monitoring one at nice -20 waking every
 * 100 us: its wakeup preempts the change at the next cond_resched()
 * between page tables.
 */
#define MD_PAGES 16384
#define MD_ROUNDS 12

static char *md_area;
static atomic_int md_phase;	/* 0 idle, 1 changing, 2 returned */

static void *md_changer(void *arg)
{
	(void)arg;
	ASSERT_OK(setpriority(PRIO_PROCESS, 0, 19));	/* this thread */
	for (int r = 0; r < MD_ROUNDS; r++) {
		while (atomic_load(&md_phase) != 0)
			usleep(1000);
		for (size_t i = 0; i < MD_PAGES; i++)
			md_area[i * PAGE] = (char)(r + 1);
		atomic_store(&md_phase, 1);
		if (r % 2)
			ASSERT_OK(madvise(md_area, MD_PAGES * PAGE,
					  MADV_DONTNEED));
		else
			ASSERT_TRUE(mmap(md_area, MD_PAGES * PAGE,
					 PROT_READ | PROT_WRITE, MAP_PRIVATE |
					 MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
				    md_area);
		atomic_store(&md_phase, 2);
	}
	return NULL;
}

TEST(monitor_during_invalidation_is_caught)
{
	static params_t armed[MD_PAGES];
	uint64_t cookie = 1, checked = 0, bad = 0;
	int mem = open("/proc/self/mem", O_RDONLY);
	cpu_set_t one;
	pthread_t t;

	ASSERT_TRUE(mem >= 0);
	alarm(600);	/* a hang guard, not a timing check */

	CPU_ZERO(&one);
	CPU_SET(0, &one);
	ASSERT_OK(sched_setaffinity(0, sizeof(one), &one));
	setup(MD_PAGES + 8);
	md_area = map_anon(MD_PAGES);
	ASSERT_EQ(pthread_create(&t, NULL, md_changer, NULL), 0);
	ASSERT_OK(setpriority(PRIO_PROCESS, 0, -20));	/* this thread */
	for (int r = 0; r < MD_ROUNDS; r++) {
		long i = MD_PAGES - 1;
		int n = 0;

		while (atomic_load(&md_phase) == 0)
			usleep(1000);
		/* The change runs from the start: monitor from the end. */
		while (i >= 0 && atomic_load(&md_phase) == 1) {
			for (int k = 0; k < 8 && i >= 0; k++, i--) {
				char *pg = md_area + i * PAGE, c = 0;
				params_t p = watch(pg, PAGE, cookie++);

				/* Old contents after MONITOR: change to come. */
				ASSERT_EQ(pread(mem, &c, 1, (uintptr_t)pg), 1);
				if (c == (char)(r + 1))
					armed[n++] = p;
			}
			usleep(100);
		}
		while (atomic_load(&md_phase) != 2)
			usleep(1000);
		for (int k = 0; k < n; k++) {
			checked++;
			if (!changed(armed[k]) && bad++ < 5)
				tap_diag("round %d: region monitored before the "
					 "change reached it was not reported", r);
		}
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_UNMONITOR_ALL));
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
		atomic_store(&md_phase, 0);
	}
	pthread_join(t, NULL);
	tap_diag("%lu regions monitored before the change reached their page, "
		 "%lu not reported", checked, bad);
	ASSERT_EQ(bad, 0);
}

/* ---- overflow --------------------------------------------------------- */

/*
 * Run fn with max_pending_events at cap, in a child, so that the parameter
 * is restored whatever fn does.
 */
static void with_event_cap(const char *cap, void (*fn)(void))
{
	char saved[32] = "";
	int pfd = open(PARAM_MAX_PENDING, O_RDWR);
	pid_t pid;
	int rc;

	ASSERT_TRUE(pfd >= 0);
	ASSERT_GT(read(pfd, saved, sizeof(saved) - 1), 0);
	ASSERT_OK(pwrite(pfd, cap, strlen(cap), 0));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		fn();
		fflush(stdout);
		_exit(tap_case_failed);
	}
	rc = wait_child(pid);
	ASSERT_OK(pwrite(pfd, saved, strlen(saved), 0));
	ASSERT_EQ(rc, 0);
}

static void overflow_body(void)
{
	char *p = map_anon(24);
	params_t a[24];
	struct kdreg2_event ev[16];
	struct pollfd pfd = { .fd = 0, .events = POLLIN };
	uint64_t o0;

	setup(64);
	pfd.fd = fd;
	for (int i = 0; i < 20; i++)
		a[i] = watch(p + i * PAGE, PAGE, i);
	/* Regions 0..19 retire; only 4 keep their own record. */
	ASSERT_OK(munmap(p, 20 * PAGE));
	for (int i = 0; i < 20; i++)
		ASSERT_TRUE(changed(a[i]));
	ASSERT_EQ(active(), 0);
	ASSERT_EQ(total(), 20);
	ASSERT_EQ(overflows(), 16);
	ASSERT_EQ(pending(), 4 + 1);
	ASSERT_EQ(poll(&pfd, 1, 0), 1);

	/* Part of the queue, then the rest with the covering record. */
	ASSERT_EQ(read(fd, ev, 2 * EV_SIZE), (ssize_t)(2 * EV_SIZE));
	ASSERT_EQ(ev[0].u.mapping_change.cookie, 0);
	ASSERT_EQ(ev[1].u.mapping_change.cookie, 1);
	ASSERT_EQ(pending(), 3);
	ASSERT_EQ(read(fd, ev, sizeof(ev)), (ssize_t)(3 * EV_SIZE));
	ASSERT_EQ(ev[0].u.mapping_change.cookie, 2);
	ASSERT_EQ(ev[1].u.mapping_change.cookie, 3);
	ASSERT_EQ(ev[2].type, KDREG2_EVENT_MAPPING_CHANGE);
	ASSERT_EQ(ev[2].u.mapping_change.cookie, KDREG2_BAD_COOKIE_VALUE);
	ASSERT_EQ((uintptr_t)ev[2].u.mapping_change.addr,
		  (uintptr_t)p + 4 * PAGE);
	ASSERT_EQ(ev[2].u.mapping_change.len, 16 * PAGE);
	ASSERT_EQ(pending(), 0);
	ASSERT_EQ(poll(&pfd, 1, 0), 0);
	expect_no_event();

	/* Below the cap again: individual records. */
	a[20] = watch(p + 20 * PAGE, PAGE, 20);
	ASSERT_OK(munmap(p + 20 * PAGE, PAGE));
	expect_retired(a[20], p + 20 * PAGE, PAGE, 20);
	ASSERT_EQ(overflows(), 16);

	/* Overflow again; FLUSH clears it without reopening. */
	p = map_anon(8);
	for (int i = 0; i < 8; i++)
		a[i] = watch(p + i * PAGE, PAGE, 100 + i);
	o0 = overflows();
	ASSERT_OK(munmap(p, 8 * PAGE));
	for (int i = 0; i < 8; i++)
		ASSERT_TRUE(changed(a[i]));
	ASSERT_EQ(overflows(), o0 + 4);
	ASSERT_EQ(pending(), 5);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
	ASSERT_EQ(pending(), 0);
	ASSERT_EQ(poll(&pfd, 1, 0), 0);
	expect_no_event();
	ASSERT_EQ(overflows(), o0 + 4);	/* the count stays */
	p = map_anon(1);
	a[0] = watch(p, PAGE, 200);
	ASSERT_OK(munmap(p, PAGE));
	expect_retired(a[0], p, PAGE, 200);
}

TEST(overflow_marks_every_region_and_flush_recovers)
{
	with_event_cap("4\n", overflow_body);
}

static void overflow_merge_body(void)
{
	char *p = map_anon(12);
	params_t a[12];
	struct kdreg2_event ev[8];

	setup(64);
	for (int i = 0; i < 12; i++)
		a[i] = watch(p + i * PAGE, PAGE, i);
	ASSERT_OK(munmap(p + 8 * PAGE, 2 * PAGE));	/* 8, 9 queued */
	ASSERT_OK(munmap(p + 11 * PAGE, PAGE));	/* 11 folded */
	ASSERT_OK(munmap(p + 2 * PAGE, PAGE));	/* 2 folded */
	for (int i = 0; i < 12; i++)
		ASSERT_EQ(changed(a[i]), i == 2 || (i >= 8 && i != 10));
	ASSERT_EQ(overflows(), 2);
	ASSERT_EQ(read(fd, ev, sizeof(ev)), (ssize_t)(3 * EV_SIZE));
	ASSERT_EQ(ev[0].u.mapping_change.cookie, 8);
	ASSERT_EQ(ev[1].u.mapping_change.cookie, 9);
	/* One record covers both folded regions (and what lies between). */
	ASSERT_EQ(ev[2].u.mapping_change.cookie, KDREG2_BAD_COOKIE_VALUE);
	ASSERT_EQ((uintptr_t)ev[2].u.mapping_change.addr,
		  (uintptr_t)p + 2 * PAGE);
	ASSERT_EQ(ev[2].u.mapping_change.len, 10 * PAGE);
	expect_no_event();
}

TEST(overflow_covering_record_spans_folded_regions)
{
	with_event_cap("2\n", overflow_merge_body);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
