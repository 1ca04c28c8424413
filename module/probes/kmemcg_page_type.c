// SPDX-License-Identifier: GPL-2.0-only
/*
 * MW_HAVE_KMEMCG_PAGE_TYPE: a page charged to a memory cgroup is marked
 * with a page type kept in its _mapcount (PageKmemcg, up to 5.10).  Such a
 * page must not be mapped into a process: the mapping's count lands on the
 * type ("BUG: Bad page map" at unmap).  There the status area, which user
 * space maps, is not charged.
 */
#include <linux/mm.h>
#include <linux/page-flags.h>

int mw_probe(struct page *page);
int mw_probe(struct page *page)
{
	return PageKmemcg(page);
}
