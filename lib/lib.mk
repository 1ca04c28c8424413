# SPDX-License-Identifier: GPL-2.0-only
# libmapwatch, included by the top-level Makefile: a static library and a
# versioned shared one (soname libmapwatch.so.1).  When libibverbs is
# installed, also libmapwatch-verbs (lib/verbs.c, <mapwatch_verbs.h>: the
# cache over ibv_reg_mr), static and shared (soname libmapwatch-verbs.so.1,
# needs libmapwatch.so.1 and libibverbs); libmapwatch never needs libibverbs.
MAPWATCH_SONAME := libmapwatch.so.1
MAPWATCH_LIB_A := build/lib/libmapwatch.a
MAPWATCH_LIB_SO := build/lib/$(MAPWATCH_SONAME).0
LIB_CFLAGS := -O2 -g -Wall -Wextra -Werror -fPIC -Iinclude -pthread
LIB_HDRS := lib/internal.h include/mapwatch.h include/kdreg2.h include/mapwatch_uapi.h
LIB_OBJS := $(patsubst lib/%.c,build/lib/%.o,$(filter-out lib/verbs.c,$(wildcard lib/*.c)))

MAPWATCH_HAVE_VERBS := $(shell pkg-config --exists libibverbs 2>/dev/null && echo 1 || \
	{ [ -f /usr/include/infiniband/verbs.h ] && echo 1; })
ifeq ($(MAPWATCH_HAVE_VERBS),1)
MAPWATCH_VERBS_SONAME := libmapwatch-verbs.so.1
MAPWATCH_VERBS_A := build/lib/libmapwatch-verbs.a
MAPWATCH_VERBS_SO := build/lib/$(MAPWATCH_VERBS_SONAME).0
MAPWATCH_VERBS_LIBS := $(or $(shell pkg-config --libs libibverbs 2>/dev/null),-libverbs)
endif

.PHONY: lib
lib: $(MAPWATCH_LIB_A) $(MAPWATCH_LIB_SO) $(MAPWATCH_VERBS_A) $(MAPWATCH_VERBS_SO)

build/lib/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c -o $@ $<
$(MAPWATCH_LIB_A): $(LIB_OBJS)
	rm -f $@ && $(AR) rcs $@ $^
$(MAPWATCH_LIB_SO): $(LIB_OBJS)
	$(CC) -shared -pthread -Wl,-soname,$(MAPWATCH_SONAME) -o $@ $^
	ln -sf $(MAPWATCH_SONAME).0 build/lib/$(MAPWATCH_SONAME)
	ln -sf $(MAPWATCH_SONAME) build/lib/libmapwatch.so

ifeq ($(MAPWATCH_HAVE_VERBS),1)
build/lib/verbs.o: lib/verbs.c include/mapwatch_verbs.h $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -DMAPWATCH_BUILD_VERBS -c -o $@ $<
$(MAPWATCH_VERBS_A): build/lib/verbs.o
	rm -f $@ && $(AR) rcs $@ $^
$(MAPWATCH_VERBS_SO): build/lib/verbs.o $(MAPWATCH_LIB_SO)
	$(CC) -shared -pthread -Wl,-soname,$(MAPWATCH_VERBS_SONAME) -Wl,--no-undefined \
		-o $@ build/lib/verbs.o -Lbuild/lib -lmapwatch $(MAPWATCH_VERBS_LIBS)
	ln -sf $(MAPWATCH_VERBS_SONAME).0 build/lib/$(MAPWATCH_VERBS_SONAME)
	ln -sf $(MAPWATCH_VERBS_SONAME) build/lib/libmapwatch-verbs.so
endif
