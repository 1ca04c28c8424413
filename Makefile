# SPDX-License-Identifier: GPL-2.0-only
# mapwatch: the single entry point.
#   make          library, tools, mapwatch.ko for every supported kernel, tests
#   make check    host tests, then the guest suite on Debian 12's kernels (TAP)
#   make check-kernels   the guest suite on the other supported kernels
#   make demo     the RDMA demonstration in a test guest
#   make bench    the performance table (bench/README.md)
#   make deps     install packages and fetch kernels (run implicitly)
#   make check-debug   the guest suite under a KASAN/lockdep/kmemleak kernel
#   make rpm      source and binary RPMs under build/rpm (packaging/rpm/)

CC ?= gcc
# Where vm/common.sh keeps kernels and other downloads (shared by clones).
CACHE := $(or $(MAPWATCH_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mapwatch)
CFLAGS_COMMON := -O2 -g -Wall -Wextra -Werror -Iinclude -Itests -pthread
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS_TESTS := -libverbs -lrdmacm -pthread

DEPS_STAMP := build/deps.stamp
# Resolved by `make deps`: the concrete version of each kernel listed in
# vm/kernels, and the running kernel when its build tree is installed.
KVERS := $(sort $(foreach a,$(shell awk '!/^\#/ && NF >= 3 { print $$1 }' vm/kernels),\
		$(shell cat $(CACHE)/kernels/$(a).version 2>/dev/null)) \
	$(if $(wildcard /lib/modules/$(shell uname -r)/build/Makefile),$(shell uname -r)))
MODULE_SRCS := $(wildcard module/*.c module/*.h module/probes/*) module/Kbuild include/kdreg2.h include/mapwatch_uapi.h
KOS := $(foreach v,$(KVERS),build/kernel/$(v)/mapwatch.ko)
SPLAT_KOS := $(foreach v,$(KVERS),build/splat/$(v)/mapwatch_splat.ko)

.PHONY: all build deps modules lib tools tests bench-bin check check-host check-guest \
	check-kernels check-debug demo bench clean distclean bad-input-table
.DEFAULT_GOAL := all

# The build runs on every CPU unless the caller chose its own -j.
NPROC := $(shell nproc 2>/dev/null || echo 1)
BUILD_JOBS := $(if $(filter -j%,$(MAKEFLAGS)),,-j$(NPROC))

all: $(DEPS_STAMP)
	@$(MAKE) --no-print-directory $(BUILD_JOBS) build

# Fragments of the components that have their own build rules.
-include lib/lib.mk
ifneq ($(wildcard lib/lib.mk),)
-include tools/tools.mk
-include tools/cli.mk
endif
-include packaging/install.mk
-include packaging/rpm/rpm.mk
-include clients/clients.mk
-include tests/mpi/mpi.mk
-include lib/ucx/ucx.mk
-include tests/ucx/ucx.mk

build: lib tools modules tests bench-bin

deps: $(DEPS_STAMP)
$(DEPS_STAMP): vm/deps vm/kernels clients/libfabric/build include/kdreg2.h
	vm/deps
	@mkdir -p $(dir $@) && touch $@
# The kernels of make check-kernels too (vm/kernels TARGET).
DEPS_ALL_STAMP := build/deps-all.stamp
$(DEPS_ALL_STAMP): $(DEPS_STAMP)
	vm/deps --all
	@touch $@

modules: $(KOS) $(SPLAT_KOS)
build/kernel/%/mapwatch.ko: $(MODULE_SRCS)
	vm/kbuild $* module build/kernel/$*
build/splat/%/mapwatch_splat.ko: tests/splat/splat.c tests/splat/Kbuild
	vm/kbuild $* tests/splat build/splat/$*

# Tests: every tests/host/NAME.c and tests/guest/NAME.c is one program.
LIB_SRCS := $(wildcard lib/*.c)
# The verbs adaptor (when built) comes first: it needs libmapwatch.
LIB_A := $(if $(MAPWATCH_LIB_A),$(MAPWATCH_VERBS_A) $(MAPWATCH_LIB_A))
HOST_TESTS := $(patsubst tests/host/%.c,build/tests/host/%,$(wildcard tests/host/*.c))
HOST_SAN_TESTS := $(patsubst tests/host/%.c,build/tests/host-san/%,$(wildcard tests/host/*.c))
# ThreadSanitizer lane: the cache's race tests, library compiled in.
TSANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
HOST_TSAN_TESTS := $(patsubst %,build/tests/host-tsan/%,cache cache_contention cache_uffd cache_shared cache_reg cache_device)
GUEST_TESTS := $(patsubst tests/guest/%.c,build/tests/guest/%,$(wildcard tests/guest/*.c))
# 32-bit guest programs (gcc-multilib): how the module treats a -m32 caller.
GUEST32_TESTS := $(patsubst tests/guest32/%.c,build/tests/guest/%,$(wildcard tests/guest32/*.c))
BENCH_BINS := $(patsubst bench/%.c,build/bench/%,$(wildcard bench/*.c))
# Figure 12 links UCX and a static libfabric (bench/peer-libfabric builds it):
# built by bench/run, not by `make`.
BENCH_BINS := $(filter-out build/bench/peer_cache_bench,$(BENCH_BINS))
TEST_HDRS := $(wildcard tests/*.h tests/host/*.h tests/guest/*.h include/*.h bench/*.h lib/*.h)

# libFuzzer harnesses of the library: tests/fuzz/NAME.c, built with clang.
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/*.c))
FUZZFLAGS := -g -O1 -Wall -Wextra -Werror -Iinclude -pthread \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

tests: $(HOST_TESTS) $(HOST_SAN_TESTS) $(HOST_TSAN_TESTS) $(GUEST_TESTS) $(GUEST32_TESTS) $(FUZZ_BINS)
bench-bin: $(BENCH_BINS)

build/tests/host/%: tests/host/%.c $(TEST_HDRS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -o $@ $< $(LIB_A) $(LDLIBS_TESTS)
# The sanitizer build compiles the library sources in, instrumented too.
build/tests/host-san/%: tests/host/%.c $(TEST_HDRS) $(LIB_SRCS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(SANFLAGS) -o $@ $< $(LIB_SRCS) $(LDLIBS_TESTS)
build/tests/host-tsan/%: tests/host/%.c $(TEST_HDRS) $(LIB_SRCS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(TSANFLAGS) -o $@ $< $(LIB_SRCS) $(LDLIBS_TESTS)
build/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) lib/internal.h include/mapwatch.h
	@mkdir -p $(dir $@)
	clang $(FUZZFLAGS) -o $@ $< $(LIB_SRCS)
build/tests/guest/%: tests/guest/%.c $(TEST_HDRS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -o $@ $< $(LIB_A) $(LDLIBS_TESTS)
build/tests/guest/%: tests/guest32/%.c $(TEST_HDRS)
	@mkdir -p $(dir $@)
	$(CC) -m32 -O2 -g -Wall -Wextra -Werror -Iinclude -Itests -o $@ $<
build/bench/%: bench/%.c $(TEST_HDRS) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -o $@ $< $(LIB_A) $(LDLIBS_TESTS)
build/bench/peer_cache_bench: bench/peer_cache_bench.c bench/peer-libfabric $(TEST_HDRS) $(LIB_A)
	@mkdir -p $(dir $@)
	lf=$$(bench/peer-libfabric) && $(CC) $(CFLAGS_COMMON) -DHAVE_CONFIG_H -isystem $$lf/libfabric-2.1.0 \
		-isystem $$lf/libfabric-2.1.0/include -o $@ $< $(LIB_A) $$lf/prefix/lib/libfabric.a -lucs -lucm -latomic -ldl -pthread

check: all
	tests/check
check-host: all
	tests/check --host
check-guest: all
	tests/check --guest
# The kernels of other Debian releases (vm/kernels TARGET check-kernels),
# fetched with their build chroots on first use.
check-kernels: $(DEPS_ALL_STAMP)
	@$(MAKE) --no-print-directory $(BUILD_JOBS) build
	tests/check --guest --target check-kernels

# The debug lane: 8 fuzz seeds x 125000 ops (1,000,000 in all) and a
# 60-second stress run, under KASAN, lockdep, kmemleak and fault injection.
DEBUG_FUZZ_OPS ?= 125000
DEBUG_STRESS_SECONDS ?= 60
# Each of tests/trinity/run's two trinity runs (the debug lane only).
DEBUG_TRINITY_SECONDS ?= 90
check-debug: all
	vm/build-debug-kernel >/dev/null
	@$(MAKE) --no-print-directory build/kernel/$$(cat $(CACHE)/debug-kernel/version)/mapwatch.ko \
		build/splat/$$(cat $(CACHE)/debug-kernel/version)/mapwatch_splat.ko
	FUZZ_OPS=$(DEBUG_FUZZ_OPS) FUZZ_SEEDS=8 STRESS_SECONDS=$(DEBUG_STRESS_SECONDS) \
		TRINITY_SECONDS=$(DEBUG_TRINITY_SECONDS) TAP_TIMEOUT=1800 TEST_TIMEOUT=3000 GUEST_TIMEOUT=5400 \
		tests/check --guest --kernel debug

# tests/BAD_INPUT.md from the log of the last make check.
bad-input-table: build/check.log
	tests/bad-input-table build/check.log > tests/BAD_INPUT.md

demo: all
	@if [ -x tools/demo ]; then tools/demo --mpi; else echo "make demo: not yet implemented" >&2; exit 1; fi

bench: all
	@if [ -x bench/run ]; then bench/run; else echo "make bench: not yet implemented" >&2; exit 1; fi

clean:
	rm -rf build
distclean: clean
	rm -rf $(CACHE)
