// SPDX-License-Identifier: GPL-2.0-only
/*
 * Page migration between NUMA nodes, requested by ANOTHER process with
 * move_pages(2) and migrate_pages(2), changes the physical pages behind a
 * monitored region: the region must report changed (and its event be
 * queued) by the time that process's call returns.  A migration that moves
 * nothing (a query, a page already on its target node) changes nothing.
 *
 * Needs two NUMA nodes (vm/run --numa; listed in numa.list); the migration
 * cases skip in a one-node guest, never pass.  System calls are made with
 * syscall(2): no libnuma needed.
 *
 * usage: numa_migration [CASE...]      (TAP)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "mapwatch_uapi.h"
#include "tap.h"

#define PAGE 4096UL
#define NPAGES 4
#define MPOL_MF_MOVE_ (1 << 1)
#define MAXNODE 64	/* bits in one unsigned long node mask */

typedef struct kdreg2_monitoring_params params_t;

static int fd;
static const struct kdreg2_status_data *st;

static void setup(void)
{
	struct kdreg2_config_data c = { .max_regions = 16 };

	fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	st = c.status_data;
}

static params_t watch(const void *addr, size_t len, uint64_t cookie)
{
	struct kdreg2_ioctl_monitor m = { .addr = addr, .length = len,
					  .cookie = cookie };

	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
	return m.monitoring_params;
}

static bool changed(params_t p)
{
	return kdreg2_mapping_changed(st, &p);
}

static uint64_t pending(void)
{
	return kdreg2_read_counter(&st->pending_events);
}

static void expect_event(const void *addr, size_t len, uint64_t cookie)
{
	struct kdreg2_event ev;

	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)sizeof(ev));
	ASSERT_EQ(ev.type, KDREG2_EVENT_MAPPING_CHANGE);
	ASSERT_EQ((uintptr_t)ev.u.mapping_change.addr, (uintptr_t)addr);
	ASSERT_EQ(ev.u.mapping_change.len, len);
	ASSERT_EQ(ev.u.mapping_change.cookie, cookie);
}

/* Online nodes, from /sys ("0", "0-1", "0,2"...). */
static int online_nodes(void)
{
	char buf[64] = "";
	int f = open("/sys/devices/system/node/online", O_RDONLY), n = 0;
	char *s = buf;

	if (f < 0)
		return 1;	/* no NUMA support: one node */
	if (read(f, buf, sizeof(buf) - 1) <= 0)
		buf[0] = '0';
	close(f);
	while (*s) {
		long a = strtol(s, &s, 10), b = a;

		if (*s == '-')
			b = strtol(s + 1, &s, 10);
		n += (int)(b - a + 1);
		while (*s == ',' || *s == '\n')
			s++;
	}
	return n;
}

static void need_two_nodes(void)
{
	if (online_nodes() < 2)
		NEED("numa2", "one NUMA node: needs a 2-node guest (vm/run --numa)");
}

static long move_pages_(pid_t pid, unsigned long n, void **pages,
			const int *nodes, int *status, int flags)
{
	return syscall(SYS_move_pages, pid, n, pages, nodes, status, flags);
}

/* The node a page of ours is on (query only: moves nothing). */
static int node_of(const void *addr)
{
	void *pg = (void *)addr;
	int status = -1;

	ASSERT_EQ(move_pages_(0, 1, &pg, NULL, &status, 0), 0);
	ASSERT_GE(status, 0);
	return status;
}

static char *map_pages(void)
{
	char *p = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	ASSERT_OK(madvise(p, NPAGES * PAGE, MADV_NOHUGEPAGE));
	for (size_t i = 0; i < NPAGES; i++)
		memset(p + i * PAGE, (int)(0x10 + i), PAGE);
	return p;
}

/* Put every page of p on node (before anything is monitored). */
static void place_all(char *p, int node)
{
	void *pages[NPAGES];
	int nodes[NPAGES], status[NPAGES];

	for (int i = 0; i < NPAGES; i++) {
		pages[i] = p + i * PAGE;
		nodes[i] = node;
	}
	ASSERT_EQ(move_pages_(0, NPAGES, pages, nodes, status,
			      MPOL_MF_MOVE_), 0);
	for (int i = 0; i < NPAGES; i++)
		ASSERT_EQ(status[i], node);
}

