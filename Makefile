# umacvlan: the two commands every machine starts with.
#   make demo   installs what is missing, builds, runs the lab demonstration
#   make test   installs what is missing, builds, runs every test
# Everything else here is a building block of those two.

BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 30

# Debian packages the build, the tests and the benchmarks need.
DEB_PACKAGES = cmake make g++ clang libclang-rt-14-dev pkg-config \
  libgtest-dev libgmock-dev libbenchmark-dev libfmt-dev libspdlog-dev \
  nlohmann-json3-dev libcli11-dev libmnl-dev libnftables-dev \
  iproute2 iputils-ping iputils-arping iperf3 tcpdump procps python3 kmod

.PHONY: all deps build test unit fuzz scenarios demo bench clean format

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# Every test: unit tests of the core and the I/O backends, the scenario
# suite in network namespaces (kernel macvlan vs umacvlan), and a bounded
# fuzzing run of the frame path.
test: build fuzz
	cd $(BUILD) && ctest --output-on-failure -j 1

unit: build
	cd $(BUILD) && ctest --output-on-failure -L 'core|cli|control'

fuzz: deps
	CXX=clang++ CC=clang cmake -S . -B $(FUZZ_BUILD) -DUMACVLAN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target umacvlan_core_fuzz
	mkdir -p $(FUZZ_BUILD)/corpus
	@if $(FUZZ_BUILD)/src/core/umacvlan_core_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=2048 \
	  -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus > $(FUZZ_BUILD)/fuzz.log 2>&1; then \
	  grep -E 'stat::(number_of_executed_units|new_units_added)' $(FUZZ_BUILD)/fuzz.log; \
	  echo "fuzz: $(FUZZ_SECONDS)s over the frame path, no crash"; \
	else tail -n 40 $(FUZZ_BUILD)/fuzz.log; echo "fuzz: FAILED" >&2; exit 1; fi

scenarios: build
	bash tests/scenarios/run_all.sh --impl both

demo: build
	bash tools/demo.sh

bench: build
	bash bench/run.sh

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
