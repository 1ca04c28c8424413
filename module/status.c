// SPDX-License-Identifier: GPL-2.0-only
/*
 * The read-only status area: allocation, the user mapping made by
 * CONFIG_DATA, its retirement at close, and resizing.
 *
 * The kernel writes only through its own vmalloc view, so nothing user space
 * does to its mapping can feed a value back into the module.  The mapping is
 * built by faults (so MADV_DONTNEED just refaults the same page), cannot gain
 * write permission (VM_MAYWRITE is cleared), cannot be moved, grown or split.
 *
 * The mapping's file is an anonymous inode of its own that holds only the
 * status object, never the context: closing the device fd frees the context
 * at once, however many mappings (inherited by fork, say) remain.
 *
 * The module never unmaps user memory: no exported kernel call unmaps under
 * a lock held across the check that the range is still ours, so another
 * thread could have put its own memory there in between.  An area that its
 * context let go of (closed, resized, or a CONFIG_DATA that failed after
 * mapping it) stays mapped as a spare instead, every region it described
 * reading changed, and the next CONFIG_DATA in that mm that fits in it
 * takes it over at the same address.
 *
 * Whether an area is still mapped where it was is known without the mm's
 * lock: the mapping cannot move or split, so it ends only through its
 * ->close, which runs under that mm's mmap_lock and clears st->home.  So no
 * lookup ever waits for an mmap_lock, and a process whose own lock is
 * stalled cannot stall anybody else's CONFIG_DATA, close or exit.
 *
 * An area costs memory by its capacity, charged to its creator's
 * max_user_memory until it is freed (a spare keeps its charge), and one mm
 * keeps at most MW_MAX_SPARES spares: a CONFIG_DATA that would park one
 * more fails with ENOSPC.
 */
#include "mapwatch_priv.h"

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/hashtable.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <linux/spinlock.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "compat.h"

/* Bytes of the area for @max_regions (header, extension, state array). */
static size_t mw_status_size(size_t max_regions)
{
	return PAGE_ALIGN(MAPWATCH_STATE_ARRAY_OFFSET +
			  (max_regions + 1) * sizeof(u32));
}

/*
 * A new area of @size bytes, charged to @user.  Its state words start at
 * one random even value, so a (location, generation) pair from another fd
 * cannot match by chance; on a resize they continue @prev's (copied while
 * @prev has no region; mw_config() checks that none came and went during
 * the copy), so no pair taken before the resize matches either.
 */
static struct mw_status *mw_status_alloc(size_t size, struct mw_status *prev,
					 struct mw_user *user)
{
	size_t n = (size - MAPWATCH_STATE_ARRAY_OFFSET) / sizeof(u32), kept = 0;
	struct mw_status *st;

	if (!mw_user_charge_memory(user, size))
		return ERR_PTR(-ENOSPC);
	st = kzalloc(sizeof(*st), GFP_KERNEL_ACCOUNT);
	if (!st)
		goto err;
	/* The size is the caller's choice: failing is ENOMEM, not a splat. */
	st->vaddr = __vmalloc(size, MW_GFP_USER_MAPPED | __GFP_ZERO |
			      __GFP_NOWARN);
	if (!st->vaddr) {
		kfree(st);
		goto err;
	}
	refcount_set(&st->ref, 1);
	mw_user_hold(user);
	st->user = user;
	st->size = size;
	st->hdr = st->vaddr;
	st->ext = st->vaddr + MAPWATCH_STATUS_EXT_OFFSET;
	st->state = st->vaddr + MAPWATCH_STATE_ARRAY_OFFSET;
	st->hdr->version = MAPWATCH_ABI_VERSION;
	if (prev) {
		kept = min(n, prev->max_regions + 1);
		memcpy(st->state, prev->state, kept * sizeof(u32));
	}
	memset32(st->state + kept, get_random_u32() & ~1U, n - kept);
	st->ext->magic = MAPWATCH_STATUS_MAGIC;
	st->ext->abi_version = MAPWATCH_ABI_VERSION;
	return st;
err:
	mw_user_uncharge_memory(user, size);
	return ERR_PTR(-ENOMEM);
}

