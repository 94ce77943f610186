# Developer entry points. `make test` is the README's test command: it installs the Debian
# packages the build needs (scripts/install-deps.sh, idempotent), builds with Ninja and runs ctest.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)

.PHONY: all deps configure build test bench clean

all: build

deps:
	scripts/install-deps.sh

$(BUILD_DIR)/build.ninja: | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: $(BUILD_DIR)/build.ninja

build: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

bench: build
	benchmarks/run.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
