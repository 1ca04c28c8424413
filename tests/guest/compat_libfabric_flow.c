// SPDX-License-Identifier: GPL-2.0-only
/*
 * The way libfabric's kdreg2 memory monitor drives the device: a blocking
 * fd opened without O_CLOEXEC, a reader thread parked in read(), MONITOR
 * called with the cache lock held, and the reader UNMONITORing (under the
 * same lock) every region whose event it handles.  The reader exits for good
 * on any event type other than MAPPING_CHANGE or any read() error other
 * than EINTR/EAGAIN, so both must never happen; nothing may deadlock.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "kdreg2.h"
#include "tap.h"

#define PAGE 4096UL
#define ROUNDS 2000

static int fd;
static const struct kdreg2_status_data *st;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kdreg2_monitoring_params params[ROUNDS];
static atomic_int handled, reader_errors, unmonitor_ok, unmonitor_other;

static void *reader(void *arg)
{
	struct kdreg2_event ev;

	(void)arg;
	while (atomic_load(&handled) < ROUNDS) {
		ssize_t n = read(fd, &ev, sizeof(ev));

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n != sizeof(ev) || ev.type != KDREG2_EVENT_MAPPING_CHANGE) {
			atomic_fetch_add(&reader_errors, 1);
			return NULL;	/* what libfabric's thread does */
		}
		uint64_t c = ev.u.mapping_change.cookie;
		struct kdreg2_ioctl_unmonitor u = { .cookie = c };

		pthread_mutex_lock(&cache_lock);
		if (c < ROUNDS)
			u.monitoring_params = params[c];
		/* The region was retired with its event: ESRCH, harmless. */
		if (ioctl(fd, KDREG2_IOCTL_UNMONITOR, &u) == 0)
			atomic_fetch_add(&unmonitor_ok, 1);
		else if (errno != ESRCH)
			atomic_fetch_add(&unmonitor_other, 1);
		pthread_mutex_unlock(&cache_lock);
		atomic_fetch_add(&handled, 1);
	}
	return NULL;
}

TEST(libfabric_style_reader_and_cache_lock)
{
	struct kdreg2_config_data c = { .max_regions = 64 };
	pthread_t th;

	fd = open(KDREG2_DEVICE_NAME, O_RDWR);	/* blocking, no O_CLOEXEC */
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(ioctl(fd, KDREG2_IOCTL_CONFIG_DATA, &c));
	st = c.status_data;
	ASSERT_EQ(pthread_create(&th, NULL, reader, NULL), 0);
	for (int i = 0; i < ROUNDS; i++) {
		char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct kdreg2_ioctl_monitor m = { .length = PAGE, .cookie = i };

		ASSERT_TRUE(p != MAP_FAILED);
		p[0] = 1;
		m.addr = p;
		pthread_mutex_lock(&cache_lock);
		ASSERT_OK(ioctl(fd, KDREG2_IOCTL_MONITOR, &m));
		params[i] = m.monitoring_params;
		pthread_mutex_unlock(&cache_lock);
		ASSERT_OK(munmap(p, PAGE));
		/* Synchronous: stale before munmap even returned to us. */
		ASSERT_TRUE(kdreg2_mapping_changed(st, &params[i]));
	}
	ASSERT_EQ(pthread_join(th, NULL), 0);
	ASSERT_EQ(atomic_load(&reader_errors), 0);
	ASSERT_EQ(atomic_load(&handled), ROUNDS);
	ASSERT_EQ(atomic_load(&unmonitor_other), 0);
	ASSERT_EQ(atomic_load(&unmonitor_ok), 0);
	ASSERT_EQ(kdreg2_read_counter(&st->pending_events), 0);
	ASSERT_EQ(kdreg2_read_counter(&st->total_events), ROUNDS);
	ASSERT_EQ(kdreg2_read_counter(&st->num_active_regions), 0);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
