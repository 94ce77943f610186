# Developer entry points. `make test` is the README's test command: it installs the Debian
# packages the build needs (scripts/install-deps.sh, idempotent), builds with Ninja and runs ctest.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)

.PHONY: all deps configure build install package test test-asan bench bench-stages bench-parity bench-last-layer bench-memory bench-audit bench-attribution bench-levers bench-concepts bench-distributed fuzz demo clean

all: build

deps:
	scripts/install-deps.sh

$(BUILD_DIR)/build.ninja: | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: $(BUILD_DIR)/build.ninja

build: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The binary, man pages, shell completion, Makefile.data and docs under PREFIX (bin/, share/).
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

# build/ppnet_<version>_<arch>.deb (CPack; Depends from dpkg-shlibdeps): apt-get install ./build/ppnet_*.deb
package: build
	cd $(BUILD_DIR) && cpack -G DEB

# A skipped test fails the run too (scripts/run-tests.sh).
test: build
	scripts/run-tests.sh $(BUILD_DIR) $(JOBS)

# The whole suite built with AddressSanitizer and UndefinedBehaviorSanitizer (build-asan/);
# library-owned allocations kept until exit are suppressed (tests/sanitizers.supp).
ASAN_DIR ?= build-asan
test-asan: deps
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
	cmake --build $(ASAN_DIR) -j $(JOBS)
	ASAN_OPTIONS=detect_odr_violation=0:strict_init_order=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers.supp \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --test-dir $(ASAN_DIR) --output-on-failure -j $(JOBS)

# The main job end to end on Fashion-MNIST (Debian's dataset-fashion-mnist): prepare, train
# warm and joint, project, last layer, evaluate, explain a sample, report. Resumes when re-run.
demo: build
	scripts/install-deps.sh --demo
	$(MAKE) -f Makefile.data demo

bench: build
	benchmarks/run.sh $(BUILD_DIR)

# Every stage's images/s and peak memory on a fixed synthetic workload, as a table.
bench-stages: build
	/usr/bin/python3 tests/benchmarks/stages.py $(BUILD_DIR)

# The same work in Python torch and in ppnet, alternating, the minimum of three rounds: bare
# forward, bare forward+backward, joint step, evaluation and push (vgg16, 224 px, batch 8).
bench-parity: build
	/usr/bin/python3 tests/benchmarks/parity.py $(BUILD_DIR)

# The last layer's solvers (FISTA, proximal Newton, 20 Adam epochs) on a synthetic cache of
# LAST_LAYER_SIZE = "N P C" (images, prototypes, classes; "180000 2000 200" is CUB with 30 copies),
# then on the demo's cache once `make demo` has made it.
LAST_LAYER_SIZE ?= 20000 200 20
bench-last-layer: build
	$(BUILD_DIR)/benchmarks/ppnet_bench_last_layer --synthetic $(LAST_LAYER_SIZE)
	if [ -f runs/fashion-mnist/run.sqlite ]; then \
	  $(BUILD_DIR)/benchmarks/ppnet_bench_last_layer runs/fashion-mnist data/fashion-mnist; fi

# Peak RSS and time of evaluate, project and last-layer (vgg16, 224 px, 100 images, batch 100)
# under the default --memory-budget and under MEMORY_BUDGETS.
MEMORY_BUDGETS ?= default,2G,1G,512M
bench-memory: build
	/usr/bin/python3 tests/benchmarks/memory.py $(BUILD_DIR) vgg16 224 100 2 $(MEMORY_BUDGETS)

# Joint training: 1 process × 2 threads against 2 ranks × 1 thread (c10d/Gloo), on the demo's data.
bench-distributed: build
	/usr/bin/python3 tests/benchmarks/distributed.py $(BUILD_DIR)

# analyze, prune and evaluate --metrics against the bare forward pass (vgg16 at 224 px).
bench-audit: build
	/usr/bin/python3 tests/benchmarks/audit.py $(BUILD_DIR)

# Where prototypes look with each attribution method, and what explain costs with each
# (docs/audit.md); uses the demo's model when `make demo` has made it.
bench-attribution: build
	/usr/bin/python3 tests/benchmarks/attribution.py $(BUILD_DIR)

# The levers against background prototypes (fine annotation, projection onto the object),
# before and after, on a planted-part set (docs/audit.md).
bench-levers: build
	/usr/bin/python3 tests/benchmarks/levers.py $(BUILD_DIR)

# The confounder test's set on five seeds: test accuracy and prototypes whose evidence is the
# mark, plain and after one cycle with forbid, remember or both (docs/audit.md).
bench-concepts: build
	$(BUILD_DIR)/tests/ppnet_integration_tests --gtest_also_run_disabled_tests --gtest_filter=Confounder.DISABLED_Levers

# libFuzzer targets (clang, ASan, UBSan) for every parser of outside bytes, FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
FUZZ_DIR ?= build-fuzz
fuzz: deps
	scripts/install-deps.sh --fuzz
	cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPPNET_FUZZ=ON
	cmake --build $(FUZZ_DIR) -j $(JOBS)
	scripts/fuzz.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD_DIR)
