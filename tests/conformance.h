/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The conformance matrix: one set of mapping-change cases, written once, run
 * through libmapwatch's registration cache against any backend.
 *
 * Each case maps memory, registers it through the cache (a fake reg that
 * pins nothing, so every translation change is real), holds the entry,
 * changes the mapping the way an application or another process would, and
 * looks at the entry the moment the call returns:
 *   sync    mapwatch_cache_entry_changed() already true
 *   late    true only after waiting (up to 1 s)
 *   MISSED  never true
 *   quiet   a case that changes no translation (mprotect, fork without a
 *           write) left the entry alone
 *   FALSE   such a case invalidated the entry
 * then checks that the event reached the cache (the next get evicts it).
 *
 * Each backend claims what it handles.  A program runs a case per backend as
 * one TAP case that fails when a claimed case is missed (or seen late by a
 * backend that claims to be synchronous, or has no event), or when a claimed
 * quiet case is invalidated; an unclaimed case passes whatever happens and
 * says what it saw.  A quiet case a backend reports on purpose (the kernel
 * backend's mprotect where the module does not skip it, 5.10:
 * tests/skipped_events.h) is claimed CF_REPORTS: it must be invalidated
 * when the call returns, with its event.  cf_table() prints the matrix as
 * "# " lines.
 *
 *   #include "conformance.h"
 *   #define K(id, ...) TEST(kernel_##id) { cf_run_case(MAPWATCH_BACKEND_KERNEL, CF_##id); }
 *   CF_CASES(K)
 *   int main(int argc, char **argv) { return cf_main(argc, argv, backends, n, title); }
 */
#ifndef MAPWATCH_TEST_CONFORMANCE_H
#define MAPWATCH_TEST_CONFORMANCE_H

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "host/libtest.h"
#include "pagemap.h"
#include "skipped_events.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE 101
#endif
#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif

/* What a backend claims for a case. */
enum cf_claim {
	CF_NONE,	/* not handled: any outcome is reported, none fails */
	CF_SEEN,	/* seen, possibly a moment after the call returns */
	CF_SYNC,	/* seen before the call returns */
	CF_REPORTS,	/* a quiet case reported on purpose, with its event */
};

/*
 * X(id, changes, kernel claim, userfaultfd claim, what)
 * changes: the translation of the watched range really changes (0: a case
 * that must not invalidate).  The cache treats both backends as safe for
 * what they claim, so both claim CF_SYNC: "late" fails (the userfaultfd
 * cache waits out its reader, see lib/backend_uffd.c).
 */
#define CF_CASES(X)							\
	X(munmap_whole, 1, CF_SYNC, CF_SYNC, "munmap of the whole range")	\
	X(munmap_middle, 1, CF_SYNC, CF_SYNC, "munmap of a page in the middle") \
	X(munmap_edge, 1, CF_SYNC, CF_SYNC, "munmap of the last page and beyond") \
	X(mremap_move, 1, CF_SYNC, CF_SYNC, "mremap MAYMOVE|FIXED elsewhere") \
	X(mremap_shrink, 1, CF_SYNC, CF_SYNC, "mremap to half the size")	\
	X(map_fixed_over, 1, CF_SYNC, CF_SYNC, "mmap MAP_FIXED over one page") \
	X(madv_dontneed, 1, CF_SYNC, CF_SYNC, "madvise MADV_DONTNEED of a page") \
	X(madv_free, 1, CF_SYNC, CF_SYNC, "madvise MADV_FREE of dirty pages") \
	X(madv_remove, 1, CF_SYNC, CF_SYNC, "madvise MADV_REMOVE, shared anonymous") \
	X(brk_shrink, 1, CF_SYNC, CF_SYNC, "brk shrinks over the range")	\
	X(shmdt, 1, CF_SYNC, CF_NONE, "shmdt of a SysV segment")		\
	X(fork_cow_write, 1, CF_SYNC, CF_NONE, "fork, then the parent writes (COW)") \
	X(migrate_other_process, 1, CF_SYNC, CF_NONE, "another process moves the pages (move_pages)") \
	X(migrate_soft_offline, 1, CF_SYNC, CF_NONE, "MADV_SOFT_OFFLINE migrates a page") \
	X(mprotect, 0, CF_SYNC, CF_SYNC, "mprotect read-only and back: must not invalidate") \
	X(fork_no_write, 0, CF_SYNC, CF_SYNC, "fork (write-protects): must not invalidate")