/*
 * Spare areas, hashed by the mm they were mapped in.  The lock is a leaf:
 * taken under an mmap_lock by ->close, never held across anything else.
 */
static DEFINE_HASHTABLE(mw_spares, 12);
static DEFINE_SPINLOCK(mw_spares_lock);

void mw_status_put(struct mw_status *st)
{
	if (st && refcount_dec_and_test(&st->ref)) {
		vfree(st->vaddr);
		mw_user_uncharge_memory(st->user, st->size);
		mw_user_release(st->user);
		kfree(st);
	}
}

static vm_fault_t mw_vma_fault(struct vm_fault *vmf)
{
	struct mw_status *st = vmf->vma->vm_private_data;
	unsigned long off = vmf->pgoff << PAGE_SHIFT;

	if (off >= st->size)
		return VM_FAULT_SIGBUS;
	vmf->page = vmalloc_to_page(st->vaddr + off);
	get_page(vmf->page);
	return 0;
}

/* Not its home any more: no spare lookup may hand this address out. */
static void mw_status_leave_home(struct mw_status *st)
{
	spin_lock(&mw_spares_lock);
	st->home = false;
	if (st->spare) {
		hash_del(&st->spare_node);
		st->spare = false;
	}
	spin_unlock(&mw_spares_lock);
}

/*
 * A mapping of the area goes (munmap, MAP_FIXED over it, exit), under its
 * mm's mmap_lock.  Copies inherited by fork live in other mms.
 */
static void mw_vma_close(struct vm_area_struct *vma)
{
	struct mw_status *st = vma->vm_private_data;

	if (vma->vm_mm == READ_ONCE(st->mm) &&
	    vma->vm_start == READ_ONCE(st->uaddr))
		mw_status_leave_home(st);
}

#ifdef MW_HAVE_VM_OPS_MREMAP_FLAGS
static int mw_vma_refuse(struct vm_area_struct *vma, unsigned long flags)
#else
static int mw_vma_refuse(struct vm_area_struct *vma)
#endif
{
	return -EINVAL;
}

static int mw_vma_refuse_split(struct vm_area_struct *vma, unsigned long addr)
{
	return -EINVAL;
}

static const struct vm_operations_struct mw_status_vm_ops = {
	.fault = mw_vma_fault,
	.close = mw_vma_close,
	.mremap = mw_vma_refuse,
	.MW_VM_OPS_MAY_SPLIT = mw_vma_refuse_split,
};

/*
 * Only the mapping CONFIG_DATA makes for itself is allowed.  Its place is
 * recorded here, under the mmap_lock that ->close also runs under.
 */
