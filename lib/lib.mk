# SPDX-License-Identifier: GPL-2.0-only
# libmapwatch, included by the top-level Makefile: a static library and a
# versioned shared one (soname libmapwatch.so.1).  When libibverbs is
# installed, also libmapwatch-verbs (lib/verbs.c, <mapwatch_verbs.h>: the
# cache over ibv_reg_mr), static and shared (soname libmapwatch-verbs.so.1,
# needs libmapwatch.so.1 and libibverbs); libmapwatch never needs libibverbs.
#
# Flags: the build honours CPPFLAGS, CFLAGS and LDFLAGS from the environment
# or the command line (Debian's dpkg-buildflags hardening reaches the shared
# libraries); CFLAGS defaults to -O2 -g.  -Werror is a developer default:
# MAPWATCH_WERROR= turns it off (debian/rules does).  Only the public
# mapwatch_* functions are exported, each with a symbol version
# (-fvisibility=hidden, lib/libmapwatch.map, lib/libmapwatch-verbs.map); the
# shared libraries' objects are built apart (build/lib/pic/) with
# MAPWATCH_BUILD_SHARED, which adds release 1.0.0's compatibility symbols.
MAPWATCH_SONAME := libmapwatch.so.1
MAPWATCH_LIB_A := build/lib/libmapwatch.a
MAPWATCH_LIB_SO := build/lib/$(MAPWATCH_SONAME).0
MAPWATCH_WERROR ?= -Werror
CFLAGS ?= -O2 -g
LIB_CFLAGS = -Wall -Wextra $(MAPWATCH_WERROR) -fPIC -fvisibility=hidden -Iinclude -pthread \
	$(CPPFLAGS) $(CFLAGS)
LIB_SO_LDFLAGS = $(CFLAGS) $(LDFLAGS) -shared -pthread -Wl,--no-undefined
LIB_HDRS := lib/internal.h lib/cache_internal.h include/mapwatch.h include/kdreg2.h include/mapwatch_uapi.h
LIB_MAP := lib/libmapwatch.map
LIB_NAMES := $(patsubst lib/%.c,%,$(filter-out lib/verbs.c,$(wildcard lib/*.c)))
LIB_OBJS := $(patsubst %,build/lib/%.o,$(filter-out compat,$(LIB_NAMES)))
LIB_PIC_OBJS := $(patsubst %,build/lib/pic/%.o,$(LIB_NAMES))

MAPWATCH_HAVE_VERBS := $(shell pkg-config --exists libibverbs 2>/dev/null && echo 1 || \
	{ [ -f /usr/include/infiniband/verbs.h ] && echo 1; })
ifeq ($(MAPWATCH_HAVE_VERBS),1)
MAPWATCH_VERBS_SONAME := libmapwatch-verbs.so.1
MAPWATCH_VERBS_A := build/lib/libmapwatch-verbs.a
MAPWATCH_VERBS_SO := build/lib/$(MAPWATCH_VERBS_SONAME).0
MAPWATCH_VERBS_LIBS := $(or $(shell pkg-config --libs libibverbs 2>/dev/null),-libverbs)
MAPWATCH_VERBS_MAP := lib/libmapwatch-verbs.map
endif

.PHONY: lib
lib: $(MAPWATCH_LIB_A) $(MAPWATCH_LIB_SO) $(MAPWATCH_VERBS_A) $(MAPWATCH_VERBS_SO)

build/lib/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c -o $@ $<
build/lib/pic/%.o: lib/%.c $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -DMAPWATCH_BUILD_SHARED -c -o $@ $<
$(MAPWATCH_LIB_A): $(LIB_OBJS)
	rm -f $@ && $(AR) rcs $@ $^
$(MAPWATCH_LIB_SO): $(LIB_PIC_OBJS) $(LIB_MAP)
	$(CC) $(LIB_SO_LDFLAGS) -Wl,-soname,$(MAPWATCH_SONAME) -Wl,--version-script=$(LIB_MAP) \
		-o $@ $(LIB_PIC_OBJS)
	ln -sf $(MAPWATCH_SONAME).0 build/lib/$(MAPWATCH_SONAME)
	ln -sf $(MAPWATCH_SONAME) build/lib/libmapwatch.so

ifeq ($(MAPWATCH_HAVE_VERBS),1)
build/lib/verbs.o: lib/verbs.c include/mapwatch_verbs.h $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -DMAPWATCH_BUILD_VERBS -c -o $@ $<
build/lib/pic/verbs.o: lib/verbs.c include/mapwatch_verbs.h $(LIB_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -DMAPWATCH_BUILD_VERBS -DMAPWATCH_BUILD_SHARED -c -o $@ $<
$(MAPWATCH_VERBS_A): build/lib/verbs.o
	rm -f $@ && $(AR) rcs $@ $^
$(MAPWATCH_VERBS_SO): build/lib/pic/verbs.o $(MAPWATCH_LIB_SO) $(MAPWATCH_VERBS_MAP)
	$(CC) $(LIB_SO_LDFLAGS) -Wl,-soname,$(MAPWATCH_VERBS_SONAME) \
		-Wl,--version-script=$(MAPWATCH_VERBS_MAP) \
		-o $@ build/lib/pic/verbs.o -Lbuild/lib -lmapwatch $(MAPWATCH_VERBS_LIBS)
	ln -sf $(MAPWATCH_VERBS_SONAME).0 build/lib/$(MAPWATCH_VERBS_SONAME)
	ln -sf $(MAPWATCH_VERBS_SONAME) build/lib/libmapwatch-verbs.so
endif
