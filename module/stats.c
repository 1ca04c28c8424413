// SPDX-License-Identifier: GPL-2.0-only
/*
 * Observability: global counters in /sys/kernel/mapwatch/ (readable without
 * root), per-fd counters in /proc/PID/fdinfo/FD, and the tracepoints'
 * definitions.  Counters are summed over the live contexts when read, so
 * the hot paths pay nothing for them.
 */
#include "mapwatch_priv.h"

#include <linux/kobject.h>
#include <linux/pid_namespace.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/sysfs.h>

#define CREATE_TRACE_POINTS
#include "trace.h"

/*
 * The live contexts, for the sums.  Updated under a spinlock held for a list
 * update only; read under RCU (a context is freed after a grace period), so
 * a reader of the sums, which any user may be, delays no open or close.
 */
static LIST_HEAD(mw_contexts);
static DEFINE_SPINLOCK(mw_contexts_lock);
/* What closed contexts contributed, so totals never go backwards. */
static atomic64_t mw_closed_events, mw_closed_overflows, mw_closed_skipped;
static atomic64_t mw_closed_reasons[MAPWATCH_REASON_COUNT];
static atomic64_t mw_closed_causes[MAPWATCH_CAUSE_COUNT];
static atomic64_t mw_closed_skipped_causes[MAPWATCH_CAUSE_COUNT];
static struct kobject *mw_kobj;
/* The longest ctx->lock hold of a notifier callback that retired regions. */
static atomic64_t mw_max_hold_ns;

void mw_stats_hold(u64 ns)
{
	s64 old = atomic64_read(&mw_max_hold_ns);

	while ((s64)ns > old) {
		s64 seen = atomic64_cmpxchg(&mw_max_hold_ns, old, ns);

		if (seen == old)
			break;
		old = seen;
	}
}

void mw_stats_add(struct mw_ctx *ctx)
{
	spin_lock(&mw_contexts_lock);
	list_add_tail_rcu(&ctx->node, &mw_contexts);
	spin_unlock(&mw_contexts_lock);
}

/* The context's own counts move to the closed totals; freed after RCU. */
void mw_stats_del(struct mw_ctx *ctx)
{
	int i;

	spin_lock(&mw_contexts_lock);
	list_del_rcu(&ctx->node);
	atomic64_add(ctx->total_events, &mw_closed_events);
	atomic64_add(ctx->overflows, &mw_closed_overflows);
	atomic64_add(ctx->skipped, &mw_closed_skipped);
	for (i = 0; i < MAPWATCH_REASON_COUNT; i++)
		atomic64_add(ctx->by_reason[i], &mw_closed_reasons[i]);
	for (i = 0; i < MAPWATCH_CAUSE_COUNT; i++) {
		atomic64_add(ctx->by_cause[i], &mw_closed_causes[i]);
		atomic64_add(ctx->skipped_by_cause[i],
			     &mw_closed_skipped_causes[i]);
	}
	spin_unlock(&mw_contexts_lock);
}

struct mw_totals {
	u64 contexts, regions, pending, events, overflows, skipped;
};

static void mw_sum(struct mw_totals *t)
{
	struct mw_ctx *ctx;

	memset(t, 0, sizeof(*t));
	rcu_read_lock();
	t->events = atomic64_read(&mw_closed_events);
	t->overflows = atomic64_read(&mw_closed_overflows);
	t->skipped = atomic64_read(&mw_closed_skipped);
	/*
	 * A snapshot without ctx->lock: any reader may look, so it must not
	 * contend with the notifier; each counter is read once, whole.
	 */
	list_for_each_entry_rcu(ctx, &mw_contexts, node) {
		t->contexts++;
		t->regions += READ_ONCE(ctx->nr_regions);
		t->pending += READ_ONCE(ctx->nr_queued) +
			      READ_ONCE(ctx->overflowed);
		t->events += READ_ONCE(ctx->total_events);
		t->overflows += READ_ONCE(ctx->overflows);
		t->skipped += READ_ONCE(ctx->skipped);
	}
	rcu_read_unlock();
}

/*
 * Regions retired by reason or by cause, or skipped invalidations by cause,
 * over live and closed contexts: one "NAME N" line each.  @what: 0
 * reasons, 1 causes, 2 skipped causes.
 */
static ssize_t mw_show_whys(char *buf, int what)
{
	int i, n = 0, count = what ? MAPWATCH_CAUSE_COUNT :
				     MAPWATCH_REASON_COUNT;
	atomic64_t *closed = what == 0 ? mw_closed_reasons :
			     what == 1 ? mw_closed_causes :
			     mw_closed_skipped_causes;
	u64 sum[MAPWATCH_CAUSE_COUNT];
	struct mw_ctx *ctx;

	BUILD_BUG_ON((int)MAPWATCH_REASON_COUNT > (int)MAPWATCH_CAUSE_COUNT);
	for (i = 0; i < count; i++)
		sum[i] = atomic64_read(&closed[i]);
	/* A snapshot without ctx->lock, as mw_sum(). */
	rcu_read_lock();
	list_for_each_entry_rcu(ctx, &mw_contexts, node) {
		const u64 *c = what == 0 ? ctx->by_reason :
			       what == 1 ? ctx->by_cause :
			       ctx->skipped_by_cause;

		for (i = 0; i < count; i++)
			sum[i] += READ_ONCE(c[i]);
	}
	rcu_read_unlock();
	for (i = 0; i < count; i++)
		n += sysfs_emit_at(buf, n, "%s %llu\n",
				   what ? mw_cause_name(i) : mw_reason_name(i),
				   sum[i]);
	return n;
}