enum cf_id {
#define CF_ENUM(id, ...) CF_##id,
	CF_CASES(CF_ENUM)
	CF_NCASES
};

struct cf_info {
	const char *name, *what;
	bool changes;
	enum cf_claim kernel, uffd;
};

static const struct cf_info cf_info[CF_NCASES] = {
#define CF_INFO(id, ch, k, u, w) [CF_##id] = { #id, w, ch, k, u },
	CF_CASES(CF_INFO)
};

/*
 * userfaultfd write-protects shared memory only from Linux 5.19 on (the
 * kernel then offers UFFD_FEATURE_WP_HUGETLBFS_SHMEM): on an older kernel
 * the backend cannot watch it and says so, and the shared-memory cases claim
 * nothing for it there.
 */
static inline bool cf_uffd_wp_shmem(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	bool ok;

	if (fd < 0)
		fd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd < 0)
		return false;
	ok = !ioctl(fd, UFFDIO_API, &api) &&
	     (api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
	close(fd);
	return ok;
}

/*
 * The module reports mprotect's MMU_NOTIFY_PROTECTION_VMA on this kernel
 * (not in /sys/kernel/mapwatch/skipped_events: 5.10, where NUMA balancing
 * moves a THP under that event alone).
 */
static inline bool cf_kernel_reports_mprotect(void)
{
	static int reports = -1;
	char buf[128] = "";

	if (reports < 0)
		reports = mw_skipped_events(buf, sizeof(buf)) &&
			  !mw_in_list(buf, "protection_vma");
	return reports;
}

static inline enum cf_claim cf_claim_of(enum mapwatch_backend b, enum cf_id id)
{
	switch (b) {
	case MAPWATCH_BACKEND_KERNEL:
		if (id == CF_mprotect && cf_kernel_reports_mprotect())
			return CF_REPORTS;
		return cf_info[id].kernel;
	case MAPWATCH_BACKEND_USERFAULTFD:
		if (id == CF_madv_remove && !cf_uffd_wp_shmem())
			return CF_NONE;
		return cf_info[id].uffd;
	default:
		return CF_NONE;
	}
}

/* Outcomes, kept in memory shared by every case's process. */
enum cf_outcome { CF_NOT_RUN, CF_O_SYNC, CF_O_LATE, CF_O_MISSED, CF_O_QUIET,
		  CF_O_FALSE, CF_O_NO_WATCH, CF_O_NA, CF_O_BROKEN };

static const char *const cf_outcome_name[] = {
	[CF_NOT_RUN] = "-", [CF_O_SYNC] = "sync", [CF_O_LATE] = "late",
	[CF_O_MISSED] = "MISSED", [CF_O_QUIET] = "quiet", [CF_O_FALSE] = "FALSE",
	[CF_O_NO_WATCH] = "no-watch", [CF_O_NA] = "n/a", [CF_O_BROKEN] = "error",
};

#define CF_MAX_BACKENDS 4

struct cf_shared {
	enum cf_outcome out[CF_MAX_BACKENDS][CF_NCASES];
	bool event[CF_MAX_BACKENDS][CF_NCASES];
	bool failed[CF_MAX_BACKENDS][CF_NCASES];
};

static struct cf_shared *cf_res;
static bool cf_allow_destructive;

