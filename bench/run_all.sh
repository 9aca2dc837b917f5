#!/usr/bin/env bash
# Runs the benchmarks of bench/ and prints the tables of BENCHMARKS.md, one
# section per area, each headed by the command that produced it.
#
#   bench/run_all.sh            the commands of BENCHMARKS.md's tables (hours on 2 cores)
#   bench/run_all.sh --quick    fewer seeds, budgets, generations and repeats: a few
#                               minutes on 2 cores; checks that everything runs, its
#                               figures are not the ones to quote
#
# Options: --build_dir=DIR (default build; the programs are DIR/bench/*, built
# by scripts/build.sh), --server_binary=PATH (default DIR/server/stimloop-server,
# for the Python round trip). Scratch data goes to a temporary folder, removed
# at the end. Exits non-zero when a benchmark failed (the others still run).
# Fuzzing and sanitizers are scripts/fuzz.sh, not run here.
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
build_dir=build
server_binary=
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --build_dir=*) build_dir="${arg#*=}" ;;
    --server_binary=*) server_binary="${arg#*=}" ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_all.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
bench="$build_dir/bench"
server_binary="${server_binary:-$build_dir/server/stimloop-server}"
for program in sample_efficiency ascent_ceiling loop_latency refit_latency surrogate_fit \
               frontend_time many_sessions store_bench replica_bench; do
  if [[ ! -x "$bench/$program" ]]; then
    echo "run_all.sh: $bench/$program is missing; build first (scripts/build.sh)" >&2
    exit 2
  fi
done

