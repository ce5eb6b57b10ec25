# tapegrad - build, test, install.
#   make            static + shared library
#   make check      Check suite (runs scripts/deps.sh first)
#   make demo       the main job: LeNet-5 on Fashion-MNIST + whole-graph check
#   make install    PREFIX=/usr/local DESTDIR=
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
BUILD    ?= build
# The library is built for the x86-64-v2 baseline (no -march=native: an
# installed library runs on any x86-64-v2 CPU); the hot kernels
# (ops/NAME_kernels.c) are built once more per ISA variant and chosen at run time
# (ops/isa.h; TAPEGRAD_ISA=v2|v3|v4 forces one).
OPT      ?= -O2 -march=x86-64-v2 -mtune=generic
ISAS      = v2 v3 v4
ISA_FLAGS_v2 = -march=x86-64-v2
ISA_FLAGS_v3 = -march=x86-64-v3
ISA_FLAGS_v4 = -march=x86-64-v4
PKGS      = openblas
WARN      = -Wall -Wextra -Werror
# -fvisibility=hidden: the shared library exports what include/tapegrad.h
# declares and nothing else (the header marks its declarations default).
CFLAGS   += -std=gnu11 -Iinclude $(OPT) -g -fPIC -fvisibility=hidden -fopenmp $(WARN) $(shell pkg-config --cflags $(PKGS))
# oneDNN (libdnnl-dev) ships no pkg-config file: its float32 GEMMs (ops/blas.c).
# It is C++; -lstdc++ ahead of -ljemalloc makes the loader bind operator new
# and delete to libstdc++'s (which call whatever malloc the program has), not
# to jemalloc's (kept with --no-as-needed, since nothing of ours calls it): in
# a program linked to the shared library only, malloc is
# glibc's, and oneDNN's new with jemalloc but free with glibc aborted.
LDLIBS   += $(shell pkg-config --libs $(PKGS)) -ldnnl -Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state \
            -lz -lm -fopenmp
ifeq ($(SANITIZE),1)
  # ASan/UBSan with the system allocator: jemalloc and ASan do not mix.
  BUILD   = build-asan
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
            -DTAPEGRAD_SYSTEM_ALLOC -O1
  LDFLAGS += -fsanitize=address,undefined
else ifeq ($(FUZZ),1)
  # libFuzzer builds (clang): the library instrumented for coverage, ASan, UBSan.
  CC      = clang
  BUILD   = build-fuzz
  WARN    = -Wall -Wextra -Werror -Wno-pass-failed
  CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -DTAPEGRAD_SYSTEM_ALLOC -O1
  LDFLAGS += -fsanitize=address,undefined
else ifeq ($(VALGRIND),1)
  # valgrind sees only the system allocator's blocks, so no jemalloc here.
  # valgrind decodes AVX2 but not AVX-512, and its cpuid says so: the
  # kernels' v3 variant runs (run_valgrind.sh also sets TAPEGRAD_ISA=v3).
  BUILD   = build-valgrind
  CFLAGS += -DTAPEGRAD_SYSTEM_ALLOC
else
  LDLIBS += -ljemalloc
endif

