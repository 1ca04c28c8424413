// SPDX-License-Identifier: MIT
/*
 * watch.c: watch a buffer, unmap it, and learn that it changed.
 *
 * The smallest complete use of libmapwatch's monitor API: open a monitor,
 * watch a range under a cookie, check it with mapwatch_changed() (one
 * memory load), and drain the events that name what changed.
 *
 *   cc -o watch watch.c $(pkg-config --cflags --libs mapwatch)
 *   ./watch
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mapwatch.h>

static void on_event(void *arg, const struct mapwatch_event *ev)
{
	int *seen = arg;

	printf("event: cookie %" PRIu64 " changed, range %#lx+%zu\n", ev->cookie,
	       (unsigned long)ev->addr, ev->len);
	(*seen)++;
}

int main(void)
{
	size_t len = 4 * (size_t)sysconf(_SC_PAGESIZE);
	struct mapwatch_handle h;
	struct mapwatch *mw;
	struct pollfd pfd;
	const char *why;
	int ret, seen = 0;
	bool changed;
	char *buf;

	/* The kernel module if it is loaded, else (AUTO_ANY) userfaultfd. */
	ret = mapwatch_open(&mw, MAPWATCH_BACKEND_AUTO_ANY, 64, &why);
	if (ret) {
		fprintf(stderr, "watch: cannot open a monitor: %s (%s)\n",
			strerror(-ret), why ? why : "no reason given");
		return 1;
	}
	printf("backend: %s\n", mapwatch_backend_name(mapwatch_backend(mw)));
	if (why)	/* settled for less than the module */
		printf("note: %s\n", why);

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		perror("watch: mmap");
		return 1;
	}
	memset(buf, 'x', len);

	/* A registration cache would register buf with the NIC here. */
	ret = mapwatch_watch(mw, buf, len, 42, &h);
	if (ret) {
		fprintf(stderr, "watch: %s\n", mapwatch_strerror(mw));
		return 1;
	}
	printf("watching %p+%zu: changed=%s\n", (void *)buf, len,
	       mapwatch_changed(&h) ? "yes" : "no");

	/* The application frees the memory: the registration is now stale. */
	munmap(buf, len);

	/* mapwatch_fd() is readable while events are pending. */
	pfd.fd = mapwatch_fd(mw);
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 1000) < 0)
		perror("watch: poll");
	ret = mapwatch_drain(mw, on_event, &seen);
	if (ret < 0) {
		fprintf(stderr, "watch: drain: %s\n", mapwatch_strerror(mw));
		return 1;
	}
	changed = mapwatch_changed(&h);
	printf("after munmap: changed=%s, %d event(s)\n", changed ? "yes" : "no",
	       seen);

	/* Unwatching a watch that already changed is fine. */
	mapwatch_unwatch(mw, &h);
	mapwatch_close(mw);
	return changed && seen == 1 ? 0 : 1;
}
