#!/usr/bin/env bash
# DeepAFx's emulation and mastering tasks through LV2 plugins (docs/results.md, "Emulation
# through LV2 plugins" and "Mastering through LV2 plugins"). Pairs are made by a chain of
# plugins that is not the learned one (`--target-chain`): the target and the reference are a
# clip's two parts through it, the input the first part untouched.
# - emulation: a fixed "device" (Invada's tube stage driven 12 dB, then an fil4 bell and high
#   shelf); learned: Calf's multiband compressor + fil4 by SPSA, beside afx's `eq,comp` by its
#   exact adjoint;
# - mastering: a reference master made by fil4 + darc + dpl with settings drawn per pair
#   (±0.15 normalised around a mild master); learned: Calf's multiband compressor → LSP's 32-band
#   graphic EQ → LSP's limiter by SPSA, beside afx's `eq,comp,limiter` by its exact adjoint.
# The device has one gain, so the emulation models set the level themselves (`--output-level
# absolute`: a reference from another part of the clip is as loud as that part, not as the
# target); a master's level is the reference's, so the mastering models leave it to the reference
# (`--output-level reference`). Every model trains on MR-STFT alone (`--l1-weight 0`): a multiband compressor's crossover turns the phase even when it
# does not compress, so a waveform (L1) term would keep it far from any target (at its defaults
# Calf's multiband scores 7.9 against the input's 1.4 with DeepAFx-ST's L1 weight of 100). Each is
# evaluated on held-out music beside the input and an oracle fitting afx's chain to each pair.
#
# Needs afx built with `--features lv2` and the plugins (scripts/install-lv2.sh).
# Usage: scripts/plugins-tasks.sh [OUT]   (OUT defaults to runs/plugins-tasks)
# Settings (environment): STEPS (500: the afx rows and the one-pair SPSA rows), LONG (800: the
# four-pair SPSA rows; 0 leaves them out), BATCH (4), CLIP (16384 frames at 24 kHz), PAIRS (30 evaluation pairs),
# ORACLE (60 fit steps per pair), SEED (1), DATA, AFX (as scripts/plugins-style.sh).
set -euo pipefail
out=${1:-runs/plugins-tasks}
STEPS=${STEPS:-500} LONG=${LONG:-800} BATCH=${BATCH:-4} CLIP=${CLIP:-16384} PAIRS=${PAIRS:-30} ORACLE=${ORACLE:-60} SEED=${SEED:-1}
AFX_FEATURES="--features lv2"
# shellcheck source=scripts/runs.sh
source "$(dirname "$0")/runs.sh"

common=(--batch-size "$BATCH" --clip-frames "$CLIP" --seed "$SEED" --l1-weight 0
        --validate-every 250 --validation-pairs 16)
bands=(--set calf_multiband.bypass0=0 --set calf_multiband.bypass1=0 --set calf_multiband.bypass2=0 --set calf_multiband.bypass3=0)

# Emulation.
device=(--target-chain invada_tube,fil4 --target-set invada_tube.drive=12 --target-set invada_tube.mix=100
        --target-set fil4.gain2=4 --target-set fil4.freq2=800 --target-set fil4.HSgain=-3)
calf_fil4=(--chain calf_multiband,fil4 "${bands[@]}"
           --learn 'calf_multiband.threshold*,calf_multiband.ratio*,calf_multiband.attack*,calf_multiband.release*,calf_multiband.makeup*,fil4.gain*')
emulate=("${device[@]}" --output-level absolute)
run "$out/emulate-afx-exact.afx" train "${emulate[@]}" --estimator exact --steps "$STEPS" "${common[@]}"
run "$out/emulate-calf-spsa.afx" train "${emulate[@]}" --estimator spsa --steps "$STEPS" "${calf_fil4[@]}" "${common[@]}"
models=(--model "$out/emulate-afx-exact.afx" --model "$out/emulate-calf-spsa.afx")
if [ "$LONG" -gt 0 ]; then
    run "$out/emulate-calf-spsa4.afx" train "${emulate[@]}" --estimator spsa --spsa-pairs 4 --steps "$LONG" "${calf_fil4[@]}" "${common[@]}"
    models+=(--model "$out/emulate-calf-spsa4.afx")
fi
"$AFX" eval --data "$DATA/music" --pairs "$PAIRS" "${device[@]}" --oracle-steps "$ORACLE" "${models[@]}" \
    --table "$out/emulate.md" > /dev/null
echo "wrote $out/emulate.md"

# Mastering.
master=(--target-chain fil4,darc,dpl --target-set fil4.LSgain=2 --target-set fil4.HSgain=2 --target-set darc.Ratio=0.5
        --target-set darc.threshold=-26 --target-set dpl.gain=6 --target-set dpl.threshold=-1 --target-draw 0.3)
calf_lsp=(--chain calf_multiband,lsp_geq32,lsp_limiter "${bands[@]}"
          --learn 'calf_multiband.threshold*,calf_multiband.ratio*,calf_multiband.makeup*,lsp_geq32.g_*,lsp_limiter.th')
run "$out/master-afx-exact.afx" train "${master[@]}" --output-level reference --estimator exact --chain eq,comp,limiter --steps "$STEPS" "${common[@]}"
run "$out/master-calf-lsp-spsa.afx" train "${master[@]}" --output-level reference --estimator spsa --steps "$STEPS" "${calf_lsp[@]}" "${common[@]}"
models=(--model "$out/master-afx-exact.afx" --model "$out/master-calf-lsp-spsa.afx")
if [ "$LONG" -gt 0 ]; then
    run "$out/master-calf-lsp-spsa4.afx" train "${master[@]}" --output-level reference --estimator spsa --spsa-pairs 4 --steps "$LONG" "${calf_lsp[@]}" "${common[@]}"
    models+=(--model "$out/master-calf-lsp-spsa4.afx")
fi
"$AFX" eval --data "$DATA/music" --pairs "$PAIRS" "${master[@]}" --oracle-steps "$ORACLE" --chain eq,comp,limiter "${models[@]}" \
    --table "$out/master.md" > /dev/null
echo "wrote $out/master.md"
