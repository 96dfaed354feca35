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

.PHONY: all bpf deps venv test test-host test-kernel demo bench-compile clean

all: bpf

bpf: $(BPF_OBJECT)

# vmlinux.h is generated from the build machine's BTF, never committed.
$(BUILD)/vmlinux.h:
	@mkdir -p $(BUILD)
	@test -r $(VMLINUX_BTF) || { echo "error: $(VMLINUX_BTF) is missing: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF=y); set VMLINUX_BTF=<file with BTF>" >&2; exit 1; }
	@test -x "$(BPFTOOL)" || { echo "error: bpftool not found: apt-get install bpftool" >&2; exit 1; }
	$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

$(BPF_OBJECT): $(BPF_SOURCES) $(BUILD)/vmlinux.h
	@test -n "$(CLANG)" || { echo "error: clang not found: apt-get install clang-14" >&2; exit 1; }
	$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
		-I$(BUILD) -Ibpf -Ibpf/include -c bpf/lsmguard.bpf.c -o $@.tmp
	$(LLVM_STRIP) -g $@.tmp   # drop DWARF, keep BTF
	mv $@.tmp $@

deps:
	tests/lab/install-deps

venv: deps
	tests/lab/make-venv $(VENV)

test: venv
	$(PYTHON) -m pytest tests

test-host: venv
	$(PYTHON) -m pytest tests/unit

test-kernel: venv
	$(PYTHON) -m pytest tests/lab

demo: venv
	$(PYTHON) -m tests.lab demo

# Policy load and compile time and entry count for 1k, 10k and 100k rules.
bench-compile: venv
	$(PYTHON) -m tests.bench.bench_compile 1000 10000 100000

clean:
	rm -rf $(BUILD) *.egg-info
