# SPDX-License-Identifier: GPL-2.0-only
# Shared by the vm/ scripts: where things live and how a kernel alias
# resolves.  Sourced, not run.
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Downloads and builds shared by every clone of the project (kernels, the
# debug kernel, initramfs images): MAPWATCH_CACHE, else the user's cache.
cache=${MAPWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mapwatch}
kcache=$cache/kernels

# The host's dpkg database: what installs packages on the host
# (tests/packaging) and what stacks an overlay over it (tests/install) hold
# this lock throughout, one at a time.
host_dpkg_lock=/tmp/mapwatch-host-dpkg.lock
die() { echo "${0##*/}: $*" >&2; exit 1; }

# Two guests linked by a QEMU socket network (vm/run --link), as the
# two-node lanes run them.  link_node2 starts node 2, which listens, in
# the background and in a process group of its own (so it can be stopped
# whole), appending its output to LOG, and returns once it listens on
# $link_port; node 1 is then `vm/run --link "connect:$link_port" ...`.
# link_end waits for node 2 to end, stopping it if it is still up 60 s
# after node 1: non-zero if it had to, or if node 2 failed.
link_node2() {	# LOG VM-RUN-OPTION... -- COMMAND...
	local log=$1
	shift
	link_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	setsid "$top/vm/run" --link "listen:$link_port" "$@" >> "$log" 2>&1 &
	link_server=$!
	for _ in $(seq 100); do
		ss -ltn 2>/dev/null | grep -q "127.0.0.1:$link_port " && break
		sleep 0.1
	done
}
link_end() {	# WHO (for the message)
	local rc=0
	for _ in $(seq 60); do
		kill -0 "$link_server" 2>/dev/null || break
		sleep 1
	done
	if kill -0 "$link_server" 2>/dev/null; then
		echo "$1: node 2 still up 60 s after node 1 ended: stopping it" >&2
		kill -- -"$link_server" 2>/dev/null
		rc=1
	fi
	wait "$link_server" || rc=1
	return $rc
}

# Aliases listed in vm/kernels, in order; with TARGET (check,
# check-kernels), those that target tests.
kernel_aliases() {
	awk -v t="${1:-}" '!/^#/ && NF >= 3 && (t == "" || ($7 == "" ? "check" : $7) == t) { print $1 }' "$top/vm/kernels"
}

# ALIAS -> IMAGE-META HEADERS-META
kernel_metas() { awk -v a="$1" '!/^#/ && $1 == a { print $2, $3 }' "$top/vm/kernels"; }

# ALIAS -> the suites its meta-packages come from (`host`: the host's lists).
kernel_suites() { awk -v a="$1" '!/^#/ && $1 == a { print ($4 == "" ? "host" : $4) }' "$top/vm/kernels"; }

# ALIAS -> its build environment: `host` or RELEASE/CC (a chroot, vm/chroot).
kernel_build() { awk -v a="$1" '!/^#/ && $1 == a { print ($5 == "" ? "host" : $5) }' "$top/vm/kernels"; }
# The aliases whose modules the host's own compiler builds (BUILD host),
# oldest first: the kernels tests/install can install for.
host_kernels() { awk '!/^#/ && NF >= 3 && ($5 == "" || $5 == "host") { print $1 }' "$top/vm/kernels"; }

# ALIAS -> how much make check runs on it: `full` or `core` (tests/README.md);
# a kernel not in the list (the debug kernel) is `core`.
kernel_check() {
	awk -v a="$1" '!/^#/ && $1 == a { d = ($6 == "" ? "full" : $6) } END { print (d == "" ? "core" : d) }' "$top/vm/kernels"
}

# Full version -> its alias in vm/kernels, from what `make deps` resolved.
kernel_alias() {
	local a
	for a in $(kernel_aliases); do
		if [ -f "$kcache/$a.version" ] && [ "$(cat "$kcache/$a.version")" = "$1" ]; then
			echo "$a"
			return 0
		fi
	done
	return 1
}

# ALIAS or full version -> full version, from what `make deps` resolved.
kernel_version() {
	local want=$1
	if [ -f "$kcache/$want.version" ]; then
		cat "$kcache/$want.version"
	elif [ -d "$kcache/$want/root" ]; then
		echo "$want"
	elif [ "$want" = debug ] && [ -f "$cache/debug-kernel/version" ]; then
		cat "$cache/debug-kernel/version"
	else
		return 1
	fi
}

# Full version -> directory holding boot/, lib/modules/, usr/src/.
kernel_root() {
	if [ -d "$kcache/$1/root" ]; then
		echo "$kcache/$1/root"
	elif [ -f "$cache/debug-kernel/version" ] && [ "$(cat "$cache/debug-kernel/version")" = "$1" ]; then
		echo "$cache/debug-kernel/root"
	else
		return 1
	fi
}
