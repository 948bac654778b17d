# umacvlan: the two commands every machine starts with.
#   make demo   installs what is missing, builds, runs the lab demonstration
#   make test   installs what is missing, builds, runs every test
# Everything else here is a building block of those two.

BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
ASAN_BUILD ?= build-asan
CHURN_SECONDS ?= 20
SOAK_SECONDS ?= 600
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 20
# The libFuzzer targets `make fuzz` runs, FUZZ_SECONDS each, one after the
# other: corpus name (tests/fuzz/corpus/NAME), binary in $(FUZZ_BUILD),
# -max_len.
FUZZ_TARGETS = frame:src/core/umacvlan_core_fuzz:2048 \
  control:src/control/umacvlan_control_fuzz:4096 \
  cli:src/cli/umacvlan_cli_fuzz:2048

# Debian packages the build, the tests and the benchmarks need.
DEB_PACKAGES = cmake make g++ clang libclang-rt-14-dev pkg-config \
  libgtest-dev libgmock-dev libbenchmark-dev libfmt-dev libspdlog-dev \
  nlohmann-json3-dev libcli11-dev libtomlplusplus-dev libmnl-dev libnftables-dev liburing-dev libbpf-dev libpcap-dev libcpp-httplib-dev \
  iproute2 iputils-ping iputils-arping iperf3 vde2 tcpdump procps python3 kmod nftables passwd util-linux curl python3-prometheus-client \
  dnsmasq-base radvd ndisc6 busybox socat containernetworking-plugins help2man \
  libsystemd-dev systemd dpkg-dev file

.PHONY: all deps build product test unit fuzz fuzz-run asan-fuzz asan asan-build soak scenarios conformance cni demo bench install deb clean format

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

# Everything: the product, the tests, the benchmarks.
build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# The product alone (the umacvlan binary), for the scenarios and the lab.
product: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target umacvlan

# Every test: bounded fuzzing runs and every unit test (core, CLI, control,
# I/O backends in namespaces, dataplane) and a short churn, on one clang
# AddressSanitizer + UBSan build; then the scenario suite in network
# namespaces (kernel macvlan vs umacvlan, and the daemon's own) on the
# normal, optimised build. The unit tests are built and run once, on the
# sanitizer build: that keeps `make test` well inside its half hour.
test: asan-build asan-fuzz asan product
	cd $(BUILD) && ctest --output-on-failure -j 3 -L scenario

unit: build
	cd $(BUILD) && ctest --output-on-failure -L 'core|cli|control'

# Each target starts from a working corpus in $(FUZZ_BUILD)/corpus/NAME,
# seeded with a copy of tests/fuzz/corpus/NAME (new units never go back into
# the repository); its log is $(FUZZ_BUILD)/fuzz-NAME.log and a crashing
# input is saved as $(FUZZ_BUILD)/NAME-crash-* (NAME-timeout-* for one input
# that takes over 25 s). All targets run; a crash in any of them fails.
FUZZ_BINS = $(foreach t,$(FUZZ_TARGETS),$(notdir $(word 2,$(subst :, ,$(t)))))
fuzz: deps
	CXX=clang++ CC=clang cmake -S . -B $(FUZZ_BUILD) -DUMACVLAN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZ_BINS)
	@$(MAKE) --no-print-directory fuzz-run FUZZ_BUILD=$(FUZZ_BUILD)

# The same runs on the fuzz targets of the sanitizer build (`make test`:
# one clang tree for the fuzzers and the unit tests).
asan-fuzz: asan-build
	@$(MAKE) --no-print-directory fuzz-run FUZZ_BUILD=$(ASAN_BUILD)

