# SPDX-License-Identifier: GPL-2.0-only
# libmapwatch-ucx (lib/ucx/, README.md there), included by the top Makefile:
# a shared library only (soname libmapwatch-ucx.so.1), built when UCX's
# headers (Debian's libucx-dev) and libibverbs' are installed.  It needs
# libmapwatch.so.1 and libucm; libucp and libibverbs are looked up at run
# time, as the ones UCX itself loads.  It exports only the UCX functions
# (ucp_init_version, ucp_worker_progress, ucs_rcache_get) and verbs
# functions it interposes, unversioned so that they match UCX's versioned
# references to libibverbs (IBVERBS_1.1, IBVERBS_1.8).
MAPWATCH_HAVE_UCX := $(shell [ -f /usr/include/ucp/api/ucp.h ] && \
	[ -f /usr/include/ucm/api/ucm.h ] && [ "$(MAPWATCH_HAVE_VERBS)" = 1 ] && echo 1)
ifeq ($(MAPWATCH_HAVE_UCX),1)
MAPWATCH_UCX_SONAME := libmapwatch-ucx.so.1
MAPWATCH_UCX_SO := build/lib/$(MAPWATCH_UCX_SONAME).0
lib: $(MAPWATCH_UCX_SO)
$(MAPWATCH_UCX_SO): lib/ucx/mapwatch_ucx.c include/mapwatch.h $(MAPWATCH_LIB_SO)
	$(CC) $(LIB_CFLAGS) $(LIB_SO_LDFLAGS) -Wl,-soname,$(MAPWATCH_UCX_SONAME) \
		-o $@ $< -Lbuild/lib -lmapwatch -lucm -ldl
	ln -sf $(MAPWATCH_UCX_SONAME).0 build/lib/$(MAPWATCH_UCX_SONAME)
	ln -sf $(MAPWATCH_UCX_SONAME) build/lib/libmapwatch-ucx.so
endif
