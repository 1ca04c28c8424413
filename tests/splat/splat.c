// SPDX-License-Identifier: GPL-2.0-only
/*
 * A deliberately broken module for the runner's self-test: loaded with
 * warn=1 it fires a WARN_ON, which vm/run must report as a failure.
 */
#include <linux/module.h>

static bool warn;
module_param(warn, bool, 0444);
MODULE_PARM_DESC(warn, "Fire a WARN_ON at load time");

static int __init splat_init(void)
{
	WARN_ON(warn);
	return 0;
}

static void __exit splat_exit(void)
{
}

module_init(splat_init);
module_exit(splat_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("mapwatch test-runner self-test: a module that warns on purpose");