static ssize_t reasons_show(struct kobject *kobj, struct kobj_attribute *attr,
			    char *buf)
{
	return mw_show_whys(buf, 0);
}
static struct kobj_attribute mw_attr_reasons = __ATTR_RO(reasons);

static ssize_t causes_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	return mw_show_whys(buf, 1);
}
static struct kobj_attribute mw_attr_causes = __ATTR_RO(causes);

static ssize_t skipped_causes_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	return mw_show_whys(buf, 2);
}
static struct kobj_attribute mw_attr_skipped_causes =
	__ATTR_RO(skipped_causes);

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

/*
 * The notifier events the default policy skips on this kernel, by name
 * (module/README.md: which ones, and why, differ by kernel).
 */
static ssize_t skipped_events_show(struct kobject *kobj,
				   struct kobj_attribute *attr, char *buf)
{
	static const struct {
		enum mmu_notifier_event event;
		const char *name;
	} ev[] = {
		{ MMU_NOTIFY_PROTECTION_VMA, "protection_vma" },
		{ MMU_NOTIFY_PROTECTION_PAGE, "protection_page" },
		{ MMU_NOTIFY_SOFT_DIRTY, "soft_dirty" },
	};
	int i, n = 0;

	for (i = 0; i < ARRAY_SIZE(ev); i++)
		if (mw_event_skipped(ev[i].event))
			n += sysfs_emit_at(buf, n, "%s%s", n ? " " : "",
					   ev[i].name);
	return n + sysfs_emit_at(buf, n, "\n");
}
static struct kobj_attribute mw_attr_skipped_events =
	__ATTR_RO(skipped_events);

static ssize_t max_hold_ns_show(struct kobject *kobj,
				struct kobj_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lld\n", atomic64_read(&mw_max_hold_ns));
}

/* Root writes 0 to start a new measurement. */
static ssize_t max_hold_ns_store(struct kobject *kobj,
				 struct kobj_attribute *attr, const char *buf,
				 size_t count)
{
	u64 v;
	int ret = kstrtou64(buf, 0, &v);

	if (ret)
		return ret;
	if (v)
		return -EINVAL;
	atomic64_set(&mw_max_hold_ns, 0);
	return count;
}
static struct kobj_attribute mw_attr_max_hold_ns = __ATTR_RW(max_hold_ns);

static struct attribute *mw_attrs[] = {
	&mw_attr_contexts.attr,
	&mw_attr_regions.attr,
	&mw_attr_pending.attr,
	&mw_attr_events.attr,
	&mw_attr_overflows.attr,
	&mw_attr_skipped.attr,
	&mw_attr_abi_version.attr,
	&mw_attr_skipped_events.attr,
	&mw_attr_max_hold_ns.attr,
	&mw_attr_reasons.attr,
	&mw_attr_causes.attr,
	&mw_attr_skipped_causes.attr,
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
	int i;

	spin_lock(&ctx->lock);
	/* As the reader's /proc numbers it (0: not in its namespace). */
	seq_printf(m, "mapwatch-owner-pid:\t%d\n",
		   pid_nr_ns(ctx->owner,
			     proc_pid_ns(file_inode(m->file)->i_sb)));
	seq_printf(m, "mapwatch-max-regions:\t%zu\n",
		   ctx->status ? ctx->status->max_regions : 0);
	seq_printf(m, "mapwatch-regions:\t%zu\n", ctx->nr_regions);
	seq_printf(m, "mapwatch-user-regions:\t%ld\n",
		   mw_user_regions(ctx->user));
	seq_printf(m, "mapwatch-user-memory:\t%ld\n",
		   mw_user_memory(ctx->user));
	seq_printf(m, "mapwatch-pending:\t%zu\n",
		   ctx->nr_queued + ctx->overflowed);
	seq_printf(m, "mapwatch-events:\t%llu\n", ctx->total_events);
	seq_printf(m, "mapwatch-overflows:\t%llu\n", ctx->overflows);
	seq_printf(m, "mapwatch-skipped:\t%llu\n", ctx->skipped);
	seq_printf(m, "mapwatch-monitors:\t%llu\n", ctx->nr_monitor);
	seq_printf(m, "mapwatch-unmonitors:\t%llu\n", ctx->nr_unmonitor);
	seq_printf(m, "mapwatch-policy:\t%#x\n", ctx->policy);
	/* Every name, in the order of the enums (mapwatch_uapi.h). */
	for (i = 0; i < MAPWATCH_REASON_COUNT; i++)
		seq_printf(m, "mapwatch-reason-%s:\t%llu\n",
			   mw_reason_name(i), ctx->by_reason[i]);
	for (i = 0; i < MAPWATCH_CAUSE_COUNT; i++)
		seq_printf(m, "mapwatch-cause-%s:\t%llu\n",
			   mw_cause_name(i), ctx->by_cause[i]);
	for (i = 0; i < MAPWATCH_CAUSE_COUNT; i++)
		seq_printf(m, "mapwatch-skipped-cause-%s:\t%llu\n",
			   mw_cause_name(i), ctx->skipped_by_cause[i]);
	spin_unlock(&ctx->lock);
}
