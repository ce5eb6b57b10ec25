# Data-parallel training over Open MPI (dist/, include/tapegrad_dist.h).
# The core library never needs MPI: these targets are built only by
#   make MPI=1        the library plus libtapegrad_dist.a and the dist example
#   make check-mpi    installs Open MPI (scripts/deps.sh), then runs
#                     tests/mpi/ under mpirun -np 2 (scripts/run_mpi.sh)
#   make bench-mpi    LeNet-5 throughput at np = 1 and np = 2
.PHONY: check-mpi mpi-run bench-mpi mpi-bench-run
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

# Its own rule, not a target-specific CFLAGS: that would reach the flags
# stamp (a prerequisite) and rebuild the whole library.
$(BUILD)/dist/%.o: dist/%.c $(HEADERS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) -c $< -o $@

$(DIST_LIB): $(DIST_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/mpi/%: tests/mpi/%.c $(DIST_LIB) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MPI_CFLAGS) $< -o $@ $(DIST_LIB) $(STATIC) $(LDFLAGS) $(MPI_LIBS) $(LDLIBS)

$(BUILD)/examples/dist/%: examples/dist/%.c $(DIST_LIB) $(STATIC)
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
