// SPDX-License-Identifier: GPL-2.0-only
/*
 * The event queue: retired regions waiting to be read, the covering record
 * used past the per-fd cap, and read()/poll()/FLUSH.
 */
#include "mapwatch_priv.h"
#include "trace.h"

#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/uaccess.h>

static size_t mw_nr_pending(struct mw_ctx *ctx)
{
	return ctx->nr_queued + ctx->overflowed;
}

/* Mirror the counters into the status area.  Caller holds ctx->lock. */
void mw_publish_counters(struct mw_ctx *ctx)
{
	struct mw_status *st = ctx->status;

	if (!st)
		return;
	mw_publish(&st->hdr->num_active_regions, ctx->nr_regions);
	mw_publish(&st->hdr->total_events, ctx->total_events);
	mw_publish(&st->ext->overflows, ctx->overflows);
	mw_publish(&st->ext->skipped_invalidations, ctx->skipped);
	mw_publish(&st->hdr->pending_events, mw_nr_pending(ctx));
}

/*
 * Widen the covering record over [start, last], of regions that changed
 * for @why (what they share).  Caller holds ctx->lock.
 */
static void mw_cover(struct mw_ctx *ctx, unsigned long start,
		     unsigned long last, u32 why)
{
	if (!ctx->overflowed) {
		ctx->overflowed = true;
		ctx->ovf_start = start;
		ctx->ovf_last = last;
		ctx->ovf_why = why;
	} else {
		ctx->ovf_start = min(ctx->ovf_start, start);
		ctx->ovf_last = max(ctx->ovf_last, last);
		ctx->ovf_why = mw_why_merge(ctx->ovf_why, why);
	}
}

/*
 * Queue the event of a region the notifier just retired; the region stays
 * charged to the user until its event is read, flushed or folded.  Caller
 * holds ctx->lock.  Past the cap the region is folded into the covering
 * record, so a reader evicting by range stays correct, only less precise.
 */
void mw_queue_event(struct mw_ctx *ctx, struct mw_region *r)
{
	ctx->total_events++;
	if (ctx->nr_queued < READ_ONCE(mw_max_pending_events)) {
		if (!ctx->nr_queued) {
			ctx->pend_start = r->it.start;
			ctx->pend_last = r->it.last;
			ctx->pend_why = r->why;
		} else {
			ctx->pend_start = min(ctx->pend_start, r->it.start);
			ctx->pend_last = max(ctx->pend_last, r->it.last);
			ctx->pend_why = mw_why_merge(ctx->pend_why, r->why);
		}
		list_add_tail(&r->event, &ctx->pending);
		ctx->nr_queued++;
		mw_user_unread(ctx->user, 1);
		return;
	}
	mw_cover(ctx, r->it.start, r->it.last, r->why);
	ctx->overflows++;
	trace_mapwatch_overflow(r->it.start, r->it.last, r->cookie,
				ctx->overflows);
	mw_user_uncharge(ctx->user, 1);
	mw_region_free(r);
}

/*
 * The user is at max_user_regions (user.c): fold every unread event of @ctx
 * into its covering record, moving the records to @dead.  The head of the
 * queue belongs to a reader between its peek and its consume, so a busy
 * reader means no fold.  O(1) under ctx->lock: the queue's extent is kept
 * as it grows.  Returns how many records were moved.
 */
long mw_fold_events(struct mw_ctx *ctx, struct list_head *dead)
{
	long n;

	if (!mutex_trylock(&ctx->read_mutex))
		return 0;
	spin_lock(&ctx->lock);
	n = ctx->nr_queued;
	if (n) {
		/*
		 * What the whole queue since it was last empty shared: the
		 * records read since may have shared more, never less.
		 */
		mw_cover(ctx, ctx->pend_start, ctx->pend_last, ctx->pend_why);
		ctx->overflows += n;
		list_splice_tail_init(&ctx->pending, dead);
		ctx->nr_queued = 0;
		mw_user_unread(ctx->user, -n);
		mw_publish_counters(ctx);
		trace_mapwatch_overflow(ctx->pend_start, ctx->pend_last,
					KDREG2_BAD_COOKIE_VALUE,
					ctx->overflows);
	}
	spin_unlock(&ctx->lock);
	mutex_unlock(&ctx->read_mutex);
	return n;
}

/*
 * Fill ctx->evbuf from the head of the queue without consuming it.  Returns
 * the number of records; *regions says how many of them are regions (the
 * covering record, if included, comes last) and *ovf_seq which fold state
 * the covering record showed.
 */
static size_t mw_peek(struct mw_ctx *ctx, size_t max, size_t *regions,
		      u64 *ovf_seq)
{
	struct kdreg2_event *ev = ctx->evbuf;
	bool why = ctx->policy & MAPWATCH_POLICY_REASONS;
	struct mw_region *r;
	size_t n = 0;

	memset(ev, 0, max * sizeof(*ev));
	list_for_each_entry(r, &ctx->pending, event) {
		if (n == max)
			break;
		ev[n].type = KDREG2_EVENT_MAPPING_CHANGE;
		ev[n].u.mapping_change.addr = (void __user *)r->it.start;
		ev[n].u.mapping_change.len = r->it.last - r->it.start + 1;
		ev[n].u.mapping_change.cookie = r->cookie;
		/* kdreg2 writes 0 there; the reason only when asked for. */
		ev[n]._alignment = why ? r->why : 0;
		n++;
	}
	*regions = n;
	*ovf_seq = ctx->overflows;
	if (n < max && ctx->overflowed) {
		ev[n].type = ctx->policy & MAPWATCH_POLICY_OVERFLOW_EVENT ?
			     MAPWATCH_EVENT_OVERFLOW :
			     KDREG2_EVENT_MAPPING_CHANGE;
		ev[n].u.mapping_change.addr = (void __user *)ctx->ovf_start;
		ev[n].u.mapping_change.len = ctx->ovf_last - ctx->ovf_start + 1;
		ev[n].u.mapping_change.cookie = KDREG2_BAD_COOKIE_VALUE;
		ev[n]._alignment = why ? ctx->ovf_why : 0;
		n++;
	}
	return n;
}

