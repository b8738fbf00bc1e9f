#!/usr/bin/env bash
# The scaling table (README "Results at L = 6 ... 64"): trains the chain of flows
# L = 6 → 12 → 20 → 32 → 64, each larger one starting from the smaller one (--init-from),
# runs a flow Metropolis chain of each and an HMC reference, and writes docs/scaling.md.
#
#   scripts/scaling.sh            # everything (about 21 hours of two cores; resumable)
#   scripts/scaling.sh table      # only sample the flows in $OUT and write the table
#   scripts/scaling.sh l32        # only the L = 32 line (path_L32, best_L32, wide_L32, long_L32), on one
#                                 # core, once the L = 20 flow it starts from exists: run it
#                                 # beside the main chain when that leaves a core idle
#   scripts/scaling.sh l20        # only the L = 20 line after path_L20_at161 (path_L20, best_L20,
#                                 # wide_L20), on one core
#   scripts/scaling.sh l64        # only L = 64 (transfer_L64, wide_L64), once wide_L32 is done
#
# Every training stage is fixed in steps, not minutes (after the two time-budgeted seed runs
# of reproduce_table1), so it is reproducible and resumable bit for bit: rerun the script after
# an interruption and each stage continues from its last checkpoint (written every 5 minutes
# and on Ctrl-C); finished stages are skipped. OUT (default out/) keeps flows, logs and JSON.
# Two stages run side by side where they do not depend on each other.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
S=$OUT/scaling
mkdir -p "$OUT" "$S" docs
cargo build --release --bin eqflow --examples
E=./target/release/eqflow
export EQFLOW_OUT=$OUT

# Step counts of the stages (those of the flows in the README's table).
L6_PATH_STEPS=${L6_PATH_STEPS:-1614}  # path-gradient steps after the 25-minute L = 6 flow
L12_TOTAL_TO=${L12_TOTAL_TO:-4405}    # the 35-minute L = 12 flow continued to this step (total gradient)
L12_PATH_TO=${L12_PATH_TO:-8388}      # then path gradients to this step
L20_TRANSFER=${L20_TRANSFER:-138}     # L = 20 from the L = 12 flow at L12_TOTAL_TO, total gradient
L20_FOR_L32=${L20_FOR_L32:-161}       # the L = 20 step the L = 32 flow starts from
L20_LR_DROP=${L20_LR_DROP:-458}       # L = 20 path gradients at lr 1e-4 to this step,
L20_PATH_TO=${L20_PATH_TO:-773}      # then at 4e-5 (a new schedule: the batch ESS had levelled off) to this one
L32_LR_DROP=${L32_LR_DROP:-124}       # L = 32 path gradients at lr 1e-4 to this step (the loss had begun to rise),
L32_PATH_TO=${L32_PATH_TO:-314}       # then at 5e-5 to this one
# (session 11) the L = 32 line, best_L20 and wide_L20 train with N_t = 27 RK4 steps (half the
# cost of a step; sampling keeps N_t = 54): the L = 20 flow at 161 steps, trained at 54, gives
# ESS 0.817 integrated with 27 steps and 0.820 with 54 (5000 samples each): nearly the same map.
# 0 keeps the architecture's 54 (the recipe of sessions 1-10).
L32_TRAIN_ODE_STEPS=${L32_TRAIN_ODE_STEPS:-27}
L20_TRAIN_ODE_STEPS=${L20_TRAIN_ODE_STEPS:-27}
L64_PATH_TO=${L64_PATH_TO:-0}         # L = 64 fine-tuning steps (0: transfer only)
# (session 12) wide_L64 trains with N_t = 27 as well (0: the 54 of session 9's 71-step flow)
L64_TRAIN_ODE_STEPS=${L64_TRAIN_ODE_STEPS:-27}
# Wider flows (session 8): the best L = 12 and 20 flows grown to a 28-node time kernel (exactly the
# same flows at first: --init-from with --time-kernel-size), path gradients to these steps (0: none;
# the defaults are the flows of the README table, stopped by Ctrl-C at these steps)
L12_WIDE_TO=${L12_WIDE_TO:-3939}
L20_WIDE_TO=${L20_WIDE_TO:-1647}
# (session 9) the best L = 32 flow grown the same way, and an L = 64 flow transferred from it
# (keeping its 28-node kernel) and fine-tuned: path gradients to these steps (0: none; at L = 64
# lr 1e-4 made the loss climb after 20 steps, hence 3e-5)
L32_WIDE_TO=${L32_WIDE_TO:-1000}  # (session 9: 242 steps; session 11: on to 1000, resumable)
L64_WIDE_TO=${L64_WIDE_TO:-465}  # (session 9: 71 steps at N_t = 54; session 12: from the 1000-step wide_L32, 137 steps;
# session 13: on to 301; session 14: to 465, stopped there by Ctrl-C)
# (session 13) wide_L32 continued as long_L32 under a new learning-rate schedule (back to 5e-5;
# its batch ESS still rose slowly at 2.8e-5) to this step in all (0: none; session 13: 2400,
# session 14: 4100)
L32_LONG_TO=${L32_LONG_TO:-4100}
# Budgets of the seed runs (minutes, proposals) and of the chains (proposals) and HMC references
# (trajectories); the defaults are the README's. Small values make a smoke test of the script.
MIN6=${MIN6:-25} MIN12=${MIN12:-35} PROPOSALS=${PROPOSALS:-100000} ESS64=${ESS64:-200} ESS=${ESS:-1000}
N6=${N6:-30000} N12=${N12:-50000} N20=${N20:-4000} N32=${N32:-2000} N64=${N64:-1200}
HMC6=${HMC6:-10000000} HMC12=${HMC12:-10000000} HMC20=${HMC20:-2000000} HMC32=${HMC32:-1000000} HMC64=${HMC64:-1000000}