static void check_contents(const char *p)
{
	for (size_t i = 0; i < NPAGES; i++)
		ASSERT_EQ(p[i * PAGE + 100], (char)(0x10 + i));
}

/*
 * The other process: forked before the memory under test exists, so it
 * shares none of it (a shared page would not be moved).  It performs one
 * request and answers with the call's result.
 */
enum { OP_EXIT, OP_MOVE, OP_QUERY, OP_MIGRATE };

struct req {
	int op;
	int n;
	uintptr_t addr[NPAGES];
	int node;		/* OP_MOVE: target; OP_MIGRATE: to */
	int from;		/* OP_MIGRATE */
};

struct reply {
	long ret;
	int err;
	int status[NPAGES];
};

struct helper {
	pid_t pid;
	int to[2], from[2];
};

static void helper_serve(pid_t target, int in, int out)
{
	struct req r;

	while (read(in, &r, sizeof(r)) == sizeof(r) && r.op != OP_EXIT) {
		struct reply y = { 0 };
		void *pages[NPAGES];
		int nodes[NPAGES];
		unsigned long from = 1UL << r.from, to = 1UL << r.node;

		for (int i = 0; i < r.n; i++) {
			pages[i] = (void *)r.addr[i];
			nodes[i] = r.node;
			y.status[i] = -1;
		}
		errno = 0;
		if (r.op == OP_MOVE)
			y.ret = move_pages_(target, r.n, pages, nodes,
					    y.status, MPOL_MF_MOVE_);
		else if (r.op == OP_QUERY)
			y.ret = move_pages_(target, r.n, pages, NULL,
					    y.status, 0);
		else
			y.ret = syscall(SYS_migrate_pages, target, MAXNODE,
					&from, &to);
		y.err = errno;
		if (write(out, &y, sizeof(y)) != sizeof(y))
			_exit(2);
	}
	_exit(0);
}

static void helper_start(struct helper *h)
{
	pid_t parent = getpid();

	ASSERT_OK(pipe(h->to));
	ASSERT_OK(pipe(h->from));
	h->pid = fork();
	ASSERT_GE(h->pid, 0);
	if (h->pid == 0)
		helper_serve(parent, h->to[0], h->from[1]);
}

/* Returns once the other process's call has returned. */
static struct reply helper_call(struct helper *h, struct req *r)
{
	struct reply y;

	ASSERT_EQ(write(h->to[1], r, sizeof(*r)), (ssize_t)sizeof(*r));
	ASSERT_EQ(read(h->from[0], &y, sizeof(y)), (ssize_t)sizeof(y));
	return y;
}