scratch=$(mktemp -d /tmp/stimloop-bench.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
failed=()
start_all=$SECONDS

# Prints the command, runs it, and records a failure without stopping.
run() {
  echo
  echo "\$ $*"
  local start=$SECONDS
  "$@"
  local rc=$?
  echo "# exit $rc, $((SECONDS - start)) s"
  ((rc == 0)) || failed+=("$*")
}

section() {
  echo
  echo "## $1"
}

# --- Sample efficiency per cell family ---------------------------------------
section "Sample efficiency per cell family"
all_cells=simple,complex,plaid,v4,deepnet,endstopped,color
if ((quick)); then
  run "$bench/sample_efficiency" --optimizers=default,cmaes,genetic --spaces=spectral \
      --cells=simple,color --seeds=1 --budgets=200,500 --size=32 --repeats=4 --threads=2
  run "$bench/sample_efficiency" --optimizers=random,genetic,cmaes --spaces=spectral \
      --cells=simple,complex --seeds=2 --budgets=200,500 --threads=2
  run "$bench/ascent_ceiling" --seeds=1 --size=32 --spaces=spectral --cells="$all_cells"
else
  for first_seed in 1 9; do
    run "$bench/sample_efficiency" --optimizers=default,cmaes,genetic --spaces=spectral \
        --cells="$all_cells" --seeds=4 --first_seed="$first_seed" \
        --budgets=200,500,1000 --size=32 --repeats=4 --threads=2
  done
  run "$bench/sample_efficiency" --optimizers=random,genetic,cmaes --spaces=spectral,pixel \
      --cells=simple,complex --seeds=8 --budgets=200,500,1000,3000 --threads=2
  for first_seed in 1 9; do
    for surrogate in refit_every=120 refit_every=120,model_class=1; do
      run "$bench/sample_efficiency" --optimizers=gradient_ascent --spaces=spectral \
          --cells=simple,complex --seeds=8 --first_seed="$first_seed" --budgets=500,1000 \
          --surrogate_params="$surrogate" --repeats=4 --threads=2
    done
  done
  run "$bench/sample_efficiency" --optimizers=adaptive_sampling --spaces=spectral \
      --cells=simple,complex --seeds=8 --budgets=200,500,1000 \
      --surrogate_params=refit_every=120 --repeats=4 --threads=2
  run "$bench/sample_efficiency" --optimizers=default --spaces=spectral \
      --cells=simple,complex --seeds=4 --budgets=200,500,1000 --size=32 --repeats=4 \
      --threads=1 --surrogate_params=refit_lag=2
  run "$bench/ascent_ceiling" --seeds=4 --size=32 --spaces=spectral --cells="$all_cells"
fi

# --- Loop latency (and memory: loop_latency prints the server's VmHWM) ------
section "Loop latency"
if ((quick)); then generations=20; refit_generations=6; else generations=100; refit_generations=12; fi
run "$bench/loop_latency" --generations="$generations" --data_dir="$scratch/latency"
if [[ -d "$build_dir/python/stimloop" ]] && /usr/bin/python3 -c 'import grpc, numpy, PIL' 2>/dev/null; then
  run env PYTHONPATH="$build_dir/python" /usr/bin/python3 bench/python_round_trip.py \
      --server_binary="$server_binary" --generations="$generations"
else
  echo
  echo "# Python round trip skipped: $build_dir/python or python3-grpcio/numpy/pil missing"
fi
if ((quick)); then
  run "$bench/refit_latency" --generations="$refit_generations" --display_ms=100 --size=32 \
      --data_dir="$scratch/refit-latency"
else
  run "$bench/refit_latency" --generations="$refit_generations" --display_ms=250 \
      --data_dir="$scratch/refit-latency"
  run "$bench/refit_latency" --generations="$refit_generations" --display_ms=250 \
      --surrogate_params=model_class=1 --data_dir="$scratch/refit-latency"
fi

# --- Refit and proposal cost --------------------------------------------------
section "Refit and proposal cost"
if ((quick)); then
  run "$bench/surrogate_fit" --seeds=1 --trials=250 --threads=1 --images=genetic \
      --cells=simple --ask=
  run "$bench/surrogate_fit" --chain=40 --seeds=1 --trials=250 --threads=1 --images=genetic \
      --cells=simple
  run "$bench/frontend_time" --images=40 --size=64 --repeats=3 --threads=1
else
  run "$bench/surrogate_fit" --seeds=1 --trials=1000,3000 --threads=1 --images=genetic \
      --cells=simple,complex --ask=
  run "$bench/surrogate_fit" --chain=40 --seeds=2 --trials=1000 --threads=1 --images=genetic \
      --cells=simple,complex,v4
  run "$bench/surrogate_fit" --chain=40 --seeds=1 --trials=3000 --threads=1 --images=genetic \
      --cells=simple,complex
  run "$bench/frontend_time" --images=40 --size=64 --repeats=10 --threads=1
fi

# --- Many sessions -------------------------------------------------------------
section "Many sessions"
if ((quick)); then
  run "$bench/many_sessions" --sessions=1,4 --generations=3 --display_ms=50 \
      --data_dir="$scratch/many"
else
  run "$bench/many_sessions" --sessions=1,4 --generations=8 --data_dir="$scratch/many"
  run "$bench/many_sessions" --sessions=8,16 --generations=8 --runs=5 --data_dir="$scratch/many"
fi

# --- Session store -------------------------------------------------------------
section "Session store"
if ((quick)); then
  run "$bench/store_bench" --dir="$scratch/store" --reports=200 --resume_stimuli=1000
else
  run "$bench/store_bench" --dir="$scratch/store"
fi

# --- Replicas on PostgreSQL ------------------------------------------------------
section "Replicas on PostgreSQL"
if ((quick)); then
  run "$bench/replica_bench" --dir="$scratch/replica" --reports=40 --takeovers=1
else
  run "$bench/replica_bench" --dir="$scratch/replica"
fi

# --- Fuzzing and sanitizers, memory ---------------------------------------------
section "Fuzzing and sanitizers"
echo
echo "# not run here: scripts/fuzz.sh (clang + ASan + UBSan build in build-fuzz/)"
section "Memory"
echo
echo "# the server's peak resident memory is the VmHWM line of loop_latency above"
echo "# (one genetic session) and the RSS column of many_sessions (model-based ones)"

echo
echo "# run_all.sh $( ((quick)) && echo --quick ) took $((SECONDS - start_all)) s"
if ((${#failed[@]})); then
  echo "# FAILED:" >&2
  printf '#   %s\n' "${failed[@]}" >&2
  exit 1
fi