# the step a flow has reached (from its file's metadata)
steps_of() { python3 scripts/scaling_table.py --steps "$1"; }
# copy_flow SRC DST: a flow file and its training log (if it has one)
copy_flow() {
  cp "$1" "$2"
  if [ -e "$1.log.jsonl" ]; then cp "$1.log.jsonl" "$2.log.jsonl"; else : > "$2.log.jsonl"; fi
}

# train_to NAME STEP ARGS...: train $OUT/NAME.safetensors to STEP steps in all; a new flow with
# ARGS, or the existing checkpoint resumed (ARGS other than --preset are then the saved ones).
# A stage holds a lock on its flow while it trains (so `scaling.sh l32` beside the main chain
# never trains the same flow twice at once: the second waits, then finds it done).
train_to() {
  local f=$OUT/$1.safetensors to=$2 preset=$3 lock
  shift 3
  exec {lock}>"$f.lock"
  flock "$lock"
  train_to_locked "$f" "$to" "$preset" "$@"
  exec {lock}>&-
}
train_to_locked() {
  local f=$1 to=$2 preset=$3
  shift 3
  if [ -e "$f" ]; then
    [ "$(steps_of "$f")" -ge "$to" ] && return 0
    $E train --preset "$preset" --resume "$f" --steps "$to" --ess-samples "$ESS" --threads 1 --out "$f"
  else
    $E train --preset "$preset" "$@" --steps "$to" --ess-samples "$ESS" --threads 1 --out "$f"
  fi
}

# continue_to NAME SOURCE STEP PRESET ARGS...: copy SOURCE to NAME, start a new learning-rate
# schedule there (ARGS: --lr, --decay-steps, --gradient ...) and train to STEP. The restart is
# saved after its first step, so an interrupted stage resumes the new schedule.
continue_to() {
  local name=$1 src=$2 to=$3 preset=$4
  shift 4
  local f=$OUT/$name.safetensors lock
  exec {lock}>"$f.lock"
  flock "$lock"
  if [ ! -e "$f" ]; then
    copy_flow "$src" "$f.tmp"
    $E train --preset "$preset" --resume "$f.tmp" --restart-schedule "$@" \
      --steps $(($(steps_of "$f.tmp") + 1)) --ess-samples 10 --threads 1 --out "$f.tmp"
    mv "$f.tmp.log.jsonl" "$f.log.jsonl" && mv "$f.tmp" "$f"
  fi
  train_to_locked "$f" "$to" "$preset"
  exec {lock}>&-
}

# snapshot NAME STEP: keep NAME's flow at STEP as NAME_atSTEP (a flow that a later stage starts from)
snapshot() {
  local f=$OUT/$1.safetensors g=$OUT/$1_at$2.safetensors
  [ -e "$g" ] && return 0
  train_to "$1" "$2" "$3"
  copy_flow "$f" "$g"
}