KERN_SRC = $(wildcard ops/*_kernels.c)
LIB_SRC  = $(filter-out $(KERN_SRC),$(wildcard autograd/*.c ops/*.c nn/*.c))
KERN_OBJ = $(foreach v,$(ISAS),$(KERN_SRC:%.c=$(BUILD)/%.$(v).o))
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o) $(KERN_OBJ)
HEADERS  = $(wildcard include/*.h autograd/*.h ops/*.h nn/*.h)
TESTS    = $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
EXAMPLES = $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
BENCHES  = $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
TOOLS    = $(patsubst tools/%.c,$(BUILD)/tools/%,$(wildcard tools/*.c))
# The shared library carries a versioned SONAME: a program linked against
# libtapegrad.so records libtapegrad.so.$(SOMAJOR), which an incompatible
# release would rename.
VERSION  = 0.1.0
SOMAJOR  = 0
STATIC   = $(BUILD)/libtapegrad.a
SHARED   = $(BUILD)/libtapegrad.so.$(VERSION)

.PHONY: all deps check check-asan check-built check-valgrind demo install uninstall clean docs gradcheck \
        bench check-torch plot fuzz fuzz-run valgrind-run
all: $(STATIC) $(SHARED) $(EXAMPLES) $(TOOLS)

deps:
	@sh scripts/deps.sh

# Objects depend on the flags they were built with: a change of flags rebuilds.
FLAGS_STAMP = $(BUILD)/.flags
$(FLAGS_STAMP): FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(CFLAGS) kernels: $(KERNEL_OPT)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) kernels: $(KERNEL_OPT)' > $@
FORCE:

$(BUILD)/%.o: %.c $(HEADERS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The registry's list of op families, found in ops/ (each file defining a
# table tg_ops_<family>[]): a new family touches no file in autograd/.
FAMILY_SRC = $(filter-out $(KERN_SRC),$(wildcard ops/*.c))
$(BUILD)/gen/op_families.h: $(FAMILY_SRC) scripts/op_families.sh
	@mkdir -p $(dir $@)
	@sh scripts/op_families.sh $(FAMILY_SRC) > $@.tmp && mv $@.tmp $@
$(BUILD)/autograd/registry.o: $(BUILD)/gen/op_families.h
$(BUILD)/autograd/registry.o: CFLAGS += -I$(BUILD)/gen

# One object per kernel file and variant: the variant's -march after the
# baseline's, its name as TG_ISA (the suffix of the symbols it exports).
# No -Wno-psabi: a 64-byte vector passed or returned by value below AVX-512
# changes the calling convention (GCC and clang warn, -Werror fails), so the
# kernels keep such vectors inside always_inline helpers and locals.
# KERNEL_OPT comes after the sanitizer builds' -O1: the kernels stay
# instrumented but vectorised, so the sanitized suite runs the vector code it
# checks, and in time (the float64 LeNet-5 full check spent 46 s in one -O1 GEMM).
KERNEL_OPT = -O2
define ISA_RULE
$$(BUILD)/%.$(1).o: %.c $$(HEADERS) $$(FLAGS_STAMP)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$(KERNEL_OPT) $$(ISA_FLAGS_$(1)) -DTG_ISA=$(1) -c $$< -o $$@
endef
$(foreach v,$(ISAS),$(eval $(call ISA_RULE,$(v))))

# The activations' kernels compute both sides of each select (tanh's
# polynomial and its exp form, the clamps of e^x) so the loops vectorise;
# under -ftrapping-math GCC keeps them as branches, since an operation of the
# side not taken could raise a flag. Nothing reads the floating-point flags.
$(BUILD)/ops/act_kernels.%.o: CFLAGS += -fno-trapping-math

# The optimiser's update loops take sqrt per element; without errno to set,
# the compiler can vectorise it (Adam's step was scalar and 9% of an epoch).
# Nothing in optim.c reads errno. -fno-trapping-math lets the selects of the
# loops (flush_subnormal) vectorise; nothing reads the floating-point flags.
# -ffp-contract=off: the loops cloned for v3/v4 (FMA) keep the baseline's bits.
$(BUILD)/nn/optim.o: CFLAGS += -fno-math-errno -fno-trapping-math -ffp-contract=off

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libtapegrad.so.$(SOMAJOR) -o $@ $^ $(LDFLAGS) $(LDLIBS)
	ln -sf libtapegrad.so.$(VERSION) $(BUILD)/libtapegrad.so.$(SOMAJOR)
	ln -sf libtapegrad.so.$(SOMAJOR) $(BUILD)/libtapegrad.so

# The tests link a library of their own: the release objects, except that
# the files with test hooks (the n-th allocation fails, the arena poisoned
# with NaN) are built again with -DTAPEGRAD_TEST_HOOKS. The release library
# carries no hook.
HOOK_SRC = autograd/memory.c
HOOK_OBJ = $(HOOK_SRC:%.c=$(BUILD)/hooks/%.o)
TEST_LIB = $(BUILD)/libtapegrad-test.a
$(BUILD)/hooks/%.o: %.c $(HEADERS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DTAPEGRAD_TEST_HOOKS -c $< -o $@

$(TEST_LIB): $(filter-out $(HOOK_SRC:%.c=$(BUILD)/%.o),$(LIB_OBJ)) $(HOOK_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(TEST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DTAPEGRAD_TEST_HOOKS $< -o $@ $(TEST_LIB) $(LDFLAGS) $(shell pkg-config --libs check) $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(wildcard examples/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(STATIC) $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(STATIC) $(LDFLAGS) $(LDLIBS)

$(BUILD)/tools/%: tools/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(STATIC) $(LDFLAGS) $(LDLIBS)

check: deps
	@$(MAKE) --no-print-directory all $(TESTS)
	@sh scripts/test_install.sh
	@sh scripts/errors_doc.sh --check
	@$(BUILD)/tools/opsdoc | cmp -s - docs/ops.md || { echo "docs/ops.md is stale: run make docs"; exit 1; }
	@sh scripts/run_tests.sh $(TESTS)

check-asan: deps
	@$(MAKE) --no-print-directory SANITIZE=1 check-built

FUZZERS      = $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard fuzz/*.c))
FUZZ_SECONDS ?= 60
$(BUILD)/fuzz/%: fuzz/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $< -o $@ $(STATIC) $(LDFLAGS) $(LDLIBS)

# Each libFuzzer target for FUZZ_SECONDS on a copy of its seed corpus.
fuzz:
	@sh scripts/deps.sh --extra clang --extra libclang-rt-dev --extra libomp-dev
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-run

fuzz-run: $(FUZZERS)
	@sh scripts/run_fuzz.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZERS)

# valgrind memcheck over the examples and a sample of the tests: zero errors,
# zero leaks (VALGRIND_TESTS to choose the sample).
VALGRIND_TESTS ?= test_core test_anomaly test_alloc_fail
check-valgrind:
	@sh scripts/deps.sh --extra valgrind
	@$(MAKE) --no-print-directory VALGRIND=1 valgrind-run

valgrind-run: all $(TESTS)
	@sh scripts/run_valgrind.sh $(BUILD) "$(VALGRIND_TESTS)"

check-built: $(TESTS)
	@sh scripts/run_tests.sh $(TESTS)

# The main job: one epoch of LeNet-5 on Fashion-MNIST, a checkpoint, and the
# whole-LeNet-5 gradient check with its report.
# (Targets that need the dependencies run deps first, then a fresh make that
# reads the flags pkg-config gives once the packages are there.)
demo: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/examples/lenet5 --epochs 1 --save $(BUILD)/lenet5.safetensors --csv $(BUILD)/lenet5.csv
	$(BUILD)/tools/gradcheck --lenet5

# Registry-wide numerical check, one row per op and case, then whole LeNet-5.
gradcheck: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/tools/gradcheck

# docs/ops.md is produced from the registry, docs/errors.md from the sources.
docs: $(BUILD)/tools/opsdoc
	$(BUILD)/tools/opsdoc > docs/ops.md
	sh scripts/errors_doc.sh

bench: deps
	@$(MAKE) --no-print-directory all $(BENCHES)
	sh bench/run.sh $(BUILD)

# The LeNet-5 step and checkpoints against PyTorch (a peer, installed here
# only for this comparison; never needed by the library).
check-torch: deps
	@$(MAKE) --no-print-directory all
	sh scripts/deps.sh --extra python3-torch
	/usr/bin/python3 scripts/torch_match.py $(BUILD)
	/usr/bin/python3 scripts/torch_match_attention.py $(BUILD)
	/usr/bin/python3 scripts/torch_chargpt_load.py $(BUILD)

plot: deps
	gnuplot -e "csv='$(BUILD)/lenet5.csv'; png='$(BUILD)/lenet5.png'" scripts/plot.gp

install: $(STATIC) $(SHARED)
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libtapegrad.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libtapegrad.so.$(SOMAJOR)
	ln -sf libtapegrad.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libtapegrad.so
	install -m 644 include/tapegrad.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' tapegrad.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tapegrad.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libtapegrad.a $(DESTDIR)$(PREFIX)/lib/libtapegrad.so \
	      $(DESTDIR)$(PREFIX)/lib/libtapegrad.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libtapegrad.so.$(VERSION) \
	      $(DESTDIR)$(PREFIX)/include/tapegrad.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/tapegrad.pc

clean:
	rm -rf build build-asan

# Extra targets of the benchmark and reliability work live in mk/*.mk.
-include mk/*.mk
