# SPDX-License-Identifier: GPL-2.0-only
# libmapwatch, included by the top-level Makefile: a static library and a
# versioned shared one (soname libmapwatch.so.1).
MAPWATCH_SONAME := libmapwatch.so.1
MAPWATCH_LIB_A := build/lib/libmapwatch.a
MAPWATCH_LIB_SO := build/lib/$(MAPWATCH_SONAME).0
LIB_CFLAGS := -O2 -g -Wall -Wextra -Werror -fPIC -Iinclude -pthread
LIB_OBJS := $(patsubst lib/%.c,build/lib/%.o,$(wildcard lib/*.c))

.PHONY: lib
lib: $(MAPWATCH_LIB_A) $(MAPWATCH_LIB_SO)

build/lib/%.o: lib/%.c lib/internal.h include/mapwatch.h include/kdreg2.h include/mapwatch_uapi.h
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c -o $@ $<
$(MAPWATCH_LIB_A): $(LIB_OBJS)
	rm -f $@ && $(AR) rcs $@ $^
$(MAPWATCH_LIB_SO): $(LIB_OBJS)
	$(CC) -shared -pthread -Wl,-soname,$(MAPWATCH_SONAME) -o $@ $^
	ln -sf $(MAPWATCH_SONAME).0 build/lib/$(MAPWATCH_SONAME)
	ln -sf $(MAPWATCH_SONAME) build/lib/libmapwatch.so
