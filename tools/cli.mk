# SPDX-License-Identifier: GPL-2.0-only
# Make fragment for the mapwatch CLI (tools/mapwatch.c), included by the
# top-level Makefile after tools.mk: `make tools` builds build/tools/mapwatch
# too (it needs only the ABI headers: no library, no libibverbs), and the
# examples/ programs as build/examples/NAME against the in-tree library, so
# that they keep compiling and the guest tests can run them.
# CPPFLAGS, CFLAGS and LDFLAGS from the environment (dpkg-buildflags...)
# are added to the project's own.

mapwatch_cli_goal := $(.DEFAULT_GOAL)

CLI_BIN := build/tools/mapwatch
CLI_VERSION := $(shell sed -n 's/^MODULE_VERSION("\(.*\)");$$/\1/p' module/main.c)
CLI_CFLAGS := -Wall -Wextra $(MAPWATCH_WERROR) -Iinclude -DMAPWATCH_VERSION='"$(CLI_VERSION)"'

EXAMPLE_BINS := $(patsubst examples/%.c,build/examples/%,$(wildcard examples/*.c))

.PHONY: tools cli
tools: $(CLI_BIN) $(EXAMPLE_BINS)
cli: $(CLI_BIN)

$(CLI_BIN): tools/mapwatch.c include/kdreg2.h include/mapwatch_uapi.h module/main.c
	@mkdir -p $(dir $@)
	$(CC) $(CLI_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $<

build/examples/verbs_provider: EXAMPLE_LIBS := -libverbs
build/examples/%: examples/%.c include/mapwatch.h build/lib/libmapwatch.a
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -Iinclude -o $@ $< build/lib/libmapwatch.a -pthread $(EXAMPLE_LIBS)

.DEFAULT_GOAL := $(mapwatch_cli_goal)
