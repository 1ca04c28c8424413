/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * mapwatch tracepoints: enable them under
 * /sys/kernel/tracing/events/mapwatch/.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM mapwatch

#if !defined(MAPWATCH_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define MAPWATCH_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(mapwatch_monitor,
	TP_PROTO(unsigned long start, unsigned long last, u64 cookie, u32 slot,
		 int ret),
	TP_ARGS(start, last, cookie, slot, ret),
	TP_STRUCT__entry(
		__field(unsigned long, start)
		__field(unsigned long, last)
		__field(u64, cookie)
		__field(u32, slot)
		__field(int, ret)
	),
	TP_fast_assign(
		__entry->start = start;
		__entry->last = last;
		__entry->cookie = cookie;
		__entry->slot = slot;
		__entry->ret = ret;
	),
	TP_printk("range=%#lx-%#lx cookie=%#llx slot=%u ret=%d",
		  __entry->start, __entry->last, __entry->cookie,
		  __entry->slot, __entry->ret)
);

TRACE_EVENT(mapwatch_unmonitor,
	TP_PROTO(u64 cookie, u64 location, int ret),
	TP_ARGS(cookie, location, ret),
	TP_STRUCT__entry(
		__field(u64, cookie)
		__field(u64, location)
		__field(int, ret)
	),
	TP_fast_assign(
		__entry->cookie = cookie;
		__entry->location = location;
		__entry->ret = ret;
	),
	TP_printk("cookie=%#llx location=%llu ret=%d",
		  __entry->cookie, __entry->location, __entry->ret)
);

/*
 * One record per batch of retired regions (or per skipped invalidation):
 * why they changed (reason.c) by name, as /proc/PID/fdinfo prints it.
 */
#define MW_TRACE_NAME_LEN 12

TRACE_EVENT(mapwatch_invalidate,
	TP_PROTO(unsigned long start, unsigned long end, int event,
		 bool skipped, unsigned int retired, u32 why),
	TP_ARGS(start, end, event, skipped, retired, why),
	TP_STRUCT__entry(
		__field(unsigned long, start)
		__field(unsigned long, end)
		__field(int, event)
		__field(bool, skipped)
		__field(unsigned int, retired)
		__field(u32, why)
		__array(char, reason, MW_TRACE_NAME_LEN)
		__array(char, cause, MW_TRACE_NAME_LEN)
	),
	TP_fast_assign(
		__entry->start = start;
		__entry->end = end;
		__entry->event = event;
		__entry->skipped = skipped;
		__entry->retired = retired;
		__entry->why = why;
		strscpy(__entry->reason, mw_reason_name(MW_WHY_REASON(why)),
			MW_TRACE_NAME_LEN);
		strscpy(__entry->cause, mw_cause_name(MW_WHY_CAUSE(why)),
			MW_TRACE_NAME_LEN);
	),
	TP_printk("range=%#lx-%#lx event=%d skipped=%d retired=%u reason=%s cause=%s%s",
		  __entry->start, __entry->end, __entry->event,
		  __entry->skipped, __entry->retired, __entry->reason,
		  __entry->cause,
		  __entry->why & MAPWATCH_EVENT_F_PAGES_KEPT ?
		  " pages_kept" : "")
);

TRACE_EVENT(mapwatch_overflow,
	TP_PROTO(unsigned long start, unsigned long last, u64 cookie,
		 u64 overflows),
	TP_ARGS(start, last, cookie, overflows),
	TP_STRUCT__entry(
		__field(unsigned long, start)
		__field(unsigned long, last)
		__field(u64, cookie)
		__field(u64, overflows)
	),
	TP_fast_assign(
		__entry->start = start;
		__entry->last = last;
		__entry->cookie = cookie;
		__entry->overflows = overflows;
	),
	TP_printk("folded range=%#lx-%#lx cookie=%#llx overflows=%llu",
		  __entry->start, __entry->last, __entry->cookie,
		  __entry->overflows)
);

#endif /* MAPWATCH_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
