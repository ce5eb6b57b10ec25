# Benchmark targets beside `make bench` (bench/run.sh, BENCHMARKS.md).
#   make bench-quick    one round, without PyTorch's minute-long full gradcheck
#   make bench-profile  where a batch-64 LeNet-5 step spends its time: perf's
#                       inclusive share per function (BUILD/bench/perf.data)
.PHONY: bench-quick bench-profile
bench-quick:
	@BENCH_QUICK=1 $(MAKE) --no-print-directory bench

bench-profile: deps
	@$(MAKE) --no-print-directory $(BUILD)/bench/lenet5_step
	perf record --call-graph dwarf -o $(BUILD)/bench/perf.data $(BUILD)/bench/lenet5_step --batch 64 --steps 400
	perf report -i $(BUILD)/bench/perf.data --children -g none --percent-limit 2 --stdio 2>/dev/null | grep '%'
