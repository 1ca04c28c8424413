// SPDX-License-Identifier: GPL-2.0-only
/*
 * Observability: global counters in /sys/kernel/mapwatch/ (readable without
 * root), per-fd counters in /proc/PID/fdinfo/FD, and the tracepoints'
 * definitions.  Counters are summed over the live contexts when read, so
 * the hot paths pay nothing for them.
 */
#include "mapwatch.h"

#include <linux/kobject.h>
#include <linux/seq_file.h>
#include <linux/sysfs.h>

#define CREATE_TRACE_POINTS
#include "trace.h"

static LIST_HEAD(mw_contexts);
static DEFINE_MUTEX(mw_contexts_lock);
/* What closed contexts contributed, so totals never go backwards. */
static u64 mw_closed_events, mw_closed_overflows, mw_closed_skipped;
static struct kobject *mw_kobj;

void mw_stats_add(struct mw_ctx *ctx)
{
	mutex_lock(&mw_contexts_lock);
	list_add_tail(&ctx->node, &mw_contexts);
	mutex_unlock(&mw_contexts_lock);
}

void mw_stats_del(struct mw_ctx *ctx)
{
	mutex_lock(&mw_contexts_lock);
	list_del(&ctx->node);
	mw_closed_events += ctx->total_events;
	mw_closed_overflows += ctx->overflows;
	mw_closed_skipped += ctx->skipped;
	mutex_unlock(&mw_contexts_lock);
}

struct mw_totals {
	u64 contexts, regions, pending, events, overflows, skipped;
};

static void mw_sum(struct mw_totals *t)
{
	struct mw_ctx *ctx;

	memset(t, 0, sizeof(*t));
	mutex_lock(&mw_contexts_lock);
	t->events = mw_closed_events;
	t->overflows = mw_closed_overflows;
	t->skipped = mw_closed_skipped;
	list_for_each_entry(ctx, &mw_contexts, node) {
		spin_lock(&ctx->lock);
		t->contexts++;
		t->regions += ctx->nr_regions;
		t->pending += ctx->nr_queued + ctx->overflowed;
		t->events += ctx->total_events;
		t->overflows += ctx->overflows;
		t->skipped += ctx->skipped;
		spin_unlock(&ctx->lock);
	}
	mutex_unlock(&mw_contexts_lock);
}

#define MW_TOTAL_ATTR(field)						\
static ssize_t field##_show(struct kobject *kobj,			\
			    struct kobj_attribute *attr, char *buf)	\
{									\
	struct mw_totals t;						\
									\
	mw_sum(&t);							\
	return sysfs_emit(buf, "%llu\n", t.field);			\
}									\
static struct kobj_attribute mw_attr_##field = __ATTR_RO(field)

MW_TOTAL_ATTR(contexts);
MW_TOTAL_ATTR(regions);
MW_TOTAL_ATTR(pending);
MW_TOTAL_ATTR(events);
MW_TOTAL_ATTR(overflows);
MW_TOTAL_ATTR(skipped);

static ssize_t abi_version_show(struct kobject *kobj,
				struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", MAPWATCH_ABI_VERSION);
}
static struct kobj_attribute mw_attr_abi_version = __ATTR_RO(abi_version);

static struct attribute *mw_attrs[] = {
	&mw_attr_contexts.attr,
	&mw_attr_regions.attr,
	&mw_attr_pending.attr,
	&mw_attr_events.attr,
	&mw_attr_overflows.attr,
	&mw_attr_skipped.attr,
	&mw_attr_abi_version.attr,
	NULL,
};

static const struct attribute_group mw_attr_group = {
	.attrs = mw_attrs,
};

int mw_stats_init(void)
{
	int ret;

	mw_kobj = kobject_create_and_add("mapwatch", kernel_kobj);
	if (!mw_kobj)
		return -ENOMEM;
	ret = sysfs_create_group(mw_kobj, &mw_attr_group);
	if (ret)
		kobject_put(mw_kobj);
	return ret;
}

void mw_stats_exit(void)
{
	sysfs_remove_group(mw_kobj, &mw_attr_group);
	kobject_put(mw_kobj);
}

void mw_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct mw_ctx *ctx = file->private_data;

	spin_lock(&ctx->lock);
	seq_printf(m, "mapwatch-owner-pid:\t%d\n", ctx->owner_tgid);
	seq_printf(m, "mapwatch-max-regions:\t%zu\n",
		   ctx->status ? ctx->status->max_regions : 0);
	seq_printf(m, "mapwatch-regions:\t%zu\n", ctx->nr_regions);
	seq_printf(m, "mapwatch-pending:\t%zu\n",
		   ctx->nr_queued + ctx->overflowed);
	seq_printf(m, "mapwatch-events:\t%llu\n", ctx->total_events);
	seq_printf(m, "mapwatch-overflows:\t%llu\n", ctx->overflows);
	seq_printf(m, "mapwatch-skipped:\t%llu\n", ctx->skipped);
	seq_printf(m, "mapwatch-monitors:\t%llu\n", ctx->nr_monitor);
	seq_printf(m, "mapwatch-unmonitors:\t%llu\n", ctx->nr_unmonitor);
	seq_printf(m, "mapwatch-policy:\t%#x\n", ctx->policy);
	spin_unlock(&ctx->lock);
}
