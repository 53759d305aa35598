#!/usr/bin/env bash
# Style transfer through real plugins (docs/results.md, "Style transfer through LV2 plugins"):
# DeepAFx-ST's comparison of SPSA against exact gradients, redone with third-party effects. One
# style network per row, all with the comparison's budget: afx's `eq,comp` by exact gradients and
# by SPSA, and x42's fil4 EQ + darc compressor (LV2) by SPSA; then every model on the held-out
# music and speech with the DeepAFx-ST synthetic protocol, beside an oracle that fits fil4 + darc
# to each pair's target by a direct search (SPSA on the loss).
#
# Needs afx built with `--features lv2` and the plugins (scripts/install-lv2.sh).
# Usage: scripts/plugins-style.sh [OUT]   (OUT defaults to runs/plugins-style)
# Settings (environment): STEPS (500), BATCH (4), CLIP (16384 frames at 24 kHz), PAIRS (50
# evaluation pairs per domain), ORACLE (100 search steps per pair), SEED (1), DATA (the folder
# that scripts/get-training-audio.sh fills; default ~/.cache/afx/training-audio), AFX (a built
# afx binary; default: cargo build --release --features lv2).
#
# A finished model is kept and an interrupted run resumes from its checkpoint when the script
# runs again. Tables go to OUT/music.md and OUT/speech.md.
set -euo pipefail
out=${1:-runs/plugins-style}
STEPS=${STEPS:-500} BATCH=${BATCH:-4} CLIP=${CLIP:-16384} PAIRS=${PAIRS:-50} ORACLE=${ORACLE:-100} SEED=${SEED:-1}
AFX_FEATURES="--features lv2"
# shellcheck source=scripts/runs.sh
source "$(dirname "$0")/runs.sh"

common=(--steps "$STEPS" --batch-size "$BATCH" --clip-frames "$CLIP" --seed "$SEED"
        --validate-every 250 --validation-pairs 16)
run "$out/exact.afx" train --estimator exact "${common[@]}"
run "$out/spsa.afx" train --estimator spsa "${common[@]}"
# fil4's continuous knobs (shelves, four bells, master gain; its filters' switches stay as they
# are) and darc's, the network's outputs: the default of --learn for a plugin chain.
run "$out/fil4-darc-spsa.afx" train --estimator spsa --chain fil4,darc "${common[@]}"

for kind in music speech; do
    "$AFX" eval --data "$DATA/$kind" --pairs "$PAIRS" --chain fil4,darc --oracle-steps "$ORACLE" \
        --model "$out/exact.afx" --model "$out/spsa.afx" --model "$out/fil4-darc-spsa.afx" \
        --table "$out/$kind.md" > /dev/null
    echo "wrote $out/$kind.md"
done