# the L = 32 line: from the L = 20 flow at L20_FOR_L32 steps, path gradients at lr 1e-4, then
# 5e-5; then grown to the 28-node time kernel
line32() {
  train_to path_L32 "$L32_LR_DROP" L32 --init-from "$OUT/path_L20_at$L20_FOR_L32.safetensors" --lr 1e-4 \
    --decay-steps 4000 --warmup-steps 10 --gradient path $(coarse 32)
  continue_to best_L32 "$OUT/path_L32.safetensors" "$L32_PATH_TO" L32 --lr 5e-5 --decay-steps 4000
}
wide32() {
  if [ "$L32_WIDE_TO" -gt 0 ]; then
    train_to wide_L32 "$L32_WIDE_TO" L32 --init-from "$OUT/best_L32.safetensors" --time-kernel-size 28 \
      --gradient path --lr 5e-5 --decay-steps 4000 --warmup-steps 10 --seed 11 $(coarse 32)
  fi
}
long32() {
  if [ "$L32_LONG_TO" -gt 0 ]; then
    continue_to long_L32 "$OUT/wide_L32.safetensors" "$L32_LONG_TO" L32 --lr 5e-5 --decay-steps 4000 \
      --warmup-steps 20 $(coarse 32)
  fi
}
# coarse L: the training integration of the stages at L = 20 and 32 (all their steps)
coarse() {
  local n=$L32_TRAIN_ODE_STEPS
  [ "$1" = 20 ] && n=$L20_TRAIN_ODE_STEPS
  [ "$1" = 64 ] && n=$L64_TRAIN_ODE_STEPS
  if [ "$n" -gt 0 ]; then echo "--coarse-ode-steps $n --coarse-steps 1000000000"; fi
}

# the L = 20 line after the snapshot the L = 32 line starts from: path gradients at lr 1e-4 to
# L20_LR_DROP, then 4e-5; then grown to the 28-node time kernel
line20() {
  train_to path_L20 "$L20_LR_DROP" L20
  continue_to best_L20 "$OUT/path_L20.safetensors" "$L20_PATH_TO" L20 --lr 4e-5 --decay-steps 4000 $(coarse 20)
}
wide20() {
  if [ "$L20_WIDE_TO" -gt 0 ]; then
    train_to wide_L20 "$L20_WIDE_TO" L20 --init-from "$OUT/best_L20.safetensors" --time-kernel-size 28 \
      --gradient path --lr 4e-5 --decay-steps 4000 --warmup-steps 30 --seed 11 $(coarse 20)
  fi
}
# L = 64 from the L = 32 flow: its ESS right after the transfer, then fine-tuning if asked
transfer64() {
  [ -e "$OUT/transfer_L64.safetensors" ] ||
    $E train --preset L64 --init-from "$OUT/best_L32.safetensors" --steps 0 --ess-samples "$ESS64" --threads 2 \
      --out "$OUT/transfer_L64.safetensors" 2>&1 | tee "$S/transfer_L64.txt"
  if [ "$L64_PATH_TO" -gt 0 ]; then
    continue_to best_L64 "$OUT/transfer_L64.safetensors" "$L64_PATH_TO" L64 --lr 1e-4 --decay-steps 4000 \
      --warmup-steps 10 --gradient path
  fi
}
# the wider L = 64 flow from the finished wide_L32
wide64() {
  if [ "$L64_WIDE_TO" -gt 0 ] && [ -e "$OUT/wide_L32.safetensors" ] &&
    [ "$(steps_of "$OUT/wide_L32.safetensors")" -ge "$L32_WIDE_TO" ]; then
    train_to wide_L64 "$L64_WIDE_TO" L64 --init-from "$OUT/wide_L32.safetensors" --time-kernel-size 28 \
      --gradient path --lr 3e-5 --warmup-steps 10 --seed 11 $(coarse 64)
  fi
}

case "${1:-all}" in
  l20)
    [ -e "$OUT/path_L20_at$L20_FOR_L32.safetensors" ] ||
      { echo "scaling.sh l20: $OUT/path_L20_at$L20_FOR_L32.safetensors is not there yet (the main chain makes it)" >&2; exit 2; }
    line20
    wide20
    exit 0
    ;;
  l64)
    [ -e "$OUT/best_L32.safetensors" ] ||
      { echo "scaling.sh l64: $OUT/best_L32.safetensors is not there yet (scaling.sh l32 makes it)" >&2; exit 2; }
    transfer64
    wide64
    exit 0
    ;;
esac

if [ "${1:-all}" = l32 ]; then
  [ -e "$OUT/path_L20_at$L20_FOR_L32.safetensors" ] ||
    { echo "scaling.sh l32: $OUT/path_L20_at$L20_FOR_L32.safetensors is not there yet (the main chain makes it)" >&2; exit 2; }
  line32
  wide32
  long32
  exit 0
fi

