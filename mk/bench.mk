# Benchmark targets beside `make bench` (bench/run.sh, BENCHMARKS.md).
#   make bench-quick    one round, without PyTorch's minute-long full gradcheck
#   make bench-profile  perf profile of the batch-64 LeNet-5 step (build/bench/perf.data)
.PHONY: bench-quick bench-profile
bench-quick:
	@BENCH_QUICK=1 $(MAKE) --no-print-directory bench

bench-profile: deps
	@$(MAKE) --no-print-directory $(BUILD)/bench/lenet5_step
	perf record -g -o $(BUILD)/bench/perf.data $(BUILD)/bench/lenet5_step --batch 64 --steps 500
	perf report -i $(BUILD)/bench/perf.data --no-children --percent-limit 2 --stdio | head -60