static int mw_status_file_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct mw_status *st = file->private_data;

	if (READ_ONCE(st->mapper) != current)
		return -EPERM;
	if (vma->vm_pgoff || vma->vm_end - vma->vm_start != st->size ||
	    (vma->vm_flags & VM_WRITE) || !(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	/* Never executable: READ_IMPLIES_EXEC would have added VM_EXEC. */
	mw_vm_flags_mod(vma, VM_DONTEXPAND | VM_DONTDUMP,
			VM_MAYWRITE | VM_EXEC | VM_MAYEXEC);
	vma->vm_ops = &mw_status_vm_ops;
	vma->vm_private_data = st;
	spin_lock(&mw_spares_lock);
	WRITE_ONCE(st->mm, vma->vm_mm);
	WRITE_ONCE(st->uaddr, vma->vm_start);
	st->home = true;
	spin_unlock(&mw_spares_lock);
	return 0;
}

/* The last mapping of the area is gone (the file had no fd). */
static int mw_status_file_release(struct inode *inode, struct file *file)
{
	struct mw_status *st = file->private_data;

	mw_status_leave_home(st);
	mw_status_put(st);
	return 0;
}

static const struct file_operations mw_status_fops = {
	.owner = THIS_MODULE,
	.mmap = mw_status_file_mmap,
	.release = mw_status_file_release,
	.llseek = noop_llseek,
};

/*
 * Map @st read-only into the caller's address space; its anonymous file
 * holds a reference to @st for as long as any mapping of it exists.
 */
static long mw_status_map(struct mw_status *st)
{
	struct file *file;
	unsigned long uaddr;

	file = anon_inode_getfile("[mapwatch-status]", &mw_status_fops, st,
				  O_RDONLY);
	if (IS_ERR(file))
		return PTR_ERR(file);
	refcount_inc(&st->ref);
	WRITE_ONCE(st->mapper, current);
	uaddr = vm_mmap(file, 0, st->size, PROT_READ, MAP_SHARED, 0);
	WRITE_ONCE(st->mapper, NULL);
	fput(file);
	if (IS_ERR_VALUE(uaddr)) {
		/* ->mmap may have run before the failure. */
		mw_status_leave_home(st);
		return (long)uaddr;
	}
	st->hdr->monitoring_state_base =
		(void __user *)(uaddr + MAPWATCH_STATE_ARRAY_OFFSET);
	return 0;
}

/* Is @st mapped whole where it was mapped, in @mm?  Takes no mm lock. */
static bool mw_status_mapped_in(struct mw_status *st, struct mm_struct *mm)
{
	bool ours;

	spin_lock(&mw_spares_lock);
	ours = st->home && st->mm == mm;
	spin_unlock(&mw_spares_lock);
	return ours;
}

/* Spares of @mm.  Caller holds mw_spares_lock. */
static unsigned int mw_spares_of(struct mm_struct *mm)
{
	struct mw_status *st;
	unsigned int n = 0;

	hash_for_each_possible(mw_spares, st, spare_node, (unsigned long)mm)
		n += st->mm == mm;
	return n;
}

/*
 * The context let go of @st: keep it as a spare if it is still mapped where
 * it was, and its mm has fewer than MW_MAX_SPARES.  Its regions' words were
 * all moved on; nothing of the context stays in it.  An area past the cap
 * stays mapped (and charged) but is never reused.
 */
void mw_status_park(struct mw_status *st)
{
	if (!st)
		return;
	spin_lock(&mw_spares_lock);
	if (st->home && !st->spare && mw_spares_of(st->mm) < MW_MAX_SPARES) {
		hash_add(mw_spares, &st->spare_node, (unsigned long)st->mm);
		st->spare = true;
	}
	spin_unlock(&mw_spares_lock);
}

/*
 * An area of at least @size bytes already mapped in the caller's mm, with a
 * reference for the caller: @own (the context's current one) if it fits,
 * else a spare, taken out of the spares.  NULL if none.
 */
static struct mw_status *mw_status_reuse(struct mw_status *own, size_t size)
{
	struct mm_struct *mm = current->mm;
	struct mw_status *st, *found = NULL;

	if (own && own->size >= size && mw_status_mapped_in(own, mm)) {
		refcount_inc(&own->ref);
		return own;
	}
	spin_lock(&mw_spares_lock);
	hash_for_each_possible(mw_spares, st, spare_node, (unsigned long)mm) {
		if (st->mm != mm || st->size < size || !st->home)
			continue;
		hash_del(&st->spare_node);
		st->spare = false;
		refcount_inc(&st->ref);
		found = st;
		break;
	}
	spin_unlock(&mw_spares_lock);
	return found;
}

/* Would letting go of @own now park one spare too many in this mm? */
static bool mw_spares_full(struct mw_status *own)
{
	struct mm_struct *mm = current->mm;
	bool full;

	spin_lock(&mw_spares_lock);
	full = own && own->home && own->mm == mm &&
	       mw_spares_of(mm) >= MW_MAX_SPARES;
	spin_unlock(&mw_spares_lock);
	return full;
}

/* Regions there, or events to read: the context cannot change its area. */
static bool mw_busy(struct mw_ctx *ctx)
{
	return ctx->nr_regions || ctx->nr_queued || ctx->overflowed;
}

long mw_config(struct mw_ctx *ctx, struct kdreg2_config_data __user *uarg)
{
	struct kdreg2_config_data cfg;
	struct mw_status *st, *old;
	u32 *slots = NULL, *old_slots;
	size_t size, ring, old_ring;
	u64 seq;
	bool busy;
	long ret;

	if (copy_from_user(&cfg, uarg, sizeof(cfg)))
		return -EFAULT;
	/* Fail on an unwritable argument before anything changes. */
	if (copy_to_user(uarg, &cfg, sizeof(cfg)))
		return -EFAULT;
	if (cfg.max_regions > mw_max_regions_limit)
		return -ENOSPC;
	size = mw_status_size(cfg.max_regions);
	ring = mw_index_bytes(cfg.max_regions);

	/* Only this process's threads wait here, and they can be killed. */
	if (mutex_lock_killable(&ctx->mutex))
		return -EINTR;
	ret = mw_mm_attach(ctx);
	if (ret)
		goto out_unlock;
	/* kdreg2: the size it already has is no change, busy or not. */
	if (ctx->status && ctx->status->max_regions == cfg.max_regions &&
	    mw_status_mapped_in(ctx->status, current->mm)) {
		cfg.status_data = (void __user *)ctx->status->uaddr;
		ret = copy_to_user(uarg, &cfg, sizeof(cfg)) ? -EFAULT : 0;
		goto out_unlock;
	}
	spin_lock(&ctx->lock);
	busy = mw_busy(ctx);
	seq = ctx->nr_monitor;
	spin_unlock(&ctx->lock);
	ret = -EBUSY;
	if (busy)
		goto out_unlock;

	ret = -ENOSPC;
	if (!mw_user_charge_memory(ctx->user, ring))
		goto out_unlock;
	ret = -ENOMEM;
	if (cfg.max_regions) {
		slots = mw_index_alloc(cfg.max_regions);
		if (!slots)
			goto out_ring;
	}

	st = mw_status_reuse(ctx->status, size);
	if (!st) {
		ret = -ENOSPC;
		if (mw_spares_full(ctx->status))
			goto out_slots;
		st = mw_status_alloc(size, ctx->status, ctx->user);
		if (IS_ERR(st)) {
			ret = PTR_ERR(st);
			goto out_slots;
		}
		ret = mw_status_map(st);
		if (ret)
			goto out_put;
	}
	cfg.status_data = (void __user *)st->uaddr;
	ret = -EFAULT;
	if (copy_to_user(uarg, &cfg, sizeof(cfg)))
		goto out_park;

	spin_lock(&ctx->lock);
	/*
	 * MONITOR does not take ctx->mutex: look again under the lock.  A
	 * region that came and went since the first look moved words that
	 * the new area may have copied before it moved them.
	 */
	if (mw_busy(ctx) || ctx->nr_monitor != seq) {
		spin_unlock(&ctx->lock);
		ret = -EBUSY;
		goto out_park;
	}
	old = ctx->status;
	old_slots = ctx->free_slots;
	old_ring = ctx->ring_bytes;
	st->max_regions = cfg.max_regions;
	st->hdr->max_regions = cfg.max_regions;
	ctx->status = st;
	mw_index_install(ctx, slots, cfg.max_regions);
	ctx->ring_bytes = ring;
	mw_publish_counters(ctx);
	spin_unlock(&ctx->lock);

	if (old != st)
		mw_status_park(old);
	mw_status_put(old);
	kvfree(old_slots);
	mw_user_uncharge_memory(ctx->user, old_ring);
	mutex_unlock(&ctx->mutex);
	return 0;

out_park:
	if (st != ctx->status)
		mw_status_park(st);
out_put:
	mw_status_put(st);
out_slots:
	kvfree(slots);
out_ring:
	mw_user_uncharge_memory(ctx->user, ring);
out_unlock:
	mutex_unlock(&ctx->mutex);
	return ret;
}
