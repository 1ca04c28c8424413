// SPDX-License-Identifier: GPL-2.0-only
/*
 * The file a client opens: one context per open, bound to the opener's mm.
 * Any use from another mm (a forked child, an fd passed over a socket, a
 * process after exec) gets EIO and cannot touch the owner's state.
 */
#include "mapwatch_priv.h"

#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/mm.h>
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
	ctx->ranges = RB_ROOT_CACHED;
	ctx->cookies = RB_ROOT;
	ctx->user = mw_user_get();
	if (!ctx->user) {
		ret = -ENOMEM;
		goto err_free;
	}
	ctx->mm = current->mm;
	mmgrab(ctx->mm);
	ret = mw_mm_attach(ctx);
	if (ret)
		goto err_mm;
	ctx->owner = get_pid(task_tgid(current));
	file->private_data = ctx;
	mw_stats_add(ctx);
	return 0;

err_mm:
	mmdrop(ctx->mm);
	mw_user_put(ctx->user);
err_free:
	kfree(ctx->evbuf);
	kfree(ctx);
	return ret;
}

static int mw_release_file(struct inode *inode, struct file *file)
{
	struct mw_ctx *ctx = file->private_data;

	/* No notifier callback sees the context after this. */
	mw_mm_detach(ctx);
	mw_stats_del(ctx);
	mw_free_regions(ctx);
	mw_free_events(ctx);
	mw_user_put(ctx->user);
	put_pid(ctx->owner);
	mw_status_spare(ctx->status);
	mw_status_put(ctx->status);
	kvfree(ctx->free_slots);
	mmdrop(ctx->mm);
	kfree(ctx->evbuf);
	kfree(ctx);
	return 0;
}

static void mw_dump_stats(struct mw_ctx *ctx)
{
	spin_lock(&ctx->lock);
	pr_info_ratelimited("pid %d: max_regions %zu active %zu pending %zu total_events %llu overflows %llu skipped %llu monitor %llu unmonitor %llu\n",
		task_tgid_nr(current),
		ctx->status ? ctx->status->max_regions : 0, ctx->nr_regions,
		ctx->nr_queued + ctx->overflowed, ctx->total_events,
		ctx->overflows, ctx->skipped, ctx->nr_monitor,
		ctx->nr_unmonitor);
	spin_unlock(&ctx->lock);
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
		mw_unmonitor_all(ctx);
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
	.compat_ioctl = compat_ptr_ioctl,
	/* No .mmap: the status area comes from CONFIG_DATA (ENODEV). */
	.llseek = noop_llseek,
	.show_fdinfo = mw_show_fdinfo,
};
