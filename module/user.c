// SPDX-License-Identifier: GPL-2.0-only
/*
 * The per-user budget of monitored regions.  The device is open to every
 * user and each fd has its own limits, so without it one user could hold
 * max_regions_limit regions per fd times RLIMIT_NOFILE.  Like inotify's
 * max_user_watches, but counted here: the kernel's ucounts helpers are not
 * exported to modules.  A context charges the user who opened it (real
 * uid) at MONITOR and gives the charge back when the region is retired,
 * unmonitored or freed at close.
 */
#include "mapwatch_priv.h"

#include <linux/cred.h>
#include <linux/hashtable.h>
#include <linux/slab.h>

struct mw_user {
	struct hlist_node node;
	kuid_t uid;
	refcount_t ref;			/* contexts charging this user */
	atomic_long_t regions;
};

static DEFINE_HASHTABLE(mw_users, 6);
static DEFINE_MUTEX(mw_users_lock);

struct mw_user *mw_user_get(void)
{
	kuid_t uid = current_uid();
	struct mw_user *u;

	mutex_lock(&mw_users_lock);
	hash_for_each_possible(mw_users, u, node, __kuid_val(uid))
		if (uid_eq(u->uid, uid)) {
			refcount_inc(&u->ref);
			goto out;
		}
	u = kzalloc(sizeof(*u), GFP_KERNEL);
	if (u) {
		u->uid = uid;
		refcount_set(&u->ref, 1);
		atomic_long_set(&u->regions, 0);
		hash_add(mw_users, &u->node, __kuid_val(uid));
	}
out:
	mutex_unlock(&mw_users_lock);
	return u;
}

void mw_user_put(struct mw_user *u)
{
	mutex_lock(&mw_users_lock);
	if (refcount_dec_and_test(&u->ref)) {
		WARN_ON_ONCE(atomic_long_read(&u->regions));
		hash_del(&u->node);
		kfree(u);
	}
	mutex_unlock(&mw_users_lock);
}

/* Charge one region; false if the user is at the budget.  Never sleeps. */
bool mw_user_charge(struct mw_user *u)
{
	long max = min_t(unsigned long, READ_ONCE(mw_max_user_regions),
			 LONG_MAX);

	if (atomic_long_inc_return(&u->regions) <= max)
		return true;
	atomic_long_dec(&u->regions);
	return false;
}

void mw_user_uncharge(struct mw_user *u, long n)
{
	atomic_long_sub(n, &u->regions);
}

long mw_user_regions(struct mw_user *u)
{
	return atomic_long_read(&u->regions);
}