if [ "${1:-all}" != table ]; then
  # the seed runs (minutes on one core; as scripts/results.sh)
  [ -e "$OUT/flow_L6.safetensors" ] ||
    ./target/release/examples/reproduce_table1 --minutes "$MIN6" --threads 1 --proposals "$PROPOSALS" 6 > "$OUT/table6.md"
  [ -e "$OUT/flow_L12.safetensors" ] ||
    ./target/release/examples/reproduce_table1 --minutes "$MIN12" --threads 1 --proposals "$PROPOSALS" --init-from-L 6 12 \
      > "$OUT/table12.md"
  # L = 6 with path gradients, side by side with L = 12 to 4405 steps (total gradient)
  continue_to best_L6 "$OUT/flow_L6.safetensors" $(($(steps_of "$OUT/flow_L6.safetensors") + L6_PATH_STEPS)) L6 \
    --lr 4.19e-4 --decay-steps 5535 --gradient path &
  side=$!
  [ -e "$OUT/seed_L12.safetensors" ] || copy_flow "$OUT/flow_L12.safetensors" "$OUT/seed_L12.safetensors"
  train_to seed_L12 "$L12_TOTAL_TO" L12
  wait $side
  # L = 12 path gradients, side by side with L = 20 (from the 4405-step L = 12 flow)
  continue_to best_L12 "$OUT/seed_L12.safetensors" "$L12_PATH_TO" L12 --lr 2e-5 --decay-steps 20000 --gradient path &
  side=$!
  train_to seed_L20 "$L20_TRANSFER" L20 --init-from "$OUT/seed_L12.safetensors" --lr 3e-4 --decay-steps 4000 \
    --warmup-steps 20
  continue_to path_L20 "$OUT/seed_L20.safetensors" "$L20_FOR_L32" L20 --lr 1e-4 --decay-steps 4000 --gradient path
  snapshot path_L20 "$L20_FOR_L32" L20
  wait $side
  # L = 20 on, side by side with L = 32 (from the L = 20 flow at L20_FOR_L32 steps)
  line20 &
  side=$!
  line32
  wait $side
  transfer64
  if [ "$L64_PATH_TO" -gt 0 ]; then
    continue_to best_L64 "$OUT/transfer_L64.safetensors" "$L64_PATH_TO" L64 --lr 1e-4 --decay-steps 4000 \
      --warmup-steps 10 --gradient path
  fi
  # the wider L = 12 and 20 flows, side by side (new training draws: --seed 11)
  if [ "$L12_WIDE_TO" -gt 0 ]; then
    train_to wide_L12 "$L12_WIDE_TO" L12 --init-from "$OUT/best_L12.safetensors" --time-kernel-size 28 \
      --gradient path --lr 3e-5 --decay-steps 20000 --warmup-steps 50 --seed 11 &
    side=$!
  fi
  wide20
  if [ "$L12_WIDE_TO" -gt 0 ]; then wait $side; fi
  # the wider L = 32 flow, then L = 64 from it
  wide32
  long32 &
  side=$!
  wide64
  wait $side
fi

# the chains (flow Metropolis with Z2 flips) and the HMC references; a JSON file each, kept
# flow_chain L PROPOSALS [REWEIGHT [SEED]]: the chain of the widest / best / transferred flow at L
flow_chain() {
  local l=$1 n=$2 f
  for f in "$OUT/long_L$l.safetensors" "$OUT/wide_L$l.safetensors" "$OUT/best_L$l.safetensors" "$OUT/transfer_L$l.safetensors" ""; do
    [ -e "$f" ] && break
  done
  [ -n "$f" ] || return 0
  [ -e "$S/flow_L$l.json" ] || $E sample --flow "$f" --n "$n" --flip --reweight "${3:-5000}" --seed "${4:-1}" \
    --threads 2 --json > "$S/flow_L$l.json"
}
hmc_chain() {
  [ -e "$S/hmc_L$1.json" ] || $E hmc --preset "L$1" --n "$2" --json > "$S/hmc_L$1.json"
}
flow_chain 6 "$N6"
flow_chain 12 "$N12" 5000 2
flow_chain 20 "$N20" $((N20 / 2))
flow_chain 32 "$N32" $((N32 / 2))
flow_chain 64 "$N64" "$N64"
hmc_chain 6 "$HMC6"
hmc_chain 12 "$HMC12"
hmc_chain 20 "$HMC20"
hmc_chain 32 "$HMC32"
[ "$HMC64" -eq 0 ] || hmc_chain 64 "$HMC64"
python3 scripts/scaling_table.py "$OUT" > docs/scaling.md
echo "wrote docs/scaling.md"
