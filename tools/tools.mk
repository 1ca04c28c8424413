# SPDX-License-Identifier: GPL-2.0-only
# Make fragment for tools/, included by the top-level Makefile.
# Builds build/tools/mapwatch-bw (needs libibverbs-dev) against the static
# libmapwatch.  Defines no default goal of its own.

mapwatch_tools_goal := $(.DEFAULT_GOAL)

MAPWATCH_LIB_A ?= build/lib/libmapwatch.a
BW_BIN := build/tools/mapwatch-bw
BW_SRCS := tools/mapwatch-bw.c tools/bw_verbs.c tools/bw_cache.c
# CPPFLAGS/CFLAGS/LDFLAGS and MAPWATCH_WERROR: see lib/lib.mk.
BW_CFLAGS = -Wall -Wextra $(MAPWATCH_WERROR) -Iinclude $(CPPFLAGS) $(CFLAGS)
BW_LIBS := -libverbs -pthread

.PHONY: tools
tools: $(BW_BIN)

$(BW_BIN): $(BW_SRCS) tools/bw.h include/mapwatch.h $(MAPWATCH_LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(BW_CFLAGS) $(LDFLAGS) -o $@ $(BW_SRCS) $(MAPWATCH_LIB_A) $(BW_LIBS)

.DEFAULT_GOAL := $(mapwatch_tools_goal)
