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
 */
#include "mapwatch.h"

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "compat.h"

struct mw_status *mw_status_alloc(size_t max_regions)
{
	struct mw_status *st;
	size_t size;

	size = PAGE_ALIGN(MAPWATCH_STATE_ARRAY_OFFSET +
			  (max_regions + 1) * sizeof(u32));
	st = kzalloc(sizeof(*st), GFP_KERNEL_ACCOUNT);
	if (!st)
		return NULL;
	/* The size is the caller's choice: failing is ENOMEM, not a splat. */
	st->vaddr = __vmalloc(size, GFP_KERNEL_ACCOUNT | __GFP_ZERO |
			      __GFP_NOWARN);
	if (!st->vaddr) {
		kfree(st);
		return NULL;
	}
	refcount_set(&st->ref, 1);
	st->size = size;
	st->max_regions = max_regions;
	st->hdr = st->vaddr;
	st->ext = st->vaddr + MAPWATCH_STATUS_EXT_OFFSET;
	st->state = st->vaddr + MAPWATCH_STATE_ARRAY_OFFSET;
	st->hdr->version = MAPWATCH_ABI_VERSION;
	st->hdr->max_regions = max_regions;
	st->ext->magic = MAPWATCH_STATUS_MAGIC;
	st->ext->abi_version = MAPWATCH_ABI_VERSION;
	return st;
}

void mw_status_put(struct mw_status *st)
{
	if (st && refcount_dec_and_test(&st->ref)) {
		vfree(st->vaddr);
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

static int mw_vma_refuse(struct vm_area_struct *vma)
{
	return -EINVAL;
}

static int mw_vma_refuse_split(struct vm_area_struct *vma, unsigned long addr)
{
	return -EINVAL;
}

static const struct vm_operations_struct mw_status_vm_ops = {
	.fault = mw_vma_fault,
	.mremap = mw_vma_refuse,
	.may_split = mw_vma_refuse_split,
};

/* Only the mapping CONFIG_DATA makes for itself is allowed. */
static int mw_status_file_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct mw_status *st = file->private_data;

	if (READ_ONCE(st->mapper) != current)
		return -EPERM;
	if (vma->vm_pgoff || vma->vm_end - vma->vm_start != st->size ||
	    (vma->vm_flags & (VM_WRITE | VM_EXEC)) ||
	    !(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	mw_vm_flags_mod(vma, VM_DONTEXPAND | VM_DONTDUMP,
			VM_MAYWRITE | VM_MAYEXEC);
	vma->vm_ops = &mw_status_vm_ops;
	vma->vm_private_data = st;
	return 0;
}

/* The last mapping of the area is gone (the file had no fd). */
static int mw_status_file_release(struct inode *inode, struct file *file)
{
	mw_status_put(file->private_data);
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
static unsigned long mw_status_map(struct mw_status *st)
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
	return uaddr;
}

/* Unmap the previous status area if it is still where CONFIG_DATA put it. */
static void mw_unmap_old(struct mw_ctx *ctx, struct mw_status *old,
			 unsigned long uaddr)
{
	struct vm_area_struct *vma;
	bool ours;

	if (!old || !uaddr)
		return;
	mmap_read_lock(ctx->mm);
	vma = vma_lookup(ctx->mm, uaddr);
	ours = vma && vma->vm_start == uaddr &&
	       vma->vm_ops == &mw_status_vm_ops && vma->vm_private_data == old;
	mmap_read_unlock(ctx->mm);
	if (ours)
		vm_munmap(uaddr, old->size);
}

long mw_config(struct mw_ctx *ctx, struct kdreg2_config_data __user *uarg)
{
	struct kdreg2_config_data cfg;
	struct mw_status *st, *old;
	unsigned long uaddr, old_uaddr;
	u32 *slots = NULL, *old_slots;
	size_t i;
	bool busy;
	long ret;

	if (copy_from_user(&cfg, uarg, sizeof(cfg)))
		return -EFAULT;
	/* Fail on an unwritable argument before anything changes. */
	if (copy_to_user(uarg, &cfg, sizeof(cfg)))
		return -EFAULT;
	if (cfg.max_regions > mw_max_regions_limit)
		return -ENOSPC;

	mutex_lock(&ctx->mutex);
	spin_lock(&ctx->lock);
	busy = ctx->nr_regions || ctx->nr_queued || ctx->overflowed;
	spin_unlock(&ctx->lock);
	ret = -EBUSY;
	if (busy)
		goto out_unlock;

	ret = -ENOMEM;
	st = mw_status_alloc(cfg.max_regions);
	if (!st)
		goto out_unlock;
	if (cfg.max_regions) {
		slots = kvmalloc_array(cfg.max_regions, sizeof(*slots),
				       GFP_KERNEL_ACCOUNT | __GFP_NOWARN);
		if (!slots)
			goto out_put;
		/* Hand out low slot numbers first. */
		for (i = 0; i < cfg.max_regions; i++)
			slots[i] = cfg.max_regions - 1 - i;
	}

	uaddr = mw_status_map(st);
	if (IS_ERR_VALUE(uaddr)) {
		ret = (long)uaddr;
		goto out_slots;
	}
	st->hdr->monitoring_state_base =
		(void __user *)(uaddr + MAPWATCH_STATE_ARRAY_OFFSET);
	cfg.status_data = (void __user *)uaddr;
	if (copy_to_user(uarg, &cfg, sizeof(cfg))) {
		vm_munmap(uaddr, st->size);
		ret = -EFAULT;
		goto out_slots;
	}

	spin_lock(&ctx->lock);
	/* MONITOR does not take ctx->mutex: look again under the lock. */
	if (ctx->nr_regions || ctx->nr_queued || ctx->overflowed) {
		spin_unlock(&ctx->lock);
		vm_munmap(uaddr, st->size);
		ret = -EBUSY;
		goto out_slots;
	}
	old = ctx->status;
	old_slots = ctx->free_slots;
	ctx->status = st;
	ctx->free_slots = slots;
	ctx->nr_free = cfg.max_regions;
	old_uaddr = ctx->status_uaddr;
	ctx->status_uaddr = uaddr;
	mw_publish_counters(ctx);
	spin_unlock(&ctx->lock);

	mw_unmap_old(ctx, old, old_uaddr);
	mw_status_put(old);
	kvfree(old_slots);
	mutex_unlock(&ctx->mutex);
	return 0;

out_slots:
	kvfree(slots);
out_put:
	mw_status_put(st);
out_unlock:
	mutex_unlock(&ctx->mutex);
	return ret;
}
