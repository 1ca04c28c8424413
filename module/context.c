// SPDX-License-Identifier: GPL-2.0-only
/*
 * The file a client opens: one context per open, bound to the opener's mm.
 * Any use from another mm (a forked child, an fd passed over a socket, a
 * process after exec) gets EIO and cannot touch the owner's state.
 */
#include "mapwatch_priv.h"

#include <linux/compat.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

static int mw_open(struct inode *inode, struct file *file)
{
	struct mw_ctx *ctx;
	int ret;

	if (!current->mm)
		return -EINVAL;
	/*
	 * The kdreg2 structs hold size_t and pointers, and events are read
	 * in 64-bit layout: no compat translation, so 32-bit callers are
	 * refused here, cleanly, rather than half served.
	 */
	if (in_compat_syscall())
		return -EOPNOTSUPP;
	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL_ACCOUNT);
	if (!ctx)
		return -ENOMEM;
	ctx->evbuf = kcalloc(MW_READ_BATCH, sizeof(*ctx->evbuf),
			     GFP_KERNEL_ACCOUNT);
	if (!ctx->evbuf) {
		ret = -ENOMEM;
		goto err_free;
	}
	spin_lock_init(&ctx->lock);
	mutex_init(&ctx->mutex);
	mutex_init(&ctx->read_mutex);
	init_waitqueue_head(&ctx->wq);
	INIT_LIST_HEAD(&ctx->pending);
	INIT_LIST_HEAD(&ctx->late);
	ctx->ranges = RB_ROOT_CACHED;
	get_random_bytes(&ctx->hash_key, sizeof(ctx->hash_key));
	/* Past max_user_contexts: EMFILE, as inotify's max_user_instances. */
	ctx->user = mw_user_get();
	if (IS_ERR(ctx->user)) {
		ret = PTR_ERR(ctx->user);
		goto err_free;
	}
	/* No mm lock here (misc_mtx is held): see mw_mm_attach(). */
	ctx->mm = current->mm;
	mmgrab(ctx->mm);
	ctx->owner = get_pid(task_tgid(current));
	file->private_data = ctx;
	mw_user_add_ctx(ctx->user, ctx);
	mw_stats_add(ctx);
	return 0;

err_free:
	kfree(ctx->evbuf);
	kfree(ctx);
	return ret;
}

static int mw_release_file(struct inode *inode, struct file *file)
{
	struct mw_ctx *ctx = file->private_data;

	struct mw_status *st = ctx->status;

	mw_user_del_ctx(ctx->user, ctx);
	/*
	 * Every region's word moves on while the notifier still sees the
	 * context, so no munmap can return in between with its region
	 * reading unchanged in an area that stays mapped.
	 */
	mw_unmonitor_all(ctx, false);
	/* No notifier callback sees the context after this. */
	mw_mm_detach(ctx);
	mw_stats_del(ctx);
	mw_drop_events(ctx);
	if (st) {
		/* Closing changes no translation: no event is counted. */
		mw_publish(&st->hdr->num_active_regions, 0);
		mw_publish(&st->hdr->pending_events, 0);
	}
	mw_status_park(st);
	mw_status_put(st);
	kvfree(ctx->free_slots);
	mw_user_uncharge_memory(ctx->user, ctx->ring_bytes);
	mw_user_put(ctx->user);
	put_pid(ctx->owner);
	mmdrop(ctx->mm);
	kfree(ctx->evbuf);
	kfree_rcu(ctx, rcu);
	return 0;
}

/* kdreg2's DUMP_STATS: a snapshot under the lock, printed after it. */
static void mw_dump_stats(struct mw_ctx *ctx)
{
	size_t max, active, pending;
	u64 events, ovf, skipped, mon, unmon;

	spin_lock(&ctx->lock);
	max = ctx->status ? ctx->status->max_regions : 0;
	active = ctx->nr_regions;
	pending = ctx->nr_queued + ctx->overflowed;
	events = ctx->total_events;
	ovf = ctx->overflows;
	skipped = ctx->skipped;
	mon = ctx->nr_monitor;
	unmon = ctx->nr_unmonitor;
	spin_unlock(&ctx->lock);
	pr_info_ratelimited("pid %d: max_regions %zu active %zu pending %zu total_events %llu overflows %llu skipped %llu monitor %llu unmonitor %llu\n",
			    task_tgid_nr(current), max, active, pending,
			    events, ovf, skipped, mon, unmon);
}

/* ->release of the mm (notifier.c): nothing of it can be read again. */
void mw_ctx_mm_gone(struct mw_ctx *ctx)
{
	mw_unmonitor_all(ctx, true);
	mw_drop_events(ctx);
}

static long mw_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct mw_ctx *ctx = file->private_data;
	void __user *uarg = (void __user *)arg;

	if (current->mm != ctx->mm)
		return -EIO;

	switch (cmd) {
	case KDREG2_IOCTL_CONFIG_DATA:
		return mw_config(ctx, uarg);
	case KDREG2_IOCTL_MONITOR:
		return mw_monitor(ctx, uarg);
	case KDREG2_IOCTL_UNMONITOR:
		return mw_unmonitor(ctx, uarg);
	case KDREG2_IOCTL_UNMONITOR_ALL:
		mw_unmonitor_all(ctx, false);
		return 0;
	case KDREG2_IOCTL_FLUSH:
		return mw_flush(ctx);
	case KDREG2_IOCTL_DUMP_STATS:
		mw_dump_stats(ctx);
		return 0;
	default:
		if (mw_kdreg2_only)
			return -ENOTTY;
		return mw_ext_ioctl(ctx, cmd, uarg);
	}
}

/* Nothing is written to the fd: kdreg2's errno for it. */
static ssize_t mw_write(struct file *file, const char __user *buf,
			size_t count, loff_t *ppos)
{
	struct mw_ctx *ctx = file->private_data;

	return current->mm != ctx->mm ? -EIO : -EOPNOTSUPP;
}

const struct file_operations mw_fops = {
	.owner = THIS_MODULE,
	.open = mw_open,
	.release = mw_release_file,
	.read = mw_read,
	.write = mw_write,
	.poll = mw_poll,
	.unlocked_ioctl = mw_ioctl,
	/* No .compat_ioctl: 32-bit callers are refused at open. */
	/* No .mmap: the status area comes from CONFIG_DATA (ENODEV). */
	.llseek = noop_llseek,
	.show_fdinfo = mw_show_fdinfo,
};
