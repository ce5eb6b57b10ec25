#!/bin/sh
# shellcheck disable=SC2317 # the runners are called through eval in pair()
# run.sh - the figures of `make bench`, each beside PyTorch's.
#
#   sh bench/run.sh [BUILD]          (BUILD: the build folder, default build)
#
# Environment:
#   BENCH_ROUNDS=N     rounds of every figure (default 3; 1 with BENCH_QUICK=1)
#   BENCH_QUICK=1      one round, and without PyTorch's full-mode gradcheck (~70 s)
#   OMP_WAIT_POLICY    default passive, for the project's and PyTorch's runs alike
#   BENCH_PEERS=DIR    the PyTorch peers (default ../shared/peers from the repository root)
#   BENCH_ISAS="v4 v3" the kernel variants to measure (default: every one this CPU runs,
#                      scripts/isa_variants.sh), best first
#
# Every figure is measured once per kernel variant (TAPEGRAD_ISA), beside a
# PyTorch run held to the same vector unit: for v3, oneDNN to AVX2
# (ONEDNN_MAX_CPU_ISA) and ATen to its avx2 kernels (ATEN_CPU_CAPABILITY);
# for v2, SSE4.1 and ATen's default kernels; OpenBLAS, which both sides call,
# to its Haswell (v3) or Nehalem (v2) kernels (OPENBLAS_CORETYPE). So an
# AVX-512 machine also shows what an AVX2 one gets. Every figure line starts
# NAME cpu="MODEL" isa=V.
#
# The machine may be busy with other work, so every figure is measured in
# rounds that interleave a project run and a PyTorch run (alternating which
# goes first), and the line gives the median over the rounds of each side's
# own median. One line per figure on stdout (also written to BUILD/bench.txt):
#   NAME key=value... PROJECT_VALUE [PEER_VALUE ratio=PROJECT/PEER]
# The PyTorch peers are ../shared/peers/*.py (from the repository root) and
# bench/kernels_torch.py, bench/hvp_torch.py and bench/burgers_torch.py, run
# with /usr/bin/python3 and Debian's python3-torch; without them the
# project's figures are printed alone. Peak resident memory comes from
# /usr/bin/time (Debian package time).
#
# Exits 1 when a project program fails; a missed target is not a failure.
set -u

build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
peers=${BENCH_PEERS:-$root/../shared/peers}
py=/usr/bin/python3
quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then rounds=${BENCH_ROUNDS:-1}; else rounds=${BENCH_ROUNDS:-3}; fi
# Spinning OpenMP threads (libgomp's default, used by the library and by
# PyTorch) starve each other when the cores are shared: 2-thread steps
# measured 7-25x slower with active waiting on a loaded 2-core machine.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
results=$build/bench.txt
: >"$results"
failed=0

say() { printf '%s\n' "$*" | tee -a "$results"; }
note() { printf 'run.sh: %s\n' "$*" >&2; }

# The value of key=value in line $1 for key $2.
field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

# Median of the numbers in file $1 (one per line), or - when there are none.
med() {
    if [ -s "$1" ]; then
        sort -g "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
                                                else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
    else
        echo -
    fi
}

# $1 / $2 to three significant figures, or - when either is missing.
ratio() {
    case "$1$2" in *-*) echo - ;; *) awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3g\n", a / b }' ;; esac
}

# Prints the project's part $1 and, when the peer ran, its part $2.
out() {
    if [ "$peer" = 1 ] && ! printf '%s' "$2" | grep -q '=-'; then say "$1 $2"; else say "$1"; fi
}

# Runs a command with its output in $tmp/out, its peak RSS (KB) in $tmp/rss
# and its CPU seconds (user + system) in $tmp/cpu; returns its status.
run() {
    : >"$tmp/rss"
    : >"$tmp/cpu"
    if [ "$have_time" = 1 ]; then
        /usr/bin/time -f '%M %U %S' -o "$tmp/time" "$@" >"$tmp/out" 2>"$tmp/err"
        st=$?
        tail -n 1 "$tmp/time" | awk '{ print $1 }' >"$tmp/rss"
        tail -n 1 "$tmp/time" | awk '{ print $2 + $3 }' >"$tmp/cpu"
    else
        "$@" >"$tmp/out" 2>"$tmp/err"
        st=$?
    fi
    return "$st"
}

