#!/usr/bin/env bash
# Reproduces the comparison of gradient methods (docs/results.md, "The comparison"): trains the
# two neural proxies, then one style network per method on speech + music with the same budget
# (steps, batch, clip length, learning rate, seed), and evaluates every method on the held-out
# music and speech files with the DeepAFx-ST synthetic protocol.
#
# Usage: scripts/compare.sh [OUT]        (OUT defaults to runs/compare)
# Settings (environment): STEPS (500), BATCH (4), CLIP (16384 frames at 24 kHz), PROXY_STEPS
# (2500), PAIRS (50 evaluation pairs per domain), REFINE (50), SEED (1), DATA (the folder that
# scripts/get-training-audio.sh fills; default ~/.cache/afx/training-audio), AFX (a built afx
# binary; default: cargo build --release).
#
# Every step is resumable: a finished model is kept, an interrupted run goes on from its
# checkpoint when the script runs again. Tables go to OUT/music.md and OUT/speech.md.
set -euo pipefail
out=${1:-runs/compare}
STEPS=${STEPS:-500} BATCH=${BATCH:-4} CLIP=${CLIP:-16384} PROXY_STEPS=${PROXY_STEPS:-2500}
PAIRS=${PAIRS:-50} REFINE=${REFINE:-50} SEED=${SEED:-1}
# shellcheck source=scripts/runs.sh
source "$(dirname "$0")/runs.sh"

for effect in eq comp; do
    run "$out/proxy-$effect.afx" proxy train --effect "$effect" --steps "$PROXY_STEPS" --seed "$SEED"
done
proxies=(--eq-proxy "$out/proxy-eq.afx" --comp-proxy "$out/proxy-comp.afx")
common=(--steps "$STEPS" --batch-size "$BATCH" --clip-frames "$CLIP" --seed "$SEED"
        --validate-every 250 --validation-pairs 16)
run "$out/exact.afx" train --estimator exact "${common[@]}"
run "$out/spsa.afx" train --estimator spsa "${common[@]}"
run "$out/finite_diff.afx" train --estimator finite_diff "${common[@]}"
run "$out/np.afx" train --estimator proxy "${common[@]}" "${proxies[@]}"
run "$out/np_fh.afx" train --estimator proxy_full "${common[@]}" "${proxies[@]}"
run "$out/ctcn.afx" train --estimator ctcn "${common[@]}"

# One table per domain. Rows: Input, RB-DSP, then per model its own row (real chain), the
# NP row (its knobs through the proxies) and the refined row; np's real-chain row is NP-HH.
for kind in music speech; do
    "$AFX" eval --data "$DATA/$kind" --pairs "$PAIRS" --refine "$REFINE" "${proxies[@]}" \
        --model "$out/exact.afx" --model "$out/spsa.afx" --model "$out/finite_diff.afx" \
        --model "$out/np.afx" --model "$out/np_fh.afx" --model "$out/ctcn.afx" \
        --table "$out/$kind.md" > /dev/null
    echo "wrote $out/$kind.md"
done
