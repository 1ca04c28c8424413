// SPDX-License-Identifier: GPL-2.0-only
/*
 * Entry points used in an unusual order or mode: every one must give its
 * documented errno (never an oops) and leave the context usable.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mapwatch_uapi.h"
#include "tap.h"

TEST(unmonitor_before_config_is_einval)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct kdreg2_ioctl_unmonitor u = { .cookie = 1 };
	struct mapwatch_unmonitor_entry e = { .cookie = 1 };
	struct mapwatch_batch b = {
		.size = sizeof(b), .count = 1, .entry_size = sizeof(e),
		.entries = (uintptr_t)&e,
	};

	ASSERT_TRUE(fd >= 0);
	ASSERT_BAD_INPUT("UNMONITOR", "before CONFIG_DATA",
			 ioctl(fd, KDREG2_IOCTL_UNMONITOR, &u), EINVAL);
	ASSERT_EQ(ioctl(fd, MAPWATCH_IOCTL_UNMONITOR_BATCH, &b), 0);
	ASSERT_EQ(e.status, -EINVAL);
	LOG_BAD_INPUT("UNMONITOR_BATCH entry", "before CONFIG_DATA", "EINVAL");
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_UNMONITOR_ALL));
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_FLUSH));
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_DUMP_STATS));
}

TEST(monitor_before_config_is_enospc)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct kdreg2_ioctl_monitor m = { .addr = (void *)4096, .length = 1,
					  .cookie = 1 };

	ASSERT_TRUE(fd >= 0);
	ASSERT_BAD_INPUT("MONITOR", "before CONFIG_DATA",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), ENOSPC);
}

/* Monitor a fresh page with M (length and cookie set), then unmap it: one
 * event pending and the region changed. */
static void monitor_then_unmap(int fd, struct kdreg2_ioctl_monitor *m)
{
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	m->addr = p;
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, m));
	ASSERT_OK(munmap(p, 4096));
}

TEST(read_only_open_configures_and_reports)
{
	int fd = open(KDREG2_DEVICE_NAME, O_RDONLY);
	struct kdreg2_config_data c = { .max_regions = 2 };
	struct kdreg2_ioctl_monitor m = { .length = 4096, .cookie = 3 };
	struct kdreg2_event ev;

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	monitor_then_unmap(fd, &m);
	ASSERT_TRUE(kdreg2_mapping_changed(c.status_data, &m.monitoring_params));
	ASSERT_EQ(read(fd, &ev, sizeof(ev)), (ssize_t)sizeof(ev));
	ASSERT_EQ(ev.u.mapping_change.cookie, 3);
}

TEST(monitor_kernel_address_is_einval)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct kdreg2_config_data c = { .max_regions = 2 };
	struct kdreg2_ioctl_monitor m = {
		.addr = (void *)0xffff888000000000UL, .length = 4096,
		.cookie = 1 };

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_BAD_INPUT("MONITOR", "kernel address",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EINVAL);
	m.addr = (void *)0x10000UL;
	m.length = (size_t)-0x8000;	/* wraps around the address space */
	ASSERT_BAD_INPUT("MONITOR", "range wrapping the address space",
			 ioctl(fd, KDREG2_IOCTL_MONITOR, &m), EINVAL);
	ASSERT_EQ(kdreg2_read_counter(&c.status_data->num_active_regions), 0);
}

TEST(status_area_survives_close_of_fd)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR);
	struct kdreg2_config_data c = { .max_regions = 2 };

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	ASSERT_OK(close(fd));
	/* The mapping keeps the context alive until it is unmapped. */
	ASSERT_EQ(c.status_data->max_regions, 2);
	ASSERT_EQ(mapwatch_status_ext(c.status_data)->magic,
		  MAPWATCH_STATUS_MAGIC);
}

/*
 * FLUSH takes the read mutex killably.  A reader can hold that mutex
 * across a fault on its own buffer for as long as the fault lasts (here a
 * userfaultfd page nobody fills); FLUSH behind it must sleep TASK_KILLABLE,
 * so a kill ends it, and not TASK_UNINTERRUPTIBLE, which the hung-task
 * detector reports ("INFO: task ... blocked for more than N seconds") and
 * skips for killable sleeps.  With its timeout at 1 s, a plain mutex_lock()
 * there is reported within 3 s; this case looks for the report of its own
 * FLUSH thread (vm/run would fail the run on it too).
 */
struct stuck_read {
	int fd;
	void *buf;
	ssize_t ret;
	int done;
};

