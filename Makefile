# Entry points for people; CMake does the building.
#   make run     start a private Redis, the bridge, the gateway and the demo page
#                (make run BROKER=amqp: a private RabbitMQ instead of Redis)
#   make test    install missing Debian packages, build (ASan+UBSan, -Werror)
#                and run every test: unit, fuzz-corpus replay, integration
#   make bench   the fan-out benchmark against nchan and Socket.IO
#   make fuzz    run every libFuzzer target for FUZZ_SECONDS and grow the corpus
#   make format  clang-format the tree in place

JOBS ?= $(shell nproc)
# Without this every nested make (cmake's) prints "Entering directory".
MAKEFLAGS += --no-print-directory
FUZZ_SECONDS ?= 60
SAN_DIR := build/asan
REL_DIR := build/release
FUZZ_DIR := build/fuzz
# What `make run` starts: built alone, without the tests and bench tools.
RUN_TARGETS := wspush-bridge wspush-gateway wspushctl

.PHONY: all deps build release run-build asan fuzz-build run test bench fuzz \
	format format-check clean

all: release

deps:
	@.ci/deps

release: deps
	@cmake -S . -B $(REL_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DWSP_WERROR=ON >/dev/null
	@cmake --build $(REL_DIR) -j $(JOBS)

# One line instead of the build's progress; the compiler's output, errors
# included, is shown when the build fails (and kept in build.log).
run-build: deps
	@printf 'wspush: building %s in %s ... ' "$(RUN_TARGETS)" $(REL_DIR)
	@cmake -S . -B $(REL_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DWSP_WERROR=ON >/dev/null
	@if cmake --build $(REL_DIR) -j $(JOBS) --target $(RUN_TARGETS) \
		>$(REL_DIR)/build.log 2>&1; then \
		echo done; \
	else \
		echo FAILED; grep -v '^\[ *[0-9]*%\]' $(REL_DIR)/build.log >&2; \
		exit 1; \
	fi

asan: deps
	@cmake -S . -B $(SAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DWSP_WERROR=ON \
		-DWSP_SANITIZE=address,undefined >/dev/null
	@cmake --build $(SAN_DIR) -j $(JOBS)

fuzz-build: deps
	@CC=clang cmake -S . -B $(FUZZ_DIR) -DCMAKE_BUILD_TYPE=Debug \
		-DWSP_WERROR=ON -DWSP_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_all

build: release

# BROKER=amqp: a private RabbitMQ instead of Redis (make run BROKER=amqp).
run: run-build
	@BROKER=$(or $(BROKER),redis) deploy/dev/run-stack.sh $(REL_DIR)

test: asan fuzz-build format-check
	@ctest --test-dir $(FUZZ_DIR) -L fuzz --output-on-failure
	@rm -f $(SAN_DIR)/integration-summary.txt
	@rc=0; ctest --test-dir $(SAN_DIR) --output-on-failure || rc=$$?; \
		cat $(SAN_DIR)/integration-summary.txt 2>/dev/null; exit $$rc

bench: release
	@.ci/deps bench
	@tests/bench/run.sh $(REL_DIR)

fuzz: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

format-check:
	@git ls-files '*.c' '*.h' | xargs -r clang-format --dry-run --Werror

clean:
	rm -rf build
