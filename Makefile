# Thin front for CMake. The two commands a fresh Debian/Ubuntu machine needs:
#   make bench   default local sweep (HFReduce vs MPI vs NCCL where a GPU exists, storage, host
#                probe), results in results/local.h5, comparison table, REPORT-style report
#   make test    every test (unit, MPI, storage, Slurm, namespaces, scripts) through ctest
# Both install what is missing first (as root on Debian/Ubuntu; elsewhere they say what to install)
# and build: `make build` asks scripts/setup-deps for the build needs only, `make test` adds the
# test tools, `make bench` the sweep's tools. `make install PREFIX=P` installs under P.

BUILD_DIR    ?= build
ASAN_DIR     ?= build-asan
BUILD_TYPE   ?= Release
JOBS         ?= $(shell nproc)
CMAKE_FLAGS  ?=
CTEST_FLAGS  ?=
PYTHON       ?= /usr/bin/python3
PREFIX       ?= /usr/local
# What scripts/setup-deps checks: build by default, widened per goal below (target-specific
# variables reach the prerequisites too, so `make test` checks the test tools before configuring).
DEPS_STAGE   ?= build

# Open MPI refuses root without these, and this suite runs more ranks than cores in tests.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_rmaps_base_oversubscribe := 1

SOURCES = $(shell git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' 2>/dev/null)

.PHONY: all deps configure build test bench install report sanitize format format-check tidy clean help

all: build

help:
	@echo "make bench | test | build | install [PREFIX=P] | sanitize | report | format | format-check | tidy | clean"

test sanitize: DEPS_STAGE = test
bench report: DEPS_STAGE = bench

deps:
	@scripts/setup-deps $(DEPS_STAGE)

# Re-run every time (seconds): a library setup-deps has just installed is picked up.
configure: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

# A fresh measurement each time (the previous file is kept as results/local.<date>.h5), the report,
# then the verdict against the paper, normalised by this machine's own limits (<= 20 lines). A
# FAIL verdict is a result, not an error of the bench: only exit statuses above 1 stop make.
bench: build
	scripts/ffbench run configs/sweeps/local.yaml --output results/local.h5 --fresh --no-compare
	scripts/ffbench report results/local.h5 --out results/local-report
	@scripts/ffbench compare results/local.h5 || [ $$? -eq 1 ]

# REPORT.md from the results committed under results/ (see results/README.md).
report: deps
	scripts/ffbench report results/local-run.h5 results/reference-run.h5 results/perf-hfreduce.h5 \
	    results/perf-hfreduce-emu.h5 results/perf-hfreduce-small.h5 \
	    results/crosscheck.h5 results/gpu/gpu-check-h100.h5 \
	    --out results/report --markdown REPORT.md

# Address + undefined behaviour sanitizers, in their own build tree, running the whole test suite
# except the install tests (label install: they build and install a copy of their own).
sanitize: deps
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DFFB_SANITIZE=ON -DFFB_ENABLE_CUDA=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 ctest --output-on-failure -j $(JOBS) -LE install $(CTEST_FLAGS)

format:
	clang-format -i $(SOURCES)

format-check:
	clang-format --dry-run -Werror $(SOURCES)

tidy: configure
	clang-tidy -p $(BUILD_DIR) --quiet $(filter %.cpp,$(SOURCES))

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
