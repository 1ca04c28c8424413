# SPDX-License-Identifier: GPL-2.0-only
# tests/mpi: the MPI program of the two-node job, built with Open MPI's
# compiler wrapper (make deps installs libopenmpi-dev).
MPI_PROGS := build/tests/mpi/churn
tests: $(MPI_PROGS)
build/tests/mpi/%: tests/mpi/%.c
	@mkdir -p $(dir $@)
	mpicc -O2 -g -Wall -Wextra -Werror -o $@ $< -ldl