# A project program: its key=value fields $2... go to files $1.KEY.
proj() {
    tag=$1
    shift
    keys=$1
    shift
    if ! run "$@"; then
        note "FAILED: $*"
        sed 's/^/    /' "$tmp/err" >&2
        failed=1
        return 1
    fi
    collect "$tag.p" "$keys"
}

# A peer program, likewise into $1.KEY.q files; a failure drops the figure's peer side.
peer_run() {
    tag=$1
    shift
    keys=$1
    shift
    [ "$peer" = 1 ] || return 0
    if ! run env $peer_env "$py" "$@"; then
        note "peer failed: $py $*"
        sed 's/^/    /' "$tmp/err" | tail -n 5 >&2
        return 1
    fi
    collect "$tag.q" "$keys"
}

# Appends each key's value (keys like "ms" or "op=conv1:gflops": the line
# holding op=conv1), the peak RSS and the CPU time to the figure's files.
collect() {
    for k in $2; do
        case "$k" in
        *:*) sel=${k%%:*}; key=${k#*:}; line=$(grep -- " $sel " "$tmp/out" | tail -n 1) ;;
        *) sel=; key=$k; line=$(tail -n 1 "$tmp/out") ;;
        esac
        v=$(field "$line" "$key")
        [ -n "$v" ] && echo "$v" >>"$tmp/$1.${sel:+$sel.}$key"
    done
    [ -s "$tmp/rss" ] && cat "$tmp/rss" >>"$tmp/$1.rss"
    [ -s "$tmp/cpu" ] && cat "$tmp/cpu" >>"$tmp/$1.cpu"
    return 0
}

# Runs the commands $2 (project) and $3 (peer) in round $1's order.
pair() {
    if [ $(($1 % 2)) = 1 ]; then eval "$2"; eval "$3"; else eval "$3"; eval "$2"; fi
}

# -------------------------------------------------------------- the machine
peer=1
if [ ! -d "$peers" ]; then
    peer=0
    why="$peers not found"
elif ! "$py" -c 'import torch' 2>/dev/null; then
    peer=0
    why="$py -c 'import torch' fails (apt-get install python3-torch)"
fi
have_time=1
if [ ! -x /usr/bin/time ]; then
    sh "$root/scripts/deps.sh" --extra time >&2 || true
    [ -x /usr/bin/time ] || { have_time=0; note "no /usr/bin/time: peak memory not measured"; }
fi
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
family=$(lscpu 2>/dev/null | sed -n 's/^CPU family: *//p' | head -n 1)
model=$(lscpu 2>/dev/null | sed -n 's/^Model: *//p' | head -n 1)
# The kernels OpenBLAS picks here when OPENBLAS_CORETYPE does not name them:
# from the CPU's model number, so a model newer than the installed OpenBLAS
# gets its generic SSE3 ones ("Prescott"), and the library then sends every
# float32 GEMM to oneDNN (ops/blas.c). Read through Python's ctypes.
blas_core=$(env -u OPENBLAS_CORETYPE "$py" -c 'import ctypes
l = ctypes.CDLL("libopenblas.so.0")
l.openblas_get_corename.restype = ctypes.c_char_p
print(l.openblas_get_corename().decode())' 2>/dev/null) || blas_core=-
isas=${BENCH_ISAS:-$(sh "$root/scripts/isa_variants.sh" | tr ' ' '\n' | sort -r | tr '\n' ' ')}
say "# $(date -u '+%Y-%m-%d %H:%M UTC') cpu=\"$cpu\" family=$family model=$model cores=$(nproc) load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" variants=\"$isas\""
say "# gcc=$(gcc -dumpfullversion 2>/dev/null)" \
    "openblas=$(dpkg-query -W -f='${Version}' libopenblas-dev 2>/dev/null) openblas_core=${blas_core:--}" \
    "torch=$(if [ "$peer" = 1 ]; then "$py" -c 'import torch; print(torch.__version__)'; else echo -; fi)" \
    "OMP_WAIT_POLICY=$OMP_WAIT_POLICY rounds=$rounds quick=$quick"
[ "$peer" = 1 ] || say "# PyTorch peer missing: $why; project figures only"

# Per variant: the project's TAPEGRAD_ISA and, for both sides, the limits
# that make the peer and OpenBLAS use the same vector unit.
variant_env() {
    TAPEGRAD_ISA=$1
    export TAPEGRAD_ISA
    unset OPENBLAS_CORETYPE
    case $1 in
    v4) peer_env="" ;;
    v3) peer_env="ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2"
        OPENBLAS_CORETYPE=Haswell; export OPENBLAS_CORETYPE ;;
    *) peer_env="ONEDNN_MAX_CPU_ISA=SSE41 DNNL_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default"
        OPENBLAS_CORETYPE=Nehalem; export OPENBLAS_CORETYPE ;;
    esac
}

