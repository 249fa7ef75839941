#!/usr/bin/env bash
# Issue 18 items 3-4 as one resumable campaign: the random policy and the learning agent on every env, seed 0,
# 20k env steps (size=cpu), each cell scored by a 20-episode eval of its last checkpoint, all in one suite folder.
#
#   bash scripts/atari_campaign.sh [COMMIT] [ROOT]      # COMMIT default: this checkout's HEAD; ROOT ~/ssmrl-experiments
#
# It makes (once) a clone of this repository at COMMIT in ROOT/src-COMMIT with its own .venv, so edits to the work
# tree never change a running experiment, then runs the units below in order into ROOT/suites/atari-cpu-COMMIT.
# Start one copy per core: each unit is claimed with flock, so the copies share the list; finished cells are
# skipped and interrupted ones resume from their last checkpoint, so rerunning the same line continues the campaign
# (also after a reboot, as long as ROOT survived). Runs niced, one torch thread per process.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$repo" rev-parse --short=7 "${1:-HEAD}")
root=${2:-$HOME/ssmrl-experiments}
src=$root/src-$commit
suite=$root/suites/atari-cpu-$commit
mkdir -p "$root/locks" "$root/suites"

# the clone and its environment, made by whichever copy gets there first
(
  flock 9
  if [ ! -f "$src/.venv/.installed" ]; then
    [ -d "$src/.git" ] || git clone -q "$repo" "$src"
    git -C "$src" checkout -q "$commit"
    make -C "$src" setup >"$root/setup-$commit.log" 2>&1
  fi
) 9>"$root/locks/setup-$commit"

export OMP_NUM_THREADS=1
bench() { (cd "$src" && nice -n 5 .venv/bin/ssmrl bench suite "$@" --seeds 0 --final-episodes 20 --out "$suite" size=cpu); }

# one line per unit: FAMILY AGENT ENV [key=value ...]; the cheap random cells first, then the issue's order
units=(
  "atari100k random atari100k/Pong"
  "atari100k random atari100k/Breakout"
  "atari100k random atari100k/MsPacman"
  "atari100k random atari100k/Boxing"
  "stori random stori/Boxing/1"
  "stori random stori/Boxing/3.2"
  "dmc random dmc/cartpole-swingup env.options.obs=pixels"
  "atari100k drama atari100k/Pong"
  "atari100k drama atari100k/Breakout"
  "atari100k drama atari100k/MsPacman"
  "atari100k rssm atari100k/Boxing"
  "atari100k drama atari100k/Boxing"
  "stori drama stori/Boxing/1"
  "stori drama stori/Boxing/3.2"
  "dmc drama dmc/cartpole-swingup env.options.obs=pixels"
)

for unit in "${units[@]}"; do
  read -r family agent env words <<<"$unit"
  lock=$root/locks/$commit-$agent-${env//\//__}
  # -n: a unit another copy holds is skipped; that copy finishes it
  (
    flock -n 9 || exit 0
    echo "$(date -u +%FT%TZ) $agent $env"
    # shellcheck disable=SC2086  # words are separate key=value arguments
    bench "$family" --agents "$agent" --envs "$env" $words || echo "$(date -u +%FT%TZ) $agent $env: exit $?"
  ) 9>"$lock"
done
echo "$(date -u +%FT%TZ) all units claimed or finished; report: ssmrl bench report $suite"
