# Data-parallel training over Open MPI (dist/, include/tapegrad_dist.h).
# The core library never needs MPI: these targets are built only by
#   make MPI=1        the library plus libtapegrad_dist.a and the dist example
#   make check-mpi    installs Open MPI (scripts/deps.sh), then runs
#                     tests/mpi/ under mpirun -np 2 (scripts/run_mpi.sh)
#   make bench-mpi    LeNet-5 throughput at np = 1 and np = 2
#   make demo-mpi     examples/dist/lenet5 under mpirun -np $(MPI_NP) (default 2)
#                     with $(MPI_ARGS) (default --epochs 1)
#   make demo-gpt-mpi examples/dist/chargpt under mpirun -np $(MPI_NP) with
#                     $(GPT_MPI_ARGS) (default --steps 200 --batch 8 --sample 200)
# Every mpirun goes through scripts/mpi_env.sh, which sets what Open MPI needs
# here: OMPI_ALLOW_RUN_AS_ROOT and _CONFIRM (it refuses root otherwise), shared
# memory without cross-memory attach, one thread per rank.
.PHONY: check-mpi mpi-run bench-mpi mpi-bench-run demo-mpi mpi-demo-run demo-gpt-mpi mpi-demo-gpt-run
MPI_PKG     = ompi-c
MPI_CFLAGS  = $(shell pkg-config --cflags $(MPI_PKG) 2>/dev/null)
MPI_LIBS    = $(shell pkg-config --libs $(MPI_PKG) 2>/dev/null)
DIST_SRC    = $(wildcard dist/*.c)
DIST_OBJ    = $(DIST_SRC:%.c=$(BUILD)/%.o)
DIST_LIB    = $(BUILD)/libtapegrad_dist.a
MPI_TESTS   = $(patsubst tests/mpi/%.c,$(BUILD)/tests/mpi/%,$(wildcard tests/mpi/*.c))
MPI_EXAMPLES = $(patsubst examples/dist/%.c,$(BUILD)/examples/dist/%,$(wildcard examples/dist/*.c))
MPI_DEPS    = --extra libopenmpi-dev --extra openmpi-bin

ifeq ($(MPI),1)
all: $(DIST_LIB) $(MPI_EXAMPLES)
endif
# make bench measures the data-parallel scaling too when Open MPI is there
# (bench/run.sh runs bench/mpi.sh when the example is built).
ifneq ($(MPI_LIBS),)
BENCHES += $(MPI_EXAMPLES)
endif

# Its own rule, not a target-specific CFLAGS: that would reach the flags
# stamp (a prerequisite) and rebuild the whole library.
$(BUILD)/dist/%.o: dist/%.c $(HEADERS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) -c $< -o $@

$(DIST_LIB): $(DIST_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/mpi/%: tests/mpi/%.c $(wildcard examples/*.h) $(DIST_LIB) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) $< -o $@ $(DIST_LIB) $(STATIC) $(LDFLAGS) $(MPI_LIBS) $(LDLIBS)

$(BUILD)/examples/dist/%: examples/dist/%.c $(wildcard examples/*.h) $(DIST_LIB) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) $< -o $@ $(DIST_LIB) $(STATIC) $(LDFLAGS) $(MPI_LIBS) $(LDLIBS)

check-mpi:
	@sh scripts/deps.sh $(MPI_DEPS)
	@$(MAKE) --no-print-directory MPI=1 mpi-run

mpi-run: all $(MPI_TESTS)
	@sh scripts/run_mpi.sh $(BUILD)

bench-mpi:
	@sh scripts/deps.sh $(MPI_DEPS)
	@$(MAKE) --no-print-directory MPI=1 mpi-bench-run

mpi-bench-run: all
	sh bench/mpi.sh $(BUILD)

MPI_NP   ?= 2
MPI_ARGS ?= --epochs 1
demo-mpi:
	@sh scripts/deps.sh $(MPI_DEPS)
	@$(MAKE) --no-print-directory MPI=1 mpi-demo-run

mpi-demo-run: all
	. scripts/mpi_env.sh && mpirun -np $(MPI_NP) $(BUILD)/examples/dist/lenet5 $(MPI_ARGS)

# The GPT (needs Debian's fortunes, which scripts/deps.sh installs); the
# global batch is --batch x MPI_NP (8 x 2 = the one-process recipe's 16).
GPT_MPI_ARGS ?= --steps 200 --batch 8 --sample 200
demo-gpt-mpi:
	@sh scripts/deps.sh $(MPI_DEPS)
	@$(MAKE) --no-print-directory MPI=1 mpi-demo-gpt-run

mpi-demo-gpt-run: all
	. scripts/mpi_env.sh && timeout 3600 mpirun -np $(MPI_NP) $(BUILD)/examples/dist/chargpt $(GPT_MPI_ARGS)
