#!/usr/bin/env bash
# The dilated transfer (`eqflow train --init-dilate P --init-keep R`) against the plain one, right
# after the transfer (no training): for each power P and keep radius R, the ESS and the log Z
# estimate of N reweighting samples (chain seed 5: the same prior draws for every variant).
#
#   scripts/dilation_grid.sh SRC PRESET TIME_KERNEL N "POWERS" "KEEPS"
#   scripts/dilation_grid.sh runs/wide_L20.safetensors L32 28 400 "0 0.5 1 2" "0 1 2 3"
#
# "plain" is the transfer without dilation. Flows are written to a temporary folder and removed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 6 ] || { sed -n 2,9p "$0" >&2; exit 2; }
src=$1 preset=$2 tk=$3 n=$4
E=./target/release/eqflow
[ -x $E ] || cargo build --release --bin eqflow
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
one() {
  local name=$1
  shift
  if ! $E train --preset "$preset" --init-from "$src" --time-kernel-size "$tk" "$@" --steps 0 --ess-samples 10 \
    --threads 1 --out "$tmp/f.safetensors" > /dev/null 2> "$tmp/err"; then
    echo "$preset $name: $(tail -n 1 "$tmp/err")"
    return 0
  fi
  $E sample --flow "$tmp/f.safetensors" --n 10 --reweight "$n" --threads 1 --seed 5 --json 2> /dev/null |
    python3 -c "
import json, sys
r = json.load(sys.stdin)['reweighted']
f = lambda x: 'n/a' if x is None else '%.3f' % x
print('$preset %-18s ESS %s ± %s  log Z %s ± %s' % ('$name', f(r['ess']), f(r['ess_error']), f(r['log_z']['value']), f(r['log_z']['error'])))"
}
one plain
for p in $5; do
  for k in $6; do
    one "power $p keep $k" --init-dilate "$p" --init-keep "$k"
  done
done
