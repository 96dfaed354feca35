# lsmguard: build the BPF object, set up the tools, run tests and the demo.
# `make test` and `make demo` install everything they need (as root on Debian 12).

BUILD        ?= build
VENV         ?= .venv
PYTHON       := $(VENV)/bin/python
CLANG        ?= $(shell command -v clang-14 || command -v clang)
BPFTOOL      ?= $(shell command -v bpftool || echo /usr/sbin/bpftool)
LLVM_STRIP   ?= $(shell command -v llvm-strip-14 || command -v llvm-strip)
VMLINUX_BTF  ?= /sys/kernel/btf/vmlinux
ARCH         := x86

BPF_SOURCES  := $(wildcard bpf/*.bpf.c bpf/*.bpf.h bpf/include/lsmguard/*.h)
BPF_OBJECT   := $(BUILD)/lsmguard.bpf.o
LOCK_OBJECT  := $(BUILD)/lsmguard-lock.bpf.o
PROBE_OBJECT := $(BUILD)/lsmguard-probe.bpf.o

.PHONY: all bpf deps venv lint test test-host test-kernel test-kernel-full test-programs demo bench bench-driver bench-compile bench-pipeline bench-pipeline-programs bench-hotpath bench-hotpath-programs packages deb rpm srpm completions clean

all: bpf

bpf: $(BPF_OBJECT) $(LOCK_OBJECT) $(PROBE_OBJECT)

# vmlinux.h is generated from the build machine's BTF, never committed.
$(BUILD)/vmlinux.h:
	@mkdir -p $(BUILD)
	@test -r $(VMLINUX_BTF) || { echo "error: $(VMLINUX_BTF) is missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF=y); set VMLINUX_BTF=<file with BTF>" >&2; exit 1; }
	@test -x "$(BPFTOOL)" || { echo "error: bpftool not found: apt-get install bpftool" >&2; exit 1; }
	$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

$(BUILD)/%.bpf.o: $(BPF_SOURCES) $(BUILD)/vmlinux.h
	@test -n "$(CLANG)" || { echo "error: clang not found: apt-get install clang-14" >&2; exit 1; }
	$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
		-I$(BUILD) -Ibpf -Ibpf/include -c bpf/$(subst lsmguard-,,$*).bpf.c -o $@.tmp
	$(LLVM_STRIP) -g $@.tmp   # drop DWARF, keep BTF
	mv $@.tmp $@

# Programs the kernel tests run: the Phantom attacker and the syscall-entry
# tracer it fools (tests/race), built here because clang is slow in the lab.
TEST_BUILD   := $(BUILD)/tests

test-programs: $(TEST_BUILD)/phantom $(TEST_BUILD)/race-tracer.bpf.o $(TEST_BUILD)/cnrig

# The crypto-miner story's stand-in miner (tests/kernel/test_story.py): static, as dropped ones are.
$(TEST_BUILD)/cnrig: tests/story/cnrig.c
	@mkdir -p $(TEST_BUILD)
	gcc -O2 -Wall -Wextra -Werror -static -o $@ $<

$(TEST_BUILD)/phantom: tests/race/phantom.c
	@mkdir -p $(TEST_BUILD)
	gcc -O2 -Wall -Wextra -Werror -o $@ $<

# -mcpu=v3: the tracer counts with an atomic fetch-and-add.
$(TEST_BUILD)/race-tracer.bpf.o: tests/race/tracer.bpf.c tests/race/race.h $(BUILD)/vmlinux.h
	@mkdir -p $(TEST_BUILD)
	$(CLANG) -g -O2 -mcpu=v3 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -I$(BUILD) -Itests/race -c $< -o $@

deps:
	tests/lab/install-deps

venv: deps
	tests/lab/make-venv $(VENV)

# ruff (pyflakes, pycodestyle, isort, bugbear and pyupgrade rules) and mypy over lsm/ and
# loader/, as pyproject.toml configures them. mypy reads the import package lsmguard, which
# only setuptools' package-dir maps onto lsm/ and loader/: it checks a tree of links laid out
# as the package is installed, and names files by their module path (lsmguard/cli/rules.py).
LINT_TREE    := $(BUILD)/lint

lint: venv
	$(VENV)/bin/ruff check
	rm -rf $(LINT_TREE) && mkdir -p $(LINT_TREE)/lsmguard
	for entry in lsm/*.py lsm/*/; do ln -s $(CURDIR)/$${entry%/} $(LINT_TREE)/lsmguard/; done
	ln -s $(CURDIR)/loader $(LINT_TREE)/lsmguard/loader
	cd $(LINT_TREE) && $(abspath $(VENV))/bin/mypy --config-file $(CURDIR)/pyproject.toml -p lsmguard

# The packaging tests install the deb that `make deb` built, on this machine
# and in the kernel lab, so the packages are built first. The lint gate runs first.
test: venv lint packages test-programs bench-driver bench-pipeline-programs bench-hotpath-programs
	$(PYTHON) -m pytest tests

test-host: venv bench-pipeline-programs bench-hotpath-programs
	$(PYTHON) -m pytest tests/unit

test-kernel: venv test-programs
	$(PYTHON) -m pytest tests/lab

# Every kernel test on every lab kernel, the one_kernel modules too (tests/kernel/conftest.py).
test-kernel-full: venv test-programs
	LSMGUARD_LAB_EVERY_KERNEL=1 $(PYTHON) -m pytest tests/lab

demo: venv
	$(PYTHON) -m tests.lab demo

# Overhead per system call against no enforcement and AppArmor, one lab boot per clock:
# `wall` (two vCPUs, wall time; with the pipeline and latency steps) and `icount` (one
# vCPU whose clock counts instructions: CPU time per operation, free of the host's noise,
# with the kernel's per-program statistics). Prints each table and writes
# build/bench/bench-CLOCK.json, build/bench/CLOCK-SERIES.json (the shape docs/bench/ keeps)
# and overhead-CLOCK.png. BENCH_SIZE=full for longer loops, BENCH_ROUNDS for more rounds,
# BENCH_CLOCK=wall or icount for one of the two.
BENCH_DIR    := $(abspath $(BUILD))/bench
BENCH_KERNEL ?= 6.1
BENCH_SIZE   ?= ci
BENCH_ROUNDS ?= 3
BENCH_CLOCK  ?= wall icount
# The lab's deadline for the whole boot (default 900 s): a full-size run takes longer.
BENCH_TIMEOUT ?= 7200

bench-driver: $(BENCH_DIR)/driver $(BENCH_DIR)/static-true

$(BENCH_DIR)/driver: tests/bench/driver.c
	@mkdir -p $(BENCH_DIR)
	gcc -O2 -Wall -Wextra -Werror -o $@ $<

$(BENCH_DIR)/static-true: tests/bench/static_true.c
	@mkdir -p $(BENCH_DIR)
	gcc -O2 -static -o $@ $<

bench: venv bench-driver
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/bench/requirements.txt
	set -e; for clock in $(BENCH_CLOCK); do \
		rm -rf $(BENCH_DIR)/raw-$$clock; \
		LSMGUARD_LAB_TIMEOUT=$(BENCH_TIMEOUT) $(PYTHON) -m tests.lab run --results $(BENCH_DIR)/raw-$$clock \
			$$([ $$clock = icount ] && echo --icount) $(BENCH_KERNEL) -- \
			$(abspath $(PYTHON)) -m tests.bench.guest $(BENCH_DIR)/raw-$$clock --size $(BENCH_SIZE) \
			--rounds $(BENCH_ROUNDS) --clock $$clock; \
		$(PYTHON) -m tests.bench.report $(BENCH_DIR)/raw-$$clock $(BENCH_DIR); \
	done

# The event pipeline on this host's own kernel, no lab: a socket-filter producer (run with
# BPF_PROG_TEST_RUN) writes abi.h events into a real ring buffer, the daemon's event path reads
# them into a real journald; journald's own ingest of the same records from a C sender beside it.
# Prints events/s and the pipeline/journald ratio, writes build/bench/pipeline-host.json.
# PIPELINE_SIZE=smoke|ci|full.
PIPELINE_SIZE ?= ci

bench-pipeline-programs: $(BENCH_DIR)/producer.bpf.o $(BENCH_DIR)/journal-sender

$(BENCH_DIR)/producer.bpf.o: tests/bench/producer.bpf.c bpf/event_maps.bpf.h bpf/coalesce.bpf.h bpf/include/lsmguard/abi.h $(BUILD)/vmlinux.h
	@mkdir -p $(BENCH_DIR)
	$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -I$(BUILD) -Ibpf -Ibpf/include -c $< -o $@

$(BENCH_DIR)/journal-sender: tests/bench/journal_sender.c
	@mkdir -p $(BENCH_DIR)
	gcc -O2 -Wall -Wextra -Werror -o $@ $< $$(pkg-config --cflags --libs libsystemd)

bench-pipeline: venv bench-pipeline-programs
	$(PYTHON) -m tests.bench.host_pipeline $(BENCH_DIR) --size $(PIPELINE_SIZE)

# The LSM hot path's lookups on this host's own kernel, no lab: socket-filter twins of
# bpf/path.bpf.h and bpf/scratch.bpf.h (run with BPF_PROG_TEST_RUN) look names up in entries
# the real compiler wrote, the code before issue 24 beside each optimisation, in one run.
# Prints ns per lookup and the ratios; writes build/bench/hotpath.json. HOTPATH_SIZE=smoke|full.
HOTPATH_SIZE ?= full

bench-hotpath-programs: $(BENCH_DIR)/hotpath.bpf.o

$(BENCH_DIR)/hotpath.bpf.o: tests/bench/hotpath.bpf.c tests/bench/hotpath_before.h $(BPF_SOURCES) $(BUILD)/vmlinux.h
	@mkdir -p $(BENCH_DIR)
	$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -I$(BUILD) -Ibpf -Ibpf/include -c $< -o $@

bench-hotpath: venv bench-hotpath-programs
	$(PYTHON) -m tests.bench.hotpath $(BENCH_DIR) --size $(HOTPATH_SIZE)

# Policy load and compile time and entry count for 1k, 10k and 100k rules.
bench-compile: venv
	$(PYTHON) -m tests.bench.bench_compile 1000 10000 100000

# -- packages -------------------------------------------------------------------
# Both are built from a staged copy of the tree's files (tracked and new, never
# ignored ones such as build/ or .venv/), so a dirty build directory cannot leak
# into a package.
VERSION      := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PACKAGES_DIR := $(BUILD)/packages
DEB_STAGE    := $(BUILD)/deb
RPM_TOPDIR   := $(abspath $(BUILD)/rpmbuild)
# Packages build with the distribution's tools only (a pyenv or a venv first
# on PATH would bring its own python3).
SYSTEM_PATH  := /usr/sbin:/usr/bin:/sbin:/bin
# stage DIR: copy the tree's tracked and new files (never ignored ones) to DIR.
stage = rm -rf $(1) && mkdir -p $(1) && git ls-files -z --cached --others --exclude-standard \
	| tar --null -T - -cf - | tar -C $(1) -xf -

packages: deb rpm

deb:
	$(call stage,$(DEB_STAGE)/lsmguard-$(VERSION))
	cp -r packaging/debian $(DEB_STAGE)/lsmguard-$(VERSION)/debian
	cp packaging/lsmguard.service $(DEB_STAGE)/lsmguard-$(VERSION)/debian/lsmguard.service
	cd $(DEB_STAGE)/lsmguard-$(VERSION) && PATH=$(SYSTEM_PATH) dpkg-buildpackage --build=binary --no-sign
	mkdir -p $(PACKAGES_DIR) && rm -f $(PACKAGES_DIR)/lsmguard_*.deb
	mv $(DEB_STAGE)/lsmguard_$(VERSION)_*.deb $(PACKAGES_DIR)/

# The source rpm (`make srpm`) is what Fedora and RHEL-family hosts build the binary rpm
# from (`rpmbuild --rebuild`), with their own python and macros. `make rpm` rebuilds it
# here with rpmbuild from Debian's rpm package: its database knows no BuildRequires, so
# --nodeps; install-deps installs their Debian equivalents.
srpm:
	$(call stage,$(RPM_TOPDIR)/stage/lsmguard-$(VERSION))
	mkdir -p $(RPM_TOPDIR)/SOURCES
	tar -C $(RPM_TOPDIR)/stage -czf $(RPM_TOPDIR)/SOURCES/lsmguard-$(VERSION).tar.gz lsmguard-$(VERSION)
	rm -f $(RPM_TOPDIR)/SRPMS/lsmguard-*.src.rpm
	PATH=$(SYSTEM_PATH) rpmbuild -bs --nodeps --define "_topdir $(RPM_TOPDIR)" packaging/rpm/lsmguard.spec
	mkdir -p $(PACKAGES_DIR) && rm -f $(PACKAGES_DIR)/lsmguard-*.src.rpm
	cp $(RPM_TOPDIR)/SRPMS/lsmguard-$(VERSION)-*.src.rpm $(PACKAGES_DIR)/

rpm: srpm
	rm -rf $(RPM_TOPDIR)/RPMS
	PATH=$(SYSTEM_PATH) rpmbuild --rebuild --nodeps --define "_topdir $(RPM_TOPDIR)" $(PACKAGES_DIR)/lsmguard-$(VERSION)-*.src.rpm
	mkdir -p $(PACKAGES_DIR) && find $(PACKAGES_DIR) -name 'lsmguard-*.rpm' ! -name '*.src.rpm' -delete
	mv $(RPM_TOPDIR)/RPMS/*/lsmguard-$(VERSION)-*.rpm $(PACKAGES_DIR)/

# The bash, zsh and fish completions, written from the argument parser (the tests check
# that the files in the tree match it).
completions: venv
	$(PYTHON) packaging/completion/generate.py packaging/completion

clean:
	rm -rf $(BUILD) *.egg-info
