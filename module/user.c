// SPDX-License-Identifier: GPL-2.0-only
/*
 * What one user may make the module hold.  The device is open to every user
 * and each fd has its own limits, so without these one user could hold a
 * per-fd limit times RLIMIT_NOFILE.  Three budgets, each a module parameter:
 *
 *   max_user_regions   regions monitored plus regions retired whose event
 *                      is still unread (MONITOR: ENOSPC)
 *   max_user_memory    bytes of status areas (live and spare), slot
 *                      rings and cookie hashes, all sized by capacity
 *                      (CONFIG_DATA: ENOSPC)
 *   max_user_contexts  open fds (open: EMFILE)
 *
 * A user is a (user namespace, uid) pair, charged up the namespace chain the
 * way the kernel's ucounts are (inc_ucount() is not exported to modules):
 * every charge to a user in a namespace is also a charge to the namespace's
 * owner in its parent, each level checked against the same budget.  So a
 * user who maps a range of subordinate uids into a namespace still has one
 * budget, not one per uid.  The chain stops below a namespace that root
 * owns: containers an admin makes (a runtime's user namespaces, all owned by
 * root) are tenants of their own, not charges to root's one budget.
 */
#include "mapwatch_priv.h"

#include <linux/cred.h>
#include <linux/hashtable.h>
#include <linux/slab.h>
#include <linux/user_namespace.h>

static DEFINE_HASHTABLE(mw_users, 6);
/* Guards the hash and the reference counts; held for no sleeping call. */
static DEFINE_SPINLOCK(mw_users_lock);

static unsigned long mw_user_hash(struct user_namespace *ns, kuid_t uid)
{
	return (unsigned long)ns ^ __kuid_val(uid);
}

static void mw_user_free(struct mw_user *u)
{
	while (u) {
		struct mw_user *parent = u->parent;
		bool last;

		spin_lock(&mw_users_lock);
		last = refcount_dec_and_test(&u->ref);
		if (last)
			hash_del(&u->node);
		spin_unlock(&mw_users_lock);
		if (!last)
			return;
		WARN_ON_ONCE(atomic_long_read(&u->regions) ||
			     atomic_long_read(&u->memory) ||
			     atomic_long_read(&u->contexts) ||
			     atomic_long_read(&u->unread));
		put_user_ns(u->ns);
		kfree(u);
		u = parent;
	}
}

/* The entry of (@ns, @uid) with its ancestors, referenced; NULL: ENOMEM. */
static struct mw_user *mw_user_lookup(struct user_namespace *ns, kuid_t uid)
{
	unsigned long key = mw_user_hash(ns, uid);
	struct mw_user *u, *new, *parent = NULL;

	spin_lock(&mw_users_lock);
	hash_for_each_possible(mw_users, u, node, key)
		if (u->ns == ns && uid_eq(u->uid, uid)) {
			refcount_inc(&u->ref);
			spin_unlock(&mw_users_lock);
			return u;
		}
	spin_unlock(&mw_users_lock);

	if (ns != &init_user_ns && !uid_eq(ns->owner, GLOBAL_ROOT_UID)) {
		parent = mw_user_lookup(ns->parent, ns->owner);
		if (!parent)
			return NULL;
	}
	new = kzalloc(sizeof(*new), GFP_KERNEL_ACCOUNT);
	if (!new) {
		mw_user_free(parent);
		return NULL;
	}
	new->ns = get_user_ns(ns);
	new->uid = uid;
	new->parent = parent;
	refcount_set(&new->ref, 1);
	spin_lock_init(&new->ctxs_lock);
	INIT_LIST_HEAD(&new->ctxs);

	/* Another open may have made it meanwhile: use the first. */
	spin_lock(&mw_users_lock);
	hash_for_each_possible(mw_users, u, node, key)
		if (u->ns == ns && uid_eq(u->uid, uid)) {
			refcount_inc(&u->ref);
			spin_unlock(&mw_users_lock);
			put_user_ns(new->ns);
			kfree(new);
			mw_user_free(parent);
			return u;
		}
	hash_add(mw_users, &new->node, key);
	spin_unlock(&mw_users_lock);
	return new;
}

/* Add @n to *@c unless that passes @lim; never above it, even briefly. */
static bool mw_add_below(atomic_long_t *c, long n, long lim)
{
	long old = atomic_long_read(c);

	do {
		if (n > lim - old)
			return false;
	} while (!atomic_long_try_cmpxchg(c, &old, old + n));
	return true;
}

