# SPDX-License-Identifier: GPL-2.0-only
# tests/ucx: the UCP program of the UCX lane (tests/ucx/README.md), built
# when lib/ucx/ucx.mk builds libmapwatch-ucx: ucp_churn links UCX only
# (the lane preloads the library, as a user of an unmodified program
# would), ucp_churn_linked links libmapwatch-ucx ahead of UCX, churn-mpich
# is tests/mpi/churn.c built with MPICH.
ifeq ($(MAPWATCH_HAVE_UCX),1)
UCX_TEST_PROGS := build/tests/ucx/ucp_churn build/tests/ucx/ucp_churn_linked
# tests/mpi's MPI program again, built with Debian's MPICH (ch4:ucx).
ifneq ($(shell command -v mpicc.mpich 2>/dev/null),)
UCX_TEST_PROGS += build/tests/ucx/churn-mpich
build/tests/ucx/churn-mpich: tests/mpi/churn.c
	@mkdir -p $(dir $@)
	mpicc.mpich -O2 -g -Wall -Wextra -Werror -o $@ $< -ldl
endif
tests: $(UCX_TEST_PROGS)
build/tests/ucx/ucp_churn: tests/ucx/ucp_churn.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -o $@ $< -lucp -lucs -lucm
build/tests/ucx/ucp_churn_linked: tests/ucx/ucp_churn.c $(MAPWATCH_UCX_SO)
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -o $@ $< -Lbuild/lib -Wl,-rpath-link,build/lib -lmapwatch-ucx -lucp -lucs -lucm
endif
# libmapwatch-ucx against UCX's contracts (ucx_shim.c; remap_stub.so is
# preloaded after the shim by its reg-window case).
ifeq ($(MAPWATCH_HAVE_UCX),1)
UCX_SHIM_TESTS := build/tests/ucx/ucx_shim build/tests/ucx/remap_stub.so build/tests/ucx/version_stub.so
tests: $(UCX_SHIM_TESTS)
build/tests/ucx/ucx_shim: tests/ucx/ucx_shim.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -o $@ $< -lucp -lucs -lucm
build/tests/ucx/remap_stub.so: tests/ucx/remap_stub.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -shared -fPIC -o $@ $< -ldl
build/tests/ucx/version_stub.so: tests/ucx/version_stub.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -shared -fPIC -o $@ $<
endif
ifeq ($(MAPWATCH_HAVE_UCX),1)
# Links no UCX library but libucs (ucs_status_string): the shim's calls
# with no libucp behind them (review F13).
tests: build/tests/ucx/shim_missing
build/tests/ucx/shim_missing: tests/ucx/shim_missing.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Wextra -Werror -o $@ $< -lucs -ldl
endif
