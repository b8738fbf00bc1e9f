#!/usr/bin/env bash
# GPU check of the CUDA backend in two steps, for GPU machines without Rust or network.
#
#   scripts/gpu-check.sh build [DIR]   here (Rust, no GPU needed): builds the library's test
#                                      binary, the CUDA sampling bench and the CLI in release,
#                                      strips them and puts them in DIR (default target/gpu-check,
#                                      inside the repository so it can be carried; < 64 MiB)
#   scripts/gpu-check.sh run [DIR]     on the GPU machine (CUDA driver, no Rust, no network):
#                                      runs every CUDA test, the bench and a CLI train/sample
#                                      on the GPU, and prints a short table; exit status 1 if a
#                                      test failed, 2 if every GPU test skipped (no driver or
#                                      device). Minutes on one H200.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
dir=${2:-target/gpu-check}

case "$mode" in
build)
  mkdir -p "$dir"
  # the executable of the artifact whose target is named $1 (cargo's JSON: one message a line)
  exe_of() { grep "\"target\":{[^}]*\"name\":\"$1\"" | grep -o '"executable":"[^"]*"' | sed 's/"executable":"//; s/"$//' | tail -1; }
  tests=$(cargo test --release --lib --no-run --message-format=json 2>/dev/null | exe_of eqflow)
  bench=$(cargo bench --bench cuda_sampling --no-run --message-format=json 2>/dev/null | exe_of cuda_sampling)
  cargo build --release --bin eqflow 2>/dev/null
  [ -x "$tests" ] && [ -x "$bench" ] && [ -x target/release/eqflow ] ||
    { echo "build failed (tests: '$tests', bench: '$bench', target/release/eqflow)" >&2; exit 1; }
  cp "$tests" "$dir/eqflow-lib-tests"
  cp "$bench" "$dir/cuda-sampling-bench"
  cp target/release/eqflow "$dir/eqflow"
  strip "$dir/eqflow-lib-tests" "$dir/cuda-sampling-bench" "$dir/eqflow"
  cp scripts/gpu-check.sh "$dir/"
  du -b "$dir"/* | awk '{t += $1; printf "  %-40s %6.1f MiB\n", $2, $1 / 1048576} END {printf "  total %39.1f MiB\n", t / 1048576; if (t >= 64 * 1048576) exit 1}'
  echo "carry '$dir' and run: scripts/gpu-check.sh run $dir"
  ;;
run)
  [ -x "$dir/eqflow-lib-tests" ] || { echo "no $dir/eqflow-lib-tests: run 'scripts/gpu-check.sh build' first" >&2; exit 1; }
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  log=$(mktemp)
  # every test whose name has "cuda": src/cuda/tests.rs and the C ABI's CUDA context test
  set +e
  # (the emulation's tests run on the CPU: they ran where the bundle was built)
  timeout 300 "$dir/eqflow-lib-tests" cuda --skip emulated --skip emulator --test-threads=1 --nocapture >"$log" 2>&1
  rc=$?
  set -e
  echo
  echo "| test | result |"
  echo "|---|---|"
  # with --nocapture a test prints "test NAME ... ", then its own output (a skip says
  # "skipped: WHY"), then ok / FAILED, on the same line or later ones
  awk '
    function done(res) { if (name == "") return; if (skip != "" && res == "ok") res = "skipped (" skip ")";
                         printf "| %s | %s |\n", name, res; name = ""; skip = "" }
    /^test .* \.\.\. / { name = $2; line = $0; sub(/^test [^ ]+ \.\.\. /, "", line)
                          if (line == "ok" || line == "FAILED" || line == "ignored") { done(line); next }
                          $0 = line }
    /^skipped: / { s = $0; sub(/^skipped: /, "", s); skip = s; next }
    /^(ok|FAILED|ignored)$/ { done($0) }
  ' "$log"
  grep -E "^test result" "$log" || true
  if [ $rc -ne 0 ]; then
    echo "--- failures ---"
    sed -n '/^failures:/,$p' "$log" | head -80
  fi
  echo
  # (--gpu-seconds 2 skips the rows whose floor says they would take minutes: the direct sums
  # at L = 64, training at L = 64 batch 4096; on an H200 the whole bench takes about 3 minutes)
  timeout 300 "$dir/cuda-sampling-bench" --sizes 6,8,12 --n 256 --gpu-sizes 32,64 --gpu-batches 256,4096 --gpu-seconds 2 || echo "bench: exit $?"
  # the CLI end to end: a short training on the GPU, then the same chain with proposals from
  # the CPU and from the GPU (the same accept decisions up to rounding: compare the acceptances)
  echo
  cli=$(mktemp -d)
  if timeout 120 "$dir/eqflow" train --preset L6 --backend cuda --steps 200 --ess-samples 200 --out "$cli/f.safetensors" \
    >"$cli/train.log" 2>&1; then
    tail -1 "$cli/train.log"
    for b in cpu cuda; do
      timeout 120 "$dir/eqflow" sample --flow "$cli/f.safetensors" --n 5000 --reweight 0 --backend $b 2>&1 |
        grep -E "acceptance|wall time" | sed "s/^/  sample --backend $b: /" || true
    done
  else
    echo "CLI: eqflow train --backend cuda failed:"; tail -3 "$cli/train.log"
  fi
  rm -rf "$cli"
  skipped=$(grep -c "skipped: no CUDA" "$log" || true)
  rm -f "$log"
  [ $rc -eq 0 ] || exit 1
  [ "$skipped" -eq 0 ] || exit 2
  ;;
*)
  echo "usage: $0 build|run [DIR]" >&2
  exit 2
  ;;
esac