/* One case being run. */
struct cf_run {
	enum mapwatch_backend backend;
	struct mapwatch *mw;
	struct mapwatch_cache *c;
	struct fake f;
	char *probe;			/* always mapped: a get on it reads events */
	struct mapwatch_cache_entry *e;
	int watch_err;
	bool observed, sync;
	char na[200];
	/* A quiet case's memory and the frames under it when watched. */
	char *quiet;
	size_t quiet_pages;
	uint64_t pfn[8];
};

/*
 * The page frame under addr (/proc/self/pagemap; 0 when absent or when the
 * caller may not see frames).  A quiet case can still change a translation
 * for real: on 5.10 a write after mprotect copies the page whenever a
 * per-CPU LRU batch still holds a reference to it (do_wp_page reuses only
 * a page whose count is 1), and compaction moves pages at any time.  Such
 * a run tells nothing about false invalidations and is run again; a
 * backend that claims to see the kernel's copies must have seen it.
 */
static uint64_t cf_frame(const void *addr)
{
	static int fd = -1;

	if (fd < 0)
		fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	return fd < 0 ? 0 : pagemap_frame(fd, addr);
}

static void cf_note_frames(struct cf_run *r, char *p, size_t pages)
{
	ASSERT_TRUE(pages <= sizeof(r->pfn) / sizeof(r->pfn[0]));
	/* mlock drains the per-CPU LRU batches (lru_add_drain_all), so
	 * the kernel has no reason left to copy these pages. */
	if (!mlock(p, pages * PAGE))
		ASSERT_OK(munlock(p, pages * PAGE));
	r->quiet = p;
	r->quiet_pages = pages;
	for (size_t i = 0; i < pages; i++)
		r->pfn[i] = cf_frame(p + i * PAGE);
}

static bool cf_frames_moved(const struct cf_run *r)
{
	for (size_t i = 0; i < r->quiet_pages; i++)
		if (cf_frame(r->quiet + i * PAGE) != r->pfn[i])
			return true;
	return false;
}

static char *cf_map(size_t pages)
{
	char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 0x5a, pages * PAGE);
	return p;
}

/* Register [p, p + len) through the cache and hold it.  False when the
 * backend cannot watch that memory. */
static bool cf_watch(struct cf_run *r, void *p, size_t len)
{
	r->e = mapwatch_cache_get(r->c, p, len, 0);
	if (!r->e) {
		r->watch_err = errno;
		return false;
	}
	ASSERT_FALSE(mapwatch_cache_entry_changed(r->e));
	return true;
}

/* Right after the mapping-changing call returned. */
static void cf_after(struct cf_run *r)
{
	r->sync = mapwatch_cache_entry_changed(r->e);
	r->observed = true;
}

#define CF_NA(r, ...)							\
	do {								\
		snprintf((r)->na, sizeof((r)->na), __VA_ARGS__);	\
		return;							\
	} while (0)
#define CF_WATCH(r, p, len)						\
	do {								\
		if (!cf_watch(r, p, len))				\
			return;						\
	} while (0)
/* The operation: must succeed; observed at once. */
#define CF_DO(r, call)							\
	do {								\
		ASSERT_OK(call);					\
		cf_after(r);						\
	} while (0)

/* --- the cases ------------------------------------------------------------ */

static void cf_munmap_whole(struct cf_run *r)
{
	char *p = cf_map(4);

	CF_WATCH(r, p, 4 * PAGE);
	CF_DO(r, munmap(p, 4 * PAGE));
}

static void cf_munmap_middle(struct cf_run *r)
{
	char *p = cf_map(5);

	CF_WATCH(r, p, 5 * PAGE);
	CF_DO(r, munmap(p + 2 * PAGE, PAGE));
}

static void cf_munmap_edge(struct cf_run *r)
{
	char *p = cf_map(5);

	CF_WATCH(r, p, 3 * PAGE);
	CF_DO(r, munmap(p + 2 * PAGE, 3 * PAGE));
}

static long cf_mremap(void *old, size_t old_len, size_t new_len, int flags,
		      void *new_addr)
{
	void *q = mremap(old, old_len, new_len, flags, new_addr);

	return q == MAP_FAILED ? -1 : 0;
}

