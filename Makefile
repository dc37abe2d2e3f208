# Thin front for CMake. The two commands a fresh Debian/Ubuntu machine needs:
#   make bench   default local sweep (HFReduce vs MPI vs NCCL where a GPU exists, storage, host
#                probe), results in results/local.h5, comparison table, REPORT-style report
#   make test    every test (unit, MPI, storage, Slurm, namespaces, scripts) through ctest
# Both install missing packages first (scripts/setup-deps) and build.

BUILD_DIR    ?= build
ASAN_DIR     ?= build-asan
BUILD_TYPE   ?= Release
JOBS         ?= $(shell nproc)
CMAKE_FLAGS  ?=
CTEST_FLAGS  ?=
PYTHON       ?= /usr/bin/python3

# Open MPI refuses root without these, and this suite runs more ranks than cores in tests.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_rmaps_base_oversubscribe := 1

SOURCES = $(shell git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' 2>/dev/null)

.PHONY: all deps configure build test bench report sanitize format format-check tidy clean help

all: build

help:
	@echo "make bench | test | build | sanitize | report | format | format-check | tidy | clean"

deps:
	@scripts/setup-deps

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

configure: deps $(BUILD_DIR)/CMakeCache.txt

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure $(CTEST_FLAGS)

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
	    results/crosscheck.h5 results/gpu/gpu-check-h100.h5 \
	    --out results/report --markdown REPORT.md

# Address + undefined behaviour sanitizers, in their own build tree, running the whole test suite.
sanitize: deps
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DFFB_SANITIZE=ON -DFFB_ENABLE_CUDA=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 ctest --output-on-failure $(CTEST_FLAGS)

format:
	clang-format -i $(SOURCES)

format-check:
	clang-format --dry-run -Werror $(SOURCES)

tidy: configure
	clang-tidy -p $(BUILD_DIR) --quiet $(filter %.cpp,$(SOURCES))

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR)