fuzz-run:
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  name=$${t%%:*}; rest=$${t#*:}; bin=$${rest%%:*}; max_len=$${rest#*:}; \
	  corpus=$(FUZZ_BUILD)/corpus/$$name; log=$(FUZZ_BUILD)/fuzz-$$name.log; \
	  mkdir -p $$corpus && cp tests/fuzz/corpus/$$name/* $$corpus/ || exit 1; \
	  if $(FUZZ_BUILD)/$$bin -max_total_time=$(FUZZ_SECONDS) -max_len=$$max_len -timeout=25 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/$$name- $$corpus > $$log 2>&1; then \
	    runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
	    echo "fuzz $$name: $$runs executions in $(FUZZ_SECONDS)s, no crash"; \
	  else tail -n 40 $$log; echo "fuzz $$name: FAILED (log: $$log)" >&2; failed="$$failed $$name"; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed" >&2; exit 1; fi

# AddressSanitizer + UBSan (a finding aborts): every gtest binary, then the
# churn scenario (devices added, moved, changed, deleted while traffic
# flows) against a daemon of that build; a sanitizer report fails it.
# The sanitizer build is built for its tests alone: every gtest binary (a
# test binary missing here shows up in ctest as *_NOT_BUILT, a failure), the
# CLI, the daemon and the fuzz targets; not the benchmarks, the CNI plugin
# or the man page. -O1 -g1: about half the compile time of -O2 -g, the same
# findings. clang, not g++: on this 2-core machine it builds these targets
# in about half the time g++ takes (733 s with g++), and the fuzz targets
# share its objects. A tree configured for another compiler is made afresh.
ASAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
ASAN_TARGETS = umacvlan_core_test umacvlan_control_test umacvlan_cli_test umacvlan_cni_test \
  umacvlan_daemon_test umacvlan_dataplane_test umacvlan_io_test umacvlan umacvlan-daemon
asan-build: deps
	@grep -qs '^CMAKE_CXX_COMPILER:.*clang' $(ASAN_BUILD)/CMakeCache.txt || rm -rf $(ASAN_BUILD)
	CXX=clang++ CC=clang cmake -S . -B $(ASAN_BUILD) -DUMACVLAN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target $(ASAN_TARGETS) $(FUZZ_BINS)

asan: asan-build
	cd $(ASAN_BUILD) && $(ASAN_ENV) ctest --output-on-failure -j 2 -L 'core|cli|control'
	cd $(ASAN_BUILD) && $(ASAN_ENV) ctest --output-on-failure -j 1 -LE 'scenario|core|cli|control'
	$(ASAN_ENV) UMACVLAN_BIN=$(CURDIR)/$(ASAN_BUILD)/src/cli/umacvlan \
	  bash tests/scenarios/churn.sh --seconds $(CHURN_SECONDS)

# The same churn for SOAK_SECONDS (10 minutes) on the sanitizer build:
# rounds, pings sent and lost, crashes, leaks, peak RSS and fds.
soak: asan-build
	$(ASAN_ENV) UMACVLAN_BIN=$(CURDIR)/$(ASAN_BUILD)/src/cli/umacvlan \
	  bash tests/scenarios/churn.sh --seconds $(SOAK_SECONDS)

scenarios: product
	bash tests/scenarios/run_all.sh --impl both

# The differential conformance suite alone (also part of `make test`, one
# CTest per script): one table of every observation, kernel vs umacvlan.
conformance: product
	UMACVLAN_BIN=$(CURDIR)/$(BUILD)/src/cli/umacvlan bash tests/conformance/run.sh

# The CNI plugin against the reference CNI macvlan plugin alone (also part
# of `make test`): one table, reference vs umacvlan-cni.
cni: product
	UMACVLAN_BIN=$(CURDIR)/$(BUILD)/src/cli/umacvlan bash tests/cni/cni.sh --impl both

demo: product
	bash tools/demo.sh

bench: product
	cmake --build $(BUILD) -j $(JOBS) --target umacvlan_core_bench
	bash bench/run.sh $(BENCH_ARGS)

# The CLI and the daemon in $(PREFIX)/sbin, the CNI plugin as
# $(PREFIX)/lib/cni/umacvlan, the man page umacvlan(8), the systemd unit
# umacvlan.service, the bash and zsh completions (DESTDIR honoured, for
# packaging).
PREFIX ?= /usr
install: product
	cmake --build $(BUILD) --target man
	cmake --install $(BUILD) --prefix $(PREFIX)

# The Debian package umacvlan_VERSION_ARCH.deb in $(BUILD) (CPack): what
# `make install` installs, under /usr, with the systemd unit and the shell
# completions; Depends from the binaries' libraries plus iproute2, nftables.
deb: product
	cmake --build $(BUILD) --target man
	cd $(BUILD) && cpack -G DEB

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD)