# --------------------------------------------------------- the measurements
first=${isas%% *}
r=0
while [ "$r" -lt "$rounds" ]; do
    r=$((r + 1))
    for isa in $isas; do
        note "round $r of $rounds, variant $isa"
        variant_env "$isa"
        for th in 1 2; do
            for b in 1 64 256; do
                case $b in 1) ps=500 qs=100 ;; 64) ps=200 qs=60 ;; *) ps=40 qs=20 ;; esac
                pair "$r" "proj $isa.step.$b.$th ms '$build/bench/lenet5_step' --batch $b --threads $th --steps $ps" \
                    "peer_run $isa.step.$b.$th step_ms '$peers/lenet5_torch.py' --batch $b --threads $th --steps $qs"
            done
        done
        for th in 1 2; do
            pair "$r" "proj $isa.lstm.$th ms '$build/bench/lstm_step' --threads $th --steps 20" \
                "peer_run $isa.lstm.$th step_ms '$peers/chargpt_torch.py' --model lstm --time --threads $th --steps 20"
        done
        for th in 1 2; do
            pair "$r" "proj $isa.gpt.$th ms '$build/bench/gpt_step' --threads $th --steps 20" \
                "peer_run $isa.gpt.$th step_ms '$peers/chargpt_torch.py' --model gpt --time --threads $th --steps 20"
        done
        for s in 1 1024; do
            pair "$r" "proj $isa.tape.$s 'fwd_ns bwd_ns' '$build/bench/tape_overhead' --size $s" \
                "peer_run $isa.tape.$s 'forward_ns_per_node backward_ns_per_node' '$peers/tape_overhead_torch.py' --size $s"
        done
        ops='op=conv1:gflops op=conv2:gflops op=matmul:gflops op=sgemm:gflops'
        pair "$r" "proj $isa.kern '$ops' '$build/bench/kernels'" "peer_run $isa.kern '$ops' '$root/bench/kernels_torch.py'"
        pair "$r" "proj $isa.epoch seconds '$build/examples/lenet5' --epochs 1 --batch 64 --threads 1" \
            "peer_run $isa.epoch seconds '$peers/lenet5_fashion_torch.py' --epochs 1 --threads 1"
        # Recomputation: project only (no PyTorch peer for this figure)
        proj "$isa.recompute" 'plain_ms ckpt_ms plain_peak_mib ckpt_peak_mib' \
            "$build/bench/recompute" --steps 5
        # Higher order: a Hessian-vector product of LeNet-5 (batch 64) beside one
        # gradient, and a step of the Burgers PINN (derivatives in the loss).
        pair "$r" "proj $isa.hvp 'grad_ms hvp_ms' '$build/bench/hvp_lenet5' --steps 30" \
            "peer_run $isa.hvp 'grad_ms hvp_ms functional_hvp_ms' '$root/bench/hvp_torch.py' --steps 30"
        pair "$r" "proj $isa.pinn ms '$build/examples/burgers_pinn' --time --steps 30" \
            "peer_run $isa.pinn step_ms '$root/bench/burgers_torch.py' --time --steps 30"
        # PyTorch's full gradcheck takes over a minute: once, in the first
        # round of the first variant.
        skip=--skip-full
        [ "$r" = 1 ] && [ "$isa" = "$first" ] && [ "$quick" != 1 ] && skip=
        pair "$r" "proj $isa.gc.full seconds '$build/bench/gradcheck_lenet5'; proj $isa.gc.fast seconds '$build/bench/gradcheck_lenet5' --fast" \
            "peer_run $isa.gc 'fast_mode=True:seconds fast_mode=False:seconds' '$peers/gradcheck_lenet5_torch.py' $skip"
    done