static void helper_stop(struct helper *h)
{
	struct req r = { .op = OP_EXIT };
	int status;

	ASSERT_EQ(write(h->to[1], &r, sizeof(r)), (ssize_t)sizeof(r));
	ASSERT_EQ(waitpid(h->pid, &status, 0), h->pid);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(move_pages_by_other_process_invalidates)
{
	struct helper h;
	struct req r = { .op = OP_MOVE, .n = 1 };
	struct reply y;
	params_t a[NPAGES];
	char *p;
	int src;

	need_two_nodes();
	helper_start(&h);
	p = map_pages();
	setup();
	for (int i = 0; i < NPAGES; i++)
		a[i] = watch(p + i * PAGE, PAGE, i);
	src = node_of(p + PAGE);
	r.addr[0] = (uintptr_t)p + PAGE;
	r.node = !src;
	y = helper_call(&h, &r);
	ASSERT_EQ(y.ret, 0);
	ASSERT_EQ(y.status[0], !src);	/* it did move */
	/* The other process's call returned: ours already reports it. */
	ASSERT_TRUE(changed(a[1]));
	ASSERT_EQ(pending(), 1);
	for (int i = 0; i < NPAGES; i++)
		if (i != 1)
			ASSERT_FALSE(changed(a[i]));
	expect_event(p + PAGE, PAGE, 1);
	ASSERT_EQ(node_of(p + PAGE), !src);
	check_contents(p);
	helper_stop(&h);
}

TEST(move_pages_of_several_regions_by_other_process)
{
	struct helper h;
	struct req r = { .op = OP_MOVE, .n = NPAGES, .node = 1 };
	struct reply y;
	params_t whole, half, other;
	char *p;

	need_two_nodes();
	helper_start(&h);
	p = map_pages();
	place_all(p, 0);
	setup();
	whole = watch(p, NPAGES * PAGE, 1);
	half = watch(p + 2 * PAGE, 2 * PAGE, 2);
	other = watch(p + NPAGES * PAGE, PAGE, 3);	/* just past the end */
	for (int i = 0; i < NPAGES; i++)
		r.addr[i] = (uintptr_t)p + i * PAGE;
	y = helper_call(&h, &r);
	ASSERT_EQ(y.ret, 0);
	for (int i = 0; i < NPAGES; i++)
		ASSERT_EQ(y.status[i], 1);
	ASSERT_TRUE(changed(whole));
	ASSERT_TRUE(changed(half));
	ASSERT_FALSE(changed(other));
	ASSERT_EQ(pending(), 2);
	ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 1);
	check_contents(p);
	helper_stop(&h);
}

TEST(migrate_pages_by_other_process_invalidates)
{
	struct helper h;
	struct req r = { .op = OP_MIGRATE, .from = 0, .node = 1 };
	struct reply y;
	params_t a;
	char *p;

	need_two_nodes();
	helper_start(&h);
	p = map_pages();
	place_all(p, 0);
	setup();
	a = watch(p, NPAGES * PAGE, 7);
	ASSERT_FALSE(changed(a));
	y = helper_call(&h, &r);
	if (y.ret < 0)
		tap_diag("migrate_pages: errno %d", y.err);
	ASSERT_GE(y.ret, 0);	/* pages it could not move, or 0 */
	for (int i = 0; i < NPAGES; i++)
		ASSERT_EQ(node_of(p + i * PAGE), 1);
	ASSERT_TRUE(changed(a));
	ASSERT_EQ(pending(), 1);
	expect_event(p, NPAGES * PAGE, 7);
	check_contents(p);
	helper_stop(&h);
}

/* No page moves, no translation changes: nothing may be reported. */
TEST(migration_that_moves_nothing_does_not_invalidate)
{
	struct helper h;
	struct req r = { .n = NPAGES };
	struct reply y;
	params_t a;
	char *p;
	int node;

	need_two_nodes();
	helper_start(&h);
	p = map_pages();
	place_all(p, 1);
	setup();
	a = watch(p, NPAGES * PAGE, 1);
	for (int i = 0; i < NPAGES; i++)
		r.addr[i] = (uintptr_t)p + i * PAGE;
	r.op = OP_QUERY;
	y = helper_call(&h, &r);
	ASSERT_EQ(y.ret, 0);
	for (int i = 0; i < NPAGES; i++)
		ASSERT_EQ(y.status[i], 1);
	/* Already there. */
	r.op = OP_MOVE;
	r.node = 1;
	y = helper_call(&h, &r);
	ASSERT_EQ(y.ret, 0);
	ASSERT_FALSE(changed(a));
	/* Everything from a node that holds none of them. */
	r.op = OP_MIGRATE;
	r.from = 0;
	r.node = 1;
	y = helper_call(&h, &r);
	ASSERT_GE(y.ret, 0);
	ASSERT_FALSE(changed(a));
	place_all(p, 1);	/* ourselves, to where they are */
	node = node_of(p);
	ASSERT_EQ(node, 1);
	ASSERT_FALSE(changed(a));
	ASSERT_EQ(pending(), 0);
	/* The real move afterwards is caught. */
	r.op = OP_MOVE;
	r.node = 0;
	y = helper_call(&h, &r);
	ASSERT_EQ(y.ret, 0);
	ASSERT_TRUE(changed(a));
	expect_event(p, NPAGES * PAGE, 1);
	helper_stop(&h);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
