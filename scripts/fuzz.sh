#!/usr/bin/env bash
# Fuzzing and sanitizers (README, "Layout"; figures in BENCHMARKS.md): builds the project with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer in build-fuzz/ (separate
# from build/, whose gcc build CI uses), then
#   fuzz      runs each libFuzzer target of fuzz/ for a bounded time from
#             its seed corpus fuzz/corpus/<target>/ and prints a table of
#             inputs executed, inputs per second and the result;
#   sanitize  runs the unit-test executables (server, optimizers, clients,
#             models) of the same instrumented build;
#   all       both (the default).
# Bounds: FUZZ_SECONDS per target (default 600) and FUZZ_RUNS (default
# 1000000), whichever comes first; with JOBS >= 2 (the default) the two
# targets run side by side. New inputs go to build-fuzz/corpus/<target>/;
# a crashing input is written to build-fuzz/<target>-crash-*. Each fuzzer may
# use up to 4 GiB (LibTorch and ASan's quarantine hold about 1 GiB).
# Needs clang-14, libfuzzer-14-dev and libclang-rt-14-dev besides the
# project's packages (scripts/install-deps.sh --fuzz installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
seconds="${FUZZ_SECONDS:-600}"
runs="${FUZZ_RUNS:-1000000}"
jobs="${JOBS:-2}"
build=build-fuzz

bash scripts/install-deps.sh --fuzz

start=$(date +%s)
CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSTIMLOOP_FUZZ=ON >/dev/null
targets=()
[ "$what" = sanitize ] || targets+=(service_fuzzer store_fuzzer)
[ "$what" = fuzz ] || targets+=(server_test optimizers_test clients_test models_test)
cmake --build "$build" -j"$jobs" --target "${targets[@]}"
echo "build: $(( $(date +%s) - start )) s"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp}"
status=0

# One fuzzer: runs it, then writes its table row to $build/<target>_fuzzer.row.
fuzz_one() {
  local target=$1 corpus="$build/corpus/$1" log="$build/$1_fuzzer.log" t0 rc=0
  mkdir -p "$corpus"
  t0=$(date +%s)
  "$build/fuzz/${target}_fuzzer" "$corpus" "fuzz/corpus/$target" -max_total_time="$seconds" \
    -runs="$runs" $( [ -f "fuzz/$target.dict" ] && echo "-dict=fuzz/$target.dict" ) -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$build/${target}-" >"$log" 2>&1 || rc=$?
  local execs rate result=clean
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  [ "$rc" -eq 0 ] || result="FAILED (rc $rc, see $log)"
  echo "$target | ${execs:-?} | ${rate:-?} | $(( $(date +%s) - t0 )) | $result" >"$build/${target}_fuzzer.row"
}

if [ "$what" != sanitize ]; then
  # The targets run side by side when JOBS allows (each fuzzer is one process).
  pids=()
  for target in service store; do
    if [ "$jobs" -ge 2 ]; then fuzz_one "$target" & pids+=($!); else fuzz_one "$target"; fi
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  echo "target | inputs executed | inputs/s | seconds | result"
  for target in service store; do
    row=$(cat "$build/${target}_fuzzer.row")
    echo "$row"
    case "$row" in *FAILED*) status=1 ;; esac
  done
fi

if [ "$what" != fuzz ]; then
  export STIMLOOP_BUILD_DIR="$PWD/$build"
  for test in server_test optimizers_test clients_test models_test; do
    t0=$(date +%s)
    rc=0
    (cd "$build" && "tests/$test" --gtest_brief=1) >"$build/$test.log" 2>&1 || rc=$?
    result=clean
    [ "$rc" -eq 0 ] || { result="FAILED (rc $rc, see $build/$test.log)"; status=1; }
    echo "$test: $(grep -E '^\[  PASSED  \]' "$build/$test.log" || true) $(( $(date +%s) - t0 )) s, $result"
  done
fi
exit "$status"