done
unset TAPEGRAD_ISA OPENBLAS_CORETYPE

# ------------------------------------------------------------- the figures
say "# figure cpu isa settings project peer ratio (project/peer; for gflops higher is better, else lower)"
say "# peer per isa: v4 as installed; v3 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2; v2 SSE41/default;" \
    "OPENBLAS_CORETYPE Haswell (v3) or Nehalem (v2) on both sides"
for isa in $isas; do
    at="cpu=\"$cpu\" isa=$isa"
    # The OpenBLAS floor of a batch-64 step: its 145 MFLOP of GEMM-shaped
    # work at OpenBLAS's sgemm rate on f1's products (kernels' sgemm figure,
    # cblas_sgemm itself) in the same run; and, stricter, the same work at
    # the rate of the library's own matmul (its GEMM dispatch, which may
    # beat OpenBLAS: oneDNN on v4, kernels of its own for short products).
    sgemm=$(med "$tmp/$isa.kern.p.op=sgemm.gflops")
    gemm=$(med "$tmp/$isa.kern.p.op=matmul.gflops")
    for th in 1 2; do
        for b in 1 64 256; do
            p=$(med "$tmp/$isa.step.$b.$th.p.ms") q=$(med "$tmp/$isa.step.$b.$th.q.step_ms")
            extra=
            if [ "$b" = 64 ] && [ "$th" = 1 ] && [ "$sgemm" != - ] && [ "$gemm" != - ] && [ "$p" != - ]; then
                floor=$(awk -v g="$sgemm" 'BEGIN { printf "%.3g\n", 145 / g }')
                gfloor=$(awk -v g="$gemm" 'BEGIN { printf "%.3g\n", 145 / g }')
                extra=" floor_ms=$floor floor_ratio=$(ratio "$p" "$floor")"
                extra="$extra matmul_floor_ms=$gfloor matmul_floor_ratio=$(ratio "$p" "$gfloor")"
            fi
            out "lenet5_step $at batch=$b threads=$th ms=$p$extra" "torch_ms=$q ratio=$(ratio "$p" "$q")"
        done
    done
    for th in 1 2; do
        p=$(med "$tmp/$isa.lstm.$th.p.ms") q=$(med "$tmp/$isa.lstm.$th.q.step_ms")
        out "lstm_step $at batch=16 context=64 threads=$th ms=$p" "torch_ms=$q ratio=$(ratio "$p" "$q")"
    done
    for th in 1 2; do
        p=$(med "$tmp/$isa.gpt.$th.p.ms") q=$(med "$tmp/$isa.gpt.$th.q.step_ms")
        out "gpt_step $at batch=16 context=64 threads=$th ms=$p" "torch_ms=$q ratio=$(ratio "$p" "$q")"
    done
    for s in 1 1024; do
        pf=$(med "$tmp/$isa.tape.$s.p.fwd_ns") pb=$(med "$tmp/$isa.tape.$s.p.bwd_ns")
        qf=$(med "$tmp/$isa.tape.$s.q.forward_ns_per_node") qb=$(med "$tmp/$isa.tape.$s.q.backward_ns_per_node")
        out "tape_overhead $at size=$s nodes=20000 fwd_ns=$pf bwd_ns=$pb" \
            "torch_fwd_ns=$qf torch_bwd_ns=$qb fwd_ratio=$(ratio "$pf" "$qf") bwd_ratio=$(ratio "$pb" "$qb")"
    done
    for op in conv1 conv2 matmul; do
        p=$(med "$tmp/$isa.kern.p.op=$op.gflops") q=$(med "$tmp/$isa.kern.q.op=$op.gflops")
        out "fwd_bwd $at op=$op batch=64 threads=1 gflops=$p" "torch_gflops=$q ratio=$(ratio "$p" "$q")"
    done
    say "openblas_sgemm $at op=matmul batch=64 threads=1 gflops=$sgemm"
    p=$(med "$tmp/$isa.epoch.p.seconds") q=$(med "$tmp/$isa.epoch.q.seconds")
    out "fashion_epoch $at batch=64 threads=1 optim=adam seconds=$p" "torch_seconds=$q ratio=$(ratio "$p" "$q")"
    # CPU time of the whole run (loading, the epoch, the test-set pass): unlike
    # the wall time above it hardly moves when other work shares the cores.
    if [ "$have_time" = 1 ]; then
        p=$(med "$tmp/$isa.epoch.p.cpu") q=$(med "$tmp/$isa.epoch.q.cpu")
        out "fashion_epoch_process $at batch=64 threads=1 cpu_seconds=$p" "torch_cpu_seconds=$q ratio=$(ratio "$p" "$q")"
    fi
    for m in full fast; do
        case $m in full) t=False ;; *) t=True ;; esac
        p=$(med "$tmp/$isa.gc.$m.p.seconds") q=$(med "$tmp/$isa.gc.q.fast_mode=$t.seconds")
        out "gradcheck_lenet5 $at mode=$m batch=2 numbers=63274 seconds=$p" "torch_seconds=$q ratio=$(ratio "$p" "$q")"
    done
    # one checkpoint per layer of a 16 x 1024 MLP, batch 256: targets
    # mem_ratio <= 0.3 and time_ratio <= 1.4 (BENCHMARKS.md)
    pm=$(med "$tmp/$isa.recompute.p.plain_ms") cm=$(med "$tmp/$isa.recompute.p.ckpt_ms")
    pp=$(med "$tmp/$isa.recompute.p.plain_peak_mib") cp=$(med "$tmp/$isa.recompute.p.ckpt_peak_mib")
    say "recompute $at layers=16 width=1024 batch=256 threads=1 plain_ms=$pm ckpt_ms=$cm" \
        "time_ratio=$(ratio "$cm" "$pm") plain_peak_mib=$pp ckpt_peak_mib=$cp mem_ratio=$(ratio "$cp" "$pp")"
    p=$(med "$tmp/$isa.hvp.p.hvp_ms") pg=$(med "$tmp/$isa.hvp.p.grad_ms")
    q=$(med "$tmp/$isa.hvp.q.hvp_ms") qf=$(med "$tmp/$isa.hvp.q.functional_hvp_ms") qg=$(med "$tmp/$isa.hvp.q.grad_ms")
    out "hvp_lenet5 $at batch=64 threads=1 hvp_ms=$p grad_ms=$pg hvp_per_grad=$(ratio "$p" "$pg")" \
        "torch_hvp_ms=$q torch_functional_hvp_ms=$qf torch_grad_ms=$qg ratio=$(ratio "$p" "$q")"
    p=$(med "$tmp/$isa.pinn.p.ms") q=$(med "$tmp/$isa.pinn.q.step_ms")
    out "burgers_pinn_step $at layers=8 width=20 nf=2000 threads=1 ms=$p" "torch_ms=$q ratio=$(ratio "$p" "$q")"
    if [ "$have_time" = 1 ]; then
        p=$(med "$tmp/$isa.step.64.1.p.rss") q=$(med "$tmp/$isa.step.64.1.q.rss")
        out "peak_rss $at run=lenet5_step batch=64 threads=1 kb=$p" "torch_kb=$q ratio=$(ratio "$p" "$q")"
        p=$(med "$tmp/$isa.epoch.p.rss") q=$(med "$tmp/$isa.epoch.q.rss")
        out "peak_rss $at run=fashion_epoch batch=64 threads=1 kb=$p" "torch_kb=$q ratio=$(ratio "$p" "$q")"
    fi
done
# Data-parallel scaling, np = 2 against np = 1 (bench/mpi.sh), when Open MPI
# is installed: mk/mpi.mk then builds the example with the benchmarks.
if [ -x "$build/examples/dist/lenet5" ] && command -v mpirun > /dev/null 2>&1; then
    line=$(sh "$root/bench/mpi.sh" "$build") && say "$line" || failed=1
fi
[ "$failed" = 0 ] || note "a project benchmark failed (see above)"
exit "$failed"