/*
 * Drop what mw_peek() showed: the notifier only appends, and read_mutex keeps
 * other readers and FLUSH away, so those regions are still at the head.  The
 * covering record is dropped only if nothing was folded into it since.
 * Caller holds both locks.
 */
static void mw_consume(struct mw_ctx *ctx, size_t regions, bool covering,
		       u64 ovf_seq, struct list_head *dead)
{
	mw_user_unread(ctx->user, -(long)regions);
	while (regions--) {
		struct mw_region *r;

		r = list_first_entry(&ctx->pending, struct mw_region, event);
		list_move_tail(&r->event, dead);
		ctx->nr_queued--;
	}
	if (covering && ctx->overflows == ovf_seq)
		ctx->overflowed = false;
	mw_publish_counters(ctx);
}

/*
 * Free retired regions whose events are gone, and give back their charge.
 * Returns how many.
 */
long mw_free_records(struct mw_user *u, struct list_head *dead)
{
	struct mw_region *r, *tmp;
	long n = 0;

	list_for_each_entry_safe(r, tmp, dead, event) {
		mw_region_free(r);
		if (!(++n % MW_RETIRE_BATCH))
			cond_resched();
	}
	INIT_LIST_HEAD(dead);
	mw_user_uncharge(u, n);
	return n;
}

ssize_t mw_read(struct file *file, char __user *buf, size_t count,
		loff_t *ppos)
{
	struct mw_ctx *ctx = file->private_data;
	size_t want = count / sizeof(struct kdreg2_event), n, regions;
	u64 ovf_seq;
	LIST_HEAD(dead);
	int ret;

	if (current->mm != ctx->mm)
		return -EIO;
	/* kdreg2: zero bytes asked, zero bytes read. */
	if (!count)
		return 0;
	if (!want)
		return -EINVAL;
	want = min_t(size_t, want, MW_READ_BATCH);

	/* Another reader may be stalled in a fault on its buffer. */
	if (file->f_flags & O_NONBLOCK) {
		if (!mutex_trylock(&ctx->read_mutex))
			return -EAGAIN;
	} else if (mutex_lock_interruptible(&ctx->read_mutex)) {
		return -ERESTARTSYS;
	}
	for (;;) {
		spin_lock(&ctx->lock);
		n = mw_peek(ctx, want, &regions, &ovf_seq);
		spin_unlock(&ctx->lock);
		if (n)
			break;
		mutex_unlock(&ctx->read_mutex);
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_event_interruptible(ctx->wq,
					       READ_ONCE(ctx->nr_queued) ||
					       READ_ONCE(ctx->overflowed));
		if (ret)
			return ret;
		if (file->f_flags & O_NONBLOCK) {
			if (!mutex_trylock(&ctx->read_mutex))
				return -EAGAIN;
		} else if (mutex_lock_interruptible(&ctx->read_mutex)) {
			return -ERESTARTSYS;
		}
	}
	if (copy_to_user(buf, ctx->evbuf, n * sizeof(struct kdreg2_event))) {
		mutex_unlock(&ctx->read_mutex);
		return -EACCES;	/* kdreg2's errno here; nothing consumed */
	}
	spin_lock(&ctx->lock);
	mw_consume(ctx, regions, n > regions, ovf_seq, &dead);
	spin_unlock(&ctx->lock);
	mutex_unlock(&ctx->read_mutex);
	mw_free_records(ctx->user, &dead);
	return n * sizeof(struct kdreg2_event);
}

__poll_t mw_poll(struct file *file, struct poll_table_struct *wait)
{
	struct mw_ctx *ctx = file->private_data;

	/* kdreg2's answer: readable and writable, so a caller learns EIO. */
	if (current->mm != ctx->mm)
		return EPOLLERR | EPOLLIN | EPOLLRDNORM | EPOLLOUT | EPOLLWRNORM;
	poll_wait(file, &ctx->wq, wait);
	if (READ_ONCE(ctx->nr_queued) || READ_ONCE(ctx->overflowed))
		return EPOLLIN | EPOLLRDNORM;
	return 0;
}

/* Empty the queue and the covering record onto @dead, for the caller to free. */
static void mw_take_events(struct mw_ctx *ctx, struct list_head *dead)
{
	spin_lock(&ctx->lock);
	list_splice_init(&ctx->pending, dead);
	mw_user_unread(ctx->user, -(long)ctx->nr_queued);
	ctx->nr_queued = 0;
	ctx->overflowed = false;
	mw_publish_counters(ctx);
	spin_unlock(&ctx->lock);
}

int mw_flush(struct mw_ctx *ctx)
{
	LIST_HEAD(dead);

	/* A reader may hold it across a fault on its buffer: never stuck. */
	if (mutex_lock_killable(&ctx->read_mutex))
		return -EINTR;
	mw_take_events(ctx, &dead);
	mutex_unlock(&ctx->read_mutex);
	mw_free_records(ctx->user, &dead);
	return 0;
}

/*
 * Nobody can read the queue any more (close, or the mm is gone): drop it
 * without read_mutex, which no reader of this mm can hold now.
 */
void mw_drop_events(struct mw_ctx *ctx)
{
	LIST_HEAD(dead);

	mw_take_events(ctx, &dead);
	mw_free_records(ctx->user, &dead);
}