static void *stuck_reader(void *arg)
{
	struct stuck_read *r = arg;

	r->ret = read(r->fd, r->buf, sizeof(struct kdreg2_event));
	__atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

struct flusher {
	int fd;
	pid_t tid;
	int ret;
	int done;
};

static void *flusher(void *arg)
{
	struct flusher *f = arg;

	prctl(PR_SET_NAME, "mw-flush-test");
	__atomic_store_n(&f->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	f->ret = ioctl(f->fd, KDREG2_IOCTL_FLUSH);
	__atomic_store_n(&f->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* The state letter of a thread of ours ('D', 'S', ...), or 0. */
static char thread_state(pid_t tid)
{
	char path[64], line[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	p = p ? strrchr(line, ')') : NULL;
	return p && p[1] == ' ' ? p[2] : 0;
}

static int sysctl_rw(const char *path, const char *set, char *old, size_t n)
{
	int fd = open(path, O_RDWR);
	ssize_t k;

	if (fd < 0)
		return -1;
	k = read(fd, old, n - 1);
	old[k > 0 ? k : 0] = 0;
	if (set && (lseek(fd, 0, SEEK_SET) || write(fd, set, strlen(set)) < 0)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int joined(pthread_t t, int *done)
{
	for (int i = 0; i < 300 && !__atomic_load_n(done, __ATOMIC_SEQ_CST); i++)
		usleep(100000);
	return __atomic_load_n(done, __ATOMIC_SEQ_CST) && !pthread_join(t, NULL);
}

/*
 * One try: a reader stuck in a fault on its buffer while holding the read
 * mutex, FLUSH behind it for 4 s, then the page filled.  Returns the FLUSH
 * thread's id if it was seen asleep behind the reader (the state the case
 * needs), else 0 (the set-up did not get there: the caller tries again).
 * The fd is non-blocking, so a reader finding no event never waits.
 */
static pid_t flush_behind_stuck_reader(void)
{
	int fd = open(MAPWATCH_DEVICE_NAME, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	struct kdreg2_config_data c = { .max_regions = 4 };
	struct kdreg2_ioctl_monitor m = { .length = 4096, .cookie = 5 };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_zeropage zp = { .range.len = 4096 };
	struct pollfd pfd = { .events = POLLIN };
	struct stuck_read r = { 0 };
	struct flusher f = { 0 };
	pthread_t rt, ft;
	char state = 0;
	int uffd, i, early;

	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	/* One event pending, so the reader gets as far as copying it out. */
	monitor_then_unmap(fd, &m);
	/* Non-blocking: userfaultfd's poll() answers POLLERR at once on a
	 * blocking one, which told nothing about where the reader was. */
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	ASSERT_TRUE(uffd >= 0);
	ASSERT_OK(ioctl(uffd, UFFDIO_API, &api));
	r.buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(r.buf != MAP_FAILED);
	reg.range.start = (uintptr_t)r.buf;
	reg.range.len = 4096;
	ASSERT_OK(ioctl(uffd, UFFDIO_REGISTER, &reg));

	r.fd = fd;
	ASSERT_OK(pthread_create(&rt, NULL, stuck_reader, &r));
	pfd.fd = uffd;
	ASSERT_EQ(poll(&pfd, 1, 10000), 1);
	ASSERT_EQ(pfd.revents, POLLIN);	/* the reader's fault is queued */
	early = __atomic_load_n(&r.done, __ATOMIC_SEQ_CST);
	f.fd = fd;
	ASSERT_OK(pthread_create(&ft, NULL, flusher, &f));
	for (i = 0; i < 100 && state != 'D' && !f.done; i++) {
		usleep(100000);
		if (__atomic_load_n(&f.tid, __ATOMIC_SEQ_CST))
			state = thread_state(f.tid);
	}
	if (state == 'D')
		sleep(4);	/* four hung-task periods */
	else
		tap_diag("set-up missed: reader %s, FLUSH %s (state '%c')",
			 early ? "done before its fault" : "in its fault",
			 __atomic_load_n(&f.done, __ATOMIC_SEQ_CST) ?
			 "returned" : "not asleep", state ? state : '?');
	/* Let the reader finish: FLUSH then gets the mutex. */
	zp.range.start = (uintptr_t)r.buf;
	ASSERT_OK(ioctl(uffd, UFFDIO_ZEROPAGE, &zp));
	ASSERT_TRUE(joined(rt, &r.done));
	ASSERT_TRUE(joined(ft, &f.done));
	EXPECT_EQ(f.ret, 0);
	close(uffd);
	munmap(r.buf, 4096);
	close(fd);
	return state == 'D' ? f.tid : 0;
}

/*
 * FLUSH takes the read mutex killably.  A reader can hold that mutex
 * across a fault on its own buffer for as long as the fault lasts (here a
 * userfaultfd page nobody fills); FLUSH behind it must sleep TASK_KILLABLE,
 * so a kill ends it, and not TASK_UNINTERRUPTIBLE, which the hung-task
 * detector reports ("INFO: task ... blocked for more than N seconds") and
 * skips for killable sleeps.  With its timeout at 1 s, a plain mutex_lock()
 * there is reported within 3 s; this case looks for the report of its own
 * FLUSH thread (vm/run would fail the run on it too).  The set-up is
 * retried (up to 3 times) when FLUSH was not seen asleep behind the reader.
 */
TEST(flush_waits_killably_behind_a_stuck_reader)
{
	static const char hung[] = "/proc/sys/kernel/hung_task_timeout_secs";
	char old[32], tmp[32], *log, want[64];
	pid_t tid = 0;
	int i, n, reported;

	if (access(hung, F_OK))
		SKIP("kernel without the hung-task detector (DETECT_HUNG_TASK)");
	ASSERT_OK(sysctl_rw(hung, "1", old, sizeof(old)));
	tap_diag("hung_task_timeout_secs %s -> 1", strtok(old, "\n"));
	for (i = 0; i < 3 && !tid; i++)
		tid = flush_behind_stuck_reader();
	ASSERT_OK(sysctl_rw(hung, old, tmp, sizeof(tmp)));
	tap_diag("FLUSH thread %d asleep behind the stuck reader (try %d)",
		 tid, i);
	ASSERT_TRUE(tid != 0);

	snprintf(want, sizeof(want), "task mw-flush-test:%d blocked", tid);
	n = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	ASSERT_TRUE(n > 0);
	log = malloc(n + 1);
	ASSERT_TRUE(log != NULL);
	n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, log, n);
	ASSERT_TRUE(n > 0);
	log[n] = 0;
	reported = strstr(log, want) != NULL;
	tap_diag("hung-task report of the FLUSH thread: %s",
		 reported ? "yes (an uninterruptible sleep)" : "none");
	EXPECT_TRUE(!reported);
	free(log);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
