#!/usr/bin/env bash
# Issue 18's long runs that remain, as one resumable campaign:
#   atari    items 3-4: the random policy and the learning agent on Atari100k Pong / Breakout / MsPacman / Boxing,
#            STORI Boxing types 1 and 3.2 and dmc/cartpole-swingup from pixels; seed 0, 20k env steps (size=cpu),
#            each cell scored by a 20-episode eval of its last checkpoint; one suite folder, suites/atari-cpu-COMMIT
#   offline  item 2's medium sets: the D4RL-style datasets (medium and medium-replay, from one SAC run per env), then
#            DM / DT / BC on hopper / walker2d / halfcheetah-medium, seeds 0-2, 20k updates; suites/d4rl-m-20k-COMMIT
#
#   bash scripts/run_campaign.sh [COMMIT] [ROOT] [PART...]   # COMMIT: default HEAD; ROOT: ~/ssmrl-experiments;
#                                                            # PART: atari offline (default: both, in that order)
#
# It makes (once) a clone of this repository at COMMIT in ROOT/src-COMMIT with its own .venv, so edits to the work
# tree never change a running experiment. Start one copy per core: each unit is claimed with flock, so the copies
# share the list; finished cells are skipped and interrupted ones resume from their last checkpoint, so rerunning
# the same line continues the campaign (as long as ROOT survived). Runs niced, one torch thread per process.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$repo" rev-parse --short=7 --verify -q "${1:-HEAD}^{commit}") || { echo "unknown commit ${1:-HEAD}" >&2; exit 2; }
root=${2:-$HOME/ssmrl-experiments}
parts=("${@:3}")
[ ${#parts[@]} -gt 0 ] || parts=(atari offline)

# one line per unit: a function and its arguments; the cheap random cells first, then the issue's order
units=()
for part in "${parts[@]}"; do
  case $part in
    atari) units+=(
      "atari atari100k random atari100k/Pong"
      "atari atari100k random atari100k/Breakout"
      "atari atari100k random atari100k/MsPacman"
      "atari atari100k random atari100k/Boxing"
      "atari stori random stori/Boxing/1"
      "atari stori random stori/Boxing/3.2"
      "atari dmc random dmc/cartpole-swingup env.options.obs=pixels"
      "atari atari100k drama atari100k/Pong"
      "atari atari100k drama atari100k/Breakout"
      "atari atari100k drama atari100k/MsPacman"
      "atari atari100k rssm atari100k/Boxing"
      "atari atari100k drama atari100k/Boxing"
      "atari stori drama stori/Boxing/1"
      "atari stori drama stori/Boxing/3.2"
      "atari dmc drama dmc/cartpole-swingup env.options.obs=pixels") ;;
    offline) units+=("collect Hopper" "collect Walker2d" "collect HalfCheetah")
      for agent in dm dt bc; do
        for env in hopper walker2d halfcheetah; do units+=("offline $agent $env"); done
      done ;;
    *) echo "unknown part $part; use atari or offline" >&2; exit 2 ;;
  esac
done

src=$root/src-$commit
datasets=$root/datasets
mkdir -p "$root/locks" "$root/suites" "$datasets"

# the clone and its environment, made by whichever copy gets there first
(
  flock 9
  if [ ! -f "$src/.venv/.installed" ]; then
    [ -d "$src/.git" ] || git clone -q "$repo" "$src"
    git -C "$src" checkout -q "$commit"
    make -C "$src" setup >"$root/setup-$commit.log" 2>&1 || { echo "setting up $src failed: see $root/setup-$commit.log" >&2; exit 1; }
  fi
) 9>"$root/locks/setup-$commit"

export OMP_NUM_THREADS=1
in_clone() { (cd "$src" && nice -n 5 "$@"); }

atari() {  # FAMILY AGENT ENV [key=value ...]
  local family=$1 agent=$2 env=$3
  in_clone .venv/bin/ssmrl bench suite "$family" --agents "$agent" --envs "$env" "${@:4}" --seeds 0 \
    --final-episodes 20 --out "$root/suites/atari-cpu-$commit" size=cpu
}

collect() {  # ENV: SAC for 40k steps, then the medium and medium-replay files (as in the medium-replay grid)
  local env=$1 key
  key=$(tr '[:upper:]' '[:lower:]' <<<"$1")
  if [ -f "$datasets/$key-medium-v5-seed0.hdf5" ] && [ -f "$datasets/$key-medium-replay-v5-seed0.hdf5" ]; then
    return 0
  fi
  # into a scratch folder first: an interrupted collection leaves nothing the grid could mistake for a dataset
  rm -rf "$datasets/.partial-$key"
  in_clone .venv/bin/python scripts/collect_datasets.py --env "$env" --train-steps 40000 --snapshot-every 4000 \
    --size 50000 --hidden 128 --batch-size 128 --levels medium,medium-replay --out "$datasets/.partial-$key" \
    --threads 1 >"$datasets/$key.json" || return 1  # (errexit does not reach into a function called under ||)
  mv "$datasets/.partial-$key"/* "$datasets/" && rmdir "$datasets/.partial-$key"
}

offline() {  # AGENT ENV: the medium-replay grid's protocol (docs/results.md) on the medium set, three seeds
  local agent=$1 env=$2 width=64
  [ "$agent" = bc ] && width=256
  in_clone .venv/bin/ssmrl bench suite d4rl --agents "$agent" --envs "$env-medium" --seeds 0 1 2 \
    --datasets-dir "$datasets" --out "$root/suites/d4rl-m-20k-$commit" \
    train.steps=20000 train.eval_every=5000 train.eval_episodes=10 train.checkpoint_every=2500 train.log_every=1000 \
    offline.batch_size=32 offline.lr=1e-3 offline.warmup_steps=100 offline.model.n_layers=2 offline.model.d_state=8 \
    offline.model.expand=1 offline.model.d_model=$width
}

for unit in "${units[@]}"; do
  read -r -a words <<<"$unit"
  # the lock names agree with the first version of this script (atari units), so a campaign it began resumes
  if [ "${words[0]}" = atari ]; then
    name=$commit-${words[2]}-${words[3]//\//__}
  else
    name=$commit-${unit// /-}
  fi
  # -n: a unit another copy holds is skipped; the other copy finishes it
  (
    if [ "${words[0]}" = offline ]; then  # the grid reads the datasets: wait for any collection still running
      for env in Hopper Walker2d HalfCheetah; do (flock 8) 8>"$root/locks/$commit-collect-$env"; done
    fi
    flock -n 9 || exit 0
    echo "$(date -u +%FT%TZ) $unit"
    "${words[@]}" || { status=$?; echo "$(date -u +%FT%TZ) $unit: exit $status"; }
  ) 9>"$root/locks/$name"
done
echo "$(date -u +%FT%TZ) every unit claimed or finished; reports: ssmrl bench report $root/suites/<suite>"
