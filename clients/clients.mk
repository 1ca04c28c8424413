# SPDX-License-Identifier: GPL-2.0-only
# Included by the top Makefile: our programs that run against the
# third-party clients clients/*/build installs in the cache.
LIBFABRIC_VERSION := $(shell sed -n 's/^version=//p' clients/libfabric/build)
LIBFABRIC := $(CACHE)/clients/libfabric-$(LIBFABRIC_VERSION)
CLIENT_TESTS := $(patsubst clients/libfabric/%.c,build/clients/libfabric/%,$(wildcard clients/libfabric/*.c))

tests: $(CLIENT_TESTS)

$(LIBFABRIC)/ready:
	clients/libfabric/build >/dev/null
build/clients/libfabric/%: clients/libfabric/%.c tests/tap.h $(LIBFABRIC)/ready
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -I$(LIBFABRIC)/include -o $@ $< \
		-L$(LIBFABRIC)/lib -Wl,-rpath,$(LIBFABRIC)/lib -lfabric -pthread
