#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
# bench/ftrace-pairs --report: read function_graph traces of the pair loop
# (graph root __x64_sys_ioctl) and print where an ioctl's time goes.  The
# tracer costs about the same for every call it traces; that cost is
# calibrated as the median duration of an empty function traced in the same
# trace (bpf_lsm_file_ioctl, a BPF-LSM hook with no program attached) and
# subtracted once per traced call inside each function ("corrected").
# Shares are of the corrected ioctl time; per call, the median.  usage: ftrace-report.py TRACE...
import re
import statistics
import sys

LINE = re.compile(r'^\s*\d+\)\s*[+!#*@$ ]*\s*(?:([\d.]+) us\s*)?\|\s(\s*)(.*)$')


def parse(path):
    stack, tops, leaves_empty = [], [], []
    for raw in open(path, errors='replace'):
        m = LINE.match(raw.rstrip('\n'))
        if not m:
            continue
        dur, body = m.group(1), m.group(3).strip()
        name = re.sub(r' \[.*?\]', '', body)
        if body.endswith('{'):
            stack.append({'name': re.sub(r'\(\).*', '', name), 'kids': []})
        elif body.startswith('}'):
            if not stack or dur is None:
                stack = []
                continue
            node = stack.pop()
            node['dur'] = float(dur)
            (stack[-1]['kids'] if stack else tops).append(node)
        elif body.endswith(';') and dur is not None:
            node = {'name': re.sub(r'\(\).*', '', name), 'kids': [], 'dur': float(dur)}
            if node['name'] == 'bpf_lsm_file_ioctl':
                leaves_empty.append(node['dur'])
            if stack:
                stack[-1]['kids'].append(node)
    return [t for t in tops if t['name'] == '__x64_sys_ioctl'], leaves_empty


def calls(n):
    return 1 + sum(calls(k) for k in n['kids'])


def walk(n, depth, k, acc, maxdepth):
    corr = n['dur'] - k * calls(n)
    key = (depth, n['name'])
    acc.setdefault(key, []).append(corr)
    if depth < maxdepth:
        for c in n['kids']:
            walk(c, depth + 1, k, acc, maxdepth)


for path in sys.argv[1:]:
    tops, empty = parse(path)
    if not tops or not empty:
        print('  (no complete ioctls in %s)' % path)
        continue
    k = statistics.median(empty)
    acc = {}
    for t in tops:
        walk(t, 0, k, acc, 3)
    n = len(tops)
    # Medians per call (an interrupt or a preemption inside a call would
    # otherwise weigh on the means), times the calls per ioctl.
    per = {key: (statistics.median(v), len(v) / n) for key, v in acc.items()}
    total = per[(0, '__x64_sys_ioctl')][0]
    print('  %d ioctls traced; tracer cost per traced call %.2f us (empty hook); '
          'ioctl median %.2f us traced, %.2f us corrected' %
          (n, k, statistics.median(t['dur'] for t in tops), total))
    rows = sorted(per.items(), key=lambda kv: (kv[0][0], -kv[1][0] * kv[1][1]))
    for (depth, name), (med, c) in rows:
        if depth == 0 or name.startswith(('__sysvec', 'hrtimer', '__hrtimer', 'handle_softirqs')) or med * c / total < 0.01:
            continue
        print('  %s%-40s %5.1f%%  %6.2f us/call  %5.2f calls/ioctl' %
              ('  ' * (depth - 1), name, 100 * med * c / total, med, c))
