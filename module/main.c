// SPDX-License-Identifier: GPL-2.0-only
/*
 * mapwatch: tells RDMA registration caches the moment memory they registered
 * changes its virtual-to-physical translation.  Serves the kdreg2 user ABI on
 * /dev/mapwatch and, when the name is free, /dev/kdreg2.
 */
#include "mapwatch_priv.h"

#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>

/*
 * Every parameter writable at run time is bounded: a write outside its
 * range fails with EINVAL and changes nothing.
 */
struct mw_bounded {
	unsigned long *val;
	unsigned long max;
};

static int mw_param_set(const char *buf, const struct kernel_param *kp)
{
	const struct mw_bounded *b = kp->arg;
	unsigned long v;
	int ret;

	ret = kstrtoul(buf, 0, &v);
	if (ret)
		return ret;
	if (v > b->max)
		return -EINVAL;
	WRITE_ONCE(*b->val, v);
	return 0;
}

static int mw_param_get(char *buf, const struct kernel_param *kp)
{
	const struct mw_bounded *b = kp->arg;

	return scnprintf(buf, PAGE_SIZE, "%lu\n", READ_ONCE(*b->val));
}

static const struct kernel_param_ops mw_bounded_ops = {
	.set = mw_param_set,
	.get = mw_param_get,
};

#define MW_BOUNDED_PARAM(name, var, bound)				\
	static struct mw_bounded mw_bound_##name = {		\
		.val = &(var), .max = (bound) };			\
	module_param_cb(name, &mw_bounded_ops, &mw_bound_##name, 0644)

unsigned long mw_max_regions_limit = 1UL << 22;
MW_BOUNDED_PARAM(max_regions_limit, mw_max_regions_limit, 1UL << 26);
MODULE_PARM_DESC(max_regions_limit,
		 "Largest max_regions CONFIG_DATA accepts per fd (ENOSPC above; default 4194304, at most 67108864)");

unsigned long mw_max_pending_events = 1UL << 20;
MW_BOUNDED_PARAM(max_pending_events, mw_max_pending_events, 1UL << 24);
MODULE_PARM_DESC(max_pending_events,
		 "Unread events kept per fd before further ones are folded into one covering event (default 1048576, at most 16777216)");

unsigned long mw_max_user_regions = 1UL << 20;
MW_BOUNDED_PARAM(max_user_regions, mw_max_user_regions, 1UL << 30);
MODULE_PARM_DESC(max_user_regions,
		 "Regions one user may have monitored, plus retired regions whose events are unread, over all its fds (MONITOR folds unread events, then gives ENOSPC above; default 1048576, at most 1073741824)");

/* ~0: not given at load; mw_init() makes it 1/32 of RAM. */
unsigned long mw_max_user_memory = ~0UL;
MW_BOUNDED_PARAM(max_user_memory, mw_max_user_memory, LONG_MAX);
MODULE_PARM_DESC(max_user_memory,
		 "Bytes of status areas (live and spare) and slot rings one user may make the module hold, both sized by CONFIG_DATA's max_regions (CONFIG_DATA gives ENOSPC above; default 1/32 of RAM)");

unsigned long mw_max_user_contexts = 1024;
MW_BOUNDED_PARAM(max_user_contexts, mw_max_user_contexts, 1UL << 20);
MODULE_PARM_DESC(max_user_contexts,
		 "Open fds (contexts) one user may have (open gives EMFILE above; default 1024, at most 1048576)");

static bool mw_kdreg2_alias = true;
module_param_named(kdreg2_alias, mw_kdreg2_alias, bool, 0444);
MODULE_PARM_DESC(kdreg2_alias,
		 "Also register /dev/kdreg2 when that name is free (default Y)");

/*
 * Plain kdreg2, for testing clients against it: only /dev/kdreg2, and no
 * extension ioctl (ENOTTY, PROBE included), as HPE's module answers.
 */
bool mw_kdreg2_only;
module_param_named(kdreg2_only, mw_kdreg2_only, bool, 0444);
MODULE_PARM_DESC(kdreg2_only,
		 "Serve plain kdreg2 only: /dev/kdreg2 without /dev/mapwatch, extension ioctls answer ENOTTY (default N; for tests)");

static struct miscdevice mw_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "mapwatch",
	.fops = &mw_fops,
	.mode = 0666,
};

static struct miscdevice mw_kdreg2_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "kdreg2",
	.fops = &mw_fops,
	.mode = 0666,
};

static bool mw_kdreg2_registered, mw_dev_registered;

static int __init mw_init(void)
{
	int ret;

	if (mw_max_user_memory == ~0UL)
		mw_max_user_memory = (totalram_pages() << PAGE_SHIFT) / 32;
	ret = mw_region_cache_init();
	if (ret)
		return ret;
	ret = mw_stats_init();
	if (ret)
		goto err_cache;
	if (mw_kdreg2_only) {
		ret = misc_register(&mw_kdreg2_dev);
		if (ret)
			goto err_stats;
		mw_kdreg2_registered = true;
		return 0;
	}
	ret = misc_register(&mw_dev);
	if (ret)
		goto err_stats;
	mw_dev_registered = true;
	if (mw_kdreg2_alias) {
		ret = misc_register(&mw_kdreg2_dev);
		if (ret)
			pr_info("/dev/kdreg2 not registered (error %d): serving /dev/mapwatch only\n",
				ret);
		else
			mw_kdreg2_registered = true;
	}
	return 0;

err_stats:
	mw_stats_exit();
err_cache:
	mw_region_cache_exit();
	return ret;
}

static void __exit mw_exit(void)
{
	if (mw_kdreg2_registered)
		misc_deregister(&mw_kdreg2_dev);
	if (mw_dev_registered)
		misc_deregister(&mw_dev);
	mw_stats_exit();
	mw_mm_exit();
	mw_region_cache_exit();
}

module_init(mw_init);
module_exit(mw_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Synchronous memory-mapping change notification for RDMA registration caches (kdreg2-compatible)");
MODULE_AUTHOR("The mapwatch developers");
MODULE_VERSION("1.4.0");