/* Add @n to @field of @u and its ancestors; false (nothing added) past @max. */
static bool mw_charge(struct mw_user *u, size_t field, long n,
		      unsigned long max)
{
	long lim = min_t(unsigned long, max, LONG_MAX);
	struct mw_user *v;

	for (v = u; v; v = v->parent)
		if (!mw_add_below((void *)v + field, n, lim))
			goto undo;
	return true;
undo:
	for (; u != v; u = u->parent)
		atomic_long_sub(n, (atomic_long_t *)((void *)u + field));
	return false;
}

static void mw_uncharge(struct mw_user *u, size_t field, long n)
{
	for (; u; u = u->parent)
		atomic_long_sub(n, (atomic_long_t *)((void *)u + field));
}

/* The caller's user, charged one context; ERR_PTR(-EMFILE) past the budget. */
struct mw_user *mw_user_get(void)
{
	struct mw_user *u = mw_user_lookup(current_user_ns(), current_uid());

	if (!u)
		return ERR_PTR(-ENOMEM);
	if (!mw_charge(u, offsetof(struct mw_user, contexts), 1,
		       READ_ONCE(mw_max_user_contexts))) {
		mw_user_free(u);
		return ERR_PTR(-EMFILE);
	}
	return u;
}

/* Give back the context charge of mw_user_get() and the reference. */
void mw_user_put(struct mw_user *u)
{
	mw_uncharge(u, offsetof(struct mw_user, contexts), 1);
	mw_user_free(u);
}

/* A reference for an object that outlives its context (a status area). */
void mw_user_hold(struct mw_user *u)
{
	refcount_inc(&u->ref);
}

void mw_user_release(struct mw_user *u)
{
	mw_user_free(u);
}

/* Charge @n regions; false (none charged) past the budget.  Never sleeps. */
bool mw_user_charge(struct mw_user *u, long n)
{
	return mw_charge(u, offsetof(struct mw_user, regions), n,
			 READ_ONCE(mw_max_user_regions));
}

void mw_user_uncharge(struct mw_user *u, long n)
{
	if (n)
		mw_uncharge(u, offsetof(struct mw_user, regions), n);
}

/* Charge @bytes of capacity-sized memory; false past max_user_memory. */
bool mw_user_charge_memory(struct mw_user *u, size_t bytes)
{
	return mw_charge(u, offsetof(struct mw_user, memory), bytes,
			 READ_ONCE(mw_max_user_memory));
}

void mw_user_uncharge_memory(struct mw_user *u, size_t bytes)
{
	if (bytes)
		mw_uncharge(u, offsetof(struct mw_user, memory), bytes);
}

long mw_user_regions(struct mw_user *u)
{
	return atomic_long_read(&u->regions);
}

long mw_user_memory(struct mw_user *u)
{
	return atomic_long_read(&u->memory);
}

/* The user's contexts, for mw_user_fold(). */
void mw_user_add_ctx(struct mw_user *u, struct mw_ctx *ctx)
{
	spin_lock(&u->ctxs_lock);
	list_add_tail(&ctx->user_node, &u->ctxs);
	spin_unlock(&u->ctxs_lock);
}

void mw_user_del_ctx(struct mw_user *u, struct mw_ctx *ctx)
{
	spin_lock(&u->ctxs_lock);
	list_del(&ctx->user_node);
	spin_unlock(&u->ctxs_lock);
}

/* Records of @u's contexts (this level) queued unread: +@n or -@n. */
void mw_user_unread(struct mw_user *u, long n)
{
	atomic_long_add(n, &u->unread);
}

/*
 * The user is at max_user_regions: fold the unread events of its contexts,
 * at its level and each level it is charged to, into their covering
 * records, which frees them and gives their charge back (the state words,
 * not the events, are the truth).  A context whose reader is busy is
 * skipped rather than waited for; a level with nothing unread is not
 * walked.  Returns how many were folded.
 */
long mw_user_fold(struct mw_user *u)
{
	struct mw_user *v;
	struct mw_ctx *ctx;
	long n = 0;

	for (v = u; v; v = v->parent) {
		LIST_HEAD(dead);

		if (atomic_long_read(&v->unread) <= 0)
			continue;
		spin_lock(&v->ctxs_lock);
		list_for_each_entry(ctx, &v->ctxs, user_node)
			mw_fold_events(ctx, &dead);
		spin_unlock(&v->ctxs_lock);
		n += mw_free_records(v, &dead);
	}
	return n;
}