static void cf_mremap_move(struct cf_run *r)
{
	char *p = cf_map(4), *q = cf_map(4);

	CF_WATCH(r, p, 4 * PAGE);
	CF_DO(r, cf_mremap(p, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, q));
}

static void cf_mremap_shrink(struct cf_run *r)
{
	char *p = cf_map(4);

	CF_WATCH(r, p, 4 * PAGE);
	CF_DO(r, cf_mremap(p, 4 * PAGE, 2 * PAGE, 0, NULL));
}

static long cf_mmap_fixed(void *p, size_t len)
{
	void *q = mmap(p, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	return q == p ? 0 : -1;
}

static void cf_map_fixed_over(struct cf_run *r)
{
	char *p = cf_map(4);

	CF_WATCH(r, p, 4 * PAGE);
	CF_DO(r, cf_mmap_fixed(p + PAGE, PAGE));
}

static void cf_madv_dontneed(struct cf_run *r)
{
	char *p = cf_map(4);

	CF_WATCH(r, p, 4 * PAGE);
	CF_DO(r, madvise(p + PAGE, PAGE, MADV_DONTNEED));
}

static void cf_madv_free(struct cf_run *r)
{
	char *p = cf_map(4);

	CF_WATCH(r, p, 4 * PAGE);
	CF_DO(r, madvise(p, 4 * PAGE, MADV_FREE));
}

static void cf_madv_remove(struct cf_run *r)
{
	char *p = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	memset(p, 0x5a, 4 * PAGE);
	CF_WATCH(r, p, 4 * PAGE);
	CF_DO(r, madvise(p + PAGE, PAGE, MADV_REMOVE));
}

static void cf_brk_shrink(struct cf_run *r)
{
	char *cur, *p;
	void *warm = malloc(1 << 16);

	/* malloc's arena gets what it needs first: nothing below may move
	 * the break while the case owns its end. */
	free(warm);
	cur = sbrk(0);
	ASSERT_TRUE(cur != (void *)-1);
	p = (char *)(((uintptr_t)cur + PAGE - 1) & ~(PAGE - 1));
	if (sbrk((p - cur) + 4 * PAGE) == (void *)-1)
		CF_NA(r, "sbrk failed: %s", strerror(errno));
	memset(p, 0x5a, 4 * PAGE);
	CF_WATCH(r, p, 4 * PAGE);
	CF_DO(r, brk(p + 2 * PAGE));
}

static void cf_shmdt(struct cf_run *r)
{
	int id = shmget(IPC_PRIVATE, 4 * PAGE, IPC_CREAT | 0600);
	char *p;

	if (id < 0)
		CF_NA(r, "shmget: %s", strerror(errno));
	p = shmat(id, NULL, 0);
	shmctl(id, IPC_RMID, NULL);	/* gone with the last detach */
	ASSERT_TRUE(p != (void *)-1);
	memset(p, 0x5a, 4 * PAGE);
	CF_WATCH(r, p, 4 * PAGE);
	CF_DO(r, shmdt(p));
}

static void cf_fork_cow_write(struct cf_run *r)
{
	char *p = cf_map(4), c = 0;
	int fds[2];
	pid_t pid;

	CF_WATCH(r, p, 4 * PAGE);
	ASSERT_OK(pipe(fds));
	fflush(stdout);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {		/* keeps the pages shared until told */
		close(fds[1]);
		if (read(fds[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(fds[0]);
	((volatile char *)p)[PAGE] = 1;		/* the parent's copy-on-write */
	cf_after(r);
	ASSERT_EQ(write(fds[1], &c, 1), 1);
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	close(fds[1]);
}

static void cf_fork_no_write(struct cf_run *r)
{
	char *p = cf_map(4);
	pid_t pid;

	cf_note_frames(r, p, 4);
	CF_WATCH(r, p, 4 * PAGE);
	fflush(stdout);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0)
		_exit(0);
	cf_after(r);
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	/* Reads leave it alone too. */
	ASSERT_EQ(((volatile char *)p)[PAGE], 0x5a);
	r->sync = r->sync || mapwatch_cache_entry_changed(r->e);
}

static void cf_mprotect(struct cf_run *r)
{
	char *p = cf_map(4);

	cf_note_frames(r, p, 4);
	CF_WATCH(r, p, 4 * PAGE);
	ASSERT_OK(mprotect(p, 4 * PAGE, PROT_READ));
	ASSERT_OK(mprotect(p, 4 * PAGE, PROT_NONE));
	CF_DO(r, mprotect(p, 4 * PAGE, PROT_READ | PROT_WRITE));
	p[0] = 1;	/* writable again: same page, no fault copies it */
	r->sync = r->sync || mapwatch_cache_entry_changed(r->e);
}

/* Which node holds p (move_pages query), or -1. */
static int cf_node_of(pid_t pid, void *p)
{
	void *pages[1] = { p };
	int status[1] = { -1 };

	if (syscall(SYS_move_pages, pid, 1, pages, NULL, status, 0))
		return -1;
	return status[0];
}

static void cf_migrate_other_process(struct cf_run *r)
{
	struct stat st;
	int node, target, status, to[2], from[2];
	pid_t me = getpid(), pid;
	char *p;

	if (stat("/sys/devices/system/node/node1", &st)) {
		/* vm/run --numa promised two nodes: a set-up failure. */
		ASSERT_TRUE(!tap_guest_has("numa2"));
		CF_NA(r, "one NUMA node (runs in a --numa guest)");
	}
	/* The helper is forked before the memory exists, so the pages are
	 * the parent's alone (move_pages without MOVE_ALL skips shared ones). */
	ASSERT_OK(pipe(to));
	ASSERT_OK(pipe(from));
	fflush(stdout);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		void *pages[4];
		int nodes[4], stat4[4] = { 0 }, res;
		char *q;

		if (read(to[0], &q, sizeof(q)) != sizeof(q) ||
		    read(to[0], &target, sizeof(target)) != sizeof(target))
			_exit(1);
		for (int i = 0; i < 4; i++) {
			pages[i] = q + i * PAGE;
			nodes[i] = target;
		}
		res = syscall(SYS_move_pages, me, 4, pages, nodes, stat4,
			      MPOL_MF_MOVE) ? -errno : stat4[0];
		_exit(write(from[1], &res, sizeof(res)) == sizeof(res) ? 0 : 1);
	}
	p = cf_map(4);
	node = cf_node_of(0, p);
	target = node == 0 ? 1 : 0;
	if (node < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		CF_NA(r, "move_pages query: %s", strerror(errno));
	}
	CF_WATCH(r, p, 4 * PAGE);
	ASSERT_EQ(write(to[1], &p, sizeof(p)), sizeof(p));
	ASSERT_EQ(write(to[1], &target, sizeof(target)), sizeof(target));
	ASSERT_EQ(read(from[0], &status, sizeof(status)), sizeof(status));
	cf_after(r);		/* the other process's move_pages returned */
	ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	if (status != target)
		CF_NA(r, "move_pages by another process: page status %d (%s)",
		      status, status < 0 ? strerror(-status) : "not moved");
	ASSERT_EQ(cf_node_of(0, p), target);
}

static void cf_migrate_soft_offline(struct cf_run *r)
{
	char *p = cf_map(4);

	if (!cf_allow_destructive)
		CF_NA(r, "retires a physical page: only in the test guest");
	if (getuid() != 0)
		CF_NA(r, "needs root (CAP_SYS_ADMIN)");
	CF_WATCH(r, p, 4 * PAGE);
	if (madvise(p + PAGE, PAGE, MADV_SOFT_OFFLINE)) {
		int e = errno;

		mapwatch_cache_put(r->c, r->e);
		r->e = NULL;
		CF_NA(r, "MADV_SOFT_OFFLINE: %s", strerror(e));
	}
	cf_after(r);
	ASSERT_EQ(((volatile char *)p)[PAGE], 0x5a);	/* contents moved */
}

static void (*const cf_fn[CF_NCASES])(struct cf_run *) = {
#define CF_FN(id, ...) [CF_##id] = cf_##id,
	CF_CASES(CF_FN)
};

/* --- running a case ------------------------------------------------------- */

static bool cf_wait_changed(const struct mapwatch_cache_entry *e, double secs)
{
	double end = now_s() + secs;

	while (!mapwatch_cache_entry_changed(e)) {
		if (now_s() > end)
			return false;
		usleep(100);
	}
	return true;
}

static int cf_backend_index(enum mapwatch_backend b)
{
	return b == MAPWATCH_BACKEND_KERNEL ? 0 :
	       b == MAPWATCH_BACKEND_USERFAULTFD ? 1 : 2;
}

static void cf_record(enum mapwatch_backend b, enum cf_id id,
		      enum cf_outcome o, bool event, bool failed)
{
	int bi = cf_backend_index(b);

	cf_res->out[bi][id] = o;
	cf_res->event[bi][id] = event;
	cf_res->failed[bi][id] = failed;
}

static void cf_run_case(enum mapwatch_backend b, enum cf_id id)
{
	const struct cf_info *info = &cf_info[id];
	enum cf_claim claim = cf_claim_of(b, id);
	struct cf_run r;
	struct mapwatch_cache_stats s;
	struct mapwatch_cache_entry *pe;
	enum cf_outcome o;
	bool event = false, fail = false, moved;
	const char *why = NULL;
	int attempt = 0;

	cf_record(b, id, CF_O_BROKEN, false, true);	/* until we know */
again:
	memset(&r, 0, sizeof(r));
	r.backend = b;
	attempt++;
	if (mapwatch_open(&r.mw, b, 64, &why))
		SKIP("%s backend unavailable: %s", mapwatch_backend_name(b), why);
	fake_init(&r.f);
	r.c = fake_cache(r.mw, &r.f, 0, 0);
	r.probe = cf_map(1);
	/* Warm the probe entry, so reading events later registers nothing. */
	pe = mapwatch_cache_get(r.c, r.probe, PAGE, 0);
	ASSERT_TRUE(pe != NULL);
	mapwatch_cache_put(r.c, pe);

	cf_fn[id](&r);

	if (r.na[0]) {
		cf_record(b, id, CF_O_NA, false, false);
		SKIP("%s: %s", info->name, r.na);
	}
	if (!r.e) {
		tap_diag("%s cannot watch this memory: %s (%s)",
			 mapwatch_backend_name(b), strerror(r.watch_err),
			 mapwatch_strerror(r.mw));
		o = CF_O_NO_WATCH;
		fail = claim != CF_NONE;
		cf_record(b, id, o, false, fail);
		ASSERT_FALSE(fail);
		return;
	}
	ASSERT_TRUE(r.observed);
	if (info->changes) {
		o = r.sync ? CF_O_SYNC :
		    cf_wait_changed(r.e, 1.0) ? CF_O_LATE : CF_O_MISSED;
	} else {
		usleep(100 * 1000);	/* a late false invalidation too */
		o = r.sync || mapwatch_cache_entry_changed(r.e) ? CF_O_FALSE :
		    CF_O_QUIET;
		moved = cf_frames_moved(&r);
		/* Moved and not seen: a miss by a backend that claims to
		 * see the kernel's own copies (as in fork_cow_write). */
		if (moved && o == CF_O_QUIET &&
		    cf_claim_of(b, CF_fork_cow_write) != CF_NONE)
			o = CF_O_MISSED;
		if (moved && o != CF_O_MISSED && attempt < 5) {
			tap_diag("%s/%s: %s, but the kernel moved its pages meanwhile (a real change): again",
				 mapwatch_backend_name(b), info->name,
				 cf_outcome_name[o]);
			mapwatch_cache_put(r.c, r.e);
			mapwatch_cache_destroy(r.c);
			mapwatch_close(r.mw);
			goto again;
		}
	}
	/* The event reaches the cache: a get elsewhere reads it and evicts
	 * the (held, so still registered) entry.  userfaultfd's reader may
	 * queue it a moment after the generation moved: allow 1 s. */
	for (double end = now_s() + 1.0;;) {
		pe = mapwatch_cache_get(r.c, r.probe, PAGE, 0);
		ASSERT_TRUE(pe != NULL);
		mapwatch_cache_put(r.c, pe);
		mapwatch_cache_get_stats(r.c, &s);
		event = s.evict_invalid > 0;
		if (event || o == CF_O_MISSED || o == CF_O_QUIET || now_s() > end)
			break;
		usleep(1000);
	}
	mapwatch_cache_put(r.c, r.e);

	switch (o) {
	case CF_O_SYNC:
		fail = claim != CF_NONE && !event;
		break;
	case CF_O_LATE:
		fail = claim == CF_SYNC || (claim == CF_SEEN && !event);
		break;
	case CF_O_MISSED:
		fail = claim != CF_NONE;
		break;
	case CF_O_FALSE:
		fail = claim == CF_REPORTS ? !event || !r.sync :
					     claim != CF_NONE;
		break;
	case CF_O_QUIET:
		fail = claim == CF_REPORTS;
		break;
	default:
		break;
	}
	tap_diag("%s/%s: %s%s (%s)", mapwatch_backend_name(b), info->name,
		 cf_outcome_name[o],
		 (info->changes || claim == CF_REPORTS) && o != CF_O_MISSED ?
		 (event ? ", event" : ", NO EVENT") : "",
		 claim == CF_NONE ? "not claimed" :
		 claim == CF_SYNC ? "claimed: synchronous" :
		 claim == CF_REPORTS ? "claimed: reported, event not skipped here" :
		 "claimed: seen");
	cf_record(b, id, o, event, fail);
	ASSERT_FALSE(fail);
	mapwatch_cache_destroy(r.c);
	mapwatch_close(r.mw);
}

/* --- the table ---------------------------------------------------------- */

static void cf_table(const enum mapwatch_backend *b, int nb, const char *title)
{
	tap_diag("");
	tap_diag("conformance: %s", title);
	tap_diag("sync: seen when the call returned; late: seen afterwards; quiet: rightly");
	tap_diag("untouched; * = claimed by the backend; ! = FAILED");
	{
		char line[256];
		int n = snprintf(line, sizeof(line), "%-24s", "case");

		for (int j = 0; j < nb; j++)
			n += snprintf(line + n, sizeof(line) - n, " %-15s",
				      mapwatch_backend_name(b[j]));
		tap_diag("%s", line);
	}
	for (int i = 0; i < CF_NCASES; i++) {
		char line[256];
		int n = snprintf(line, sizeof(line), "%-24s", cf_info[i].name);

		for (int j = 0; j < nb; j++) {
			int bi = cf_backend_index(b[j]);
			char cell[40];

			snprintf(cell, sizeof(cell), "%s%s%s",
				 cf_outcome_name[cf_res->out[bi][i]],
				 cf_claim_of(b[j], i) != CF_NONE ? "*" : "",
				 cf_res->failed[bi][i] ? "!" : "");
			n += snprintf(line + n, sizeof(line) - n, " %-15s", cell);
		}
		tap_diag("%s", line);
	}
}

static int cf_main(int argc, char **argv, const enum mapwatch_backend *b,
		   int nb, const char *title)
{
	int ret;

	cf_res = mmap(NULL, sizeof(*cf_res), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (cf_res == MAP_FAILED)
		return 2;
	ret = tap_main(argc, argv);
	if (!(argc == 2 && !strcmp(argv[1], "-l")))
		cf_table(b, nb, title);
	return ret;
}

#endif /* MAPWATCH_TEST_CONFORMANCE_H */
