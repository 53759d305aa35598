#!/usr/bin/env bash
# Runs matchering 2.0.6 (PyPI; pinned), the reference-matching mastering tool users reach for,
# on evaluation items: for every DIR/NAME.input.wav with its DIR/NAME.reference.wav it writes
# DIR/NAME.matchering.wav (24-bit; matchering works and writes at 44.1 kHz stereo, so the
# reader resamples and folds channels back to the item's own).
# Usage: scripts/matchering.sh DIR
# The tool is installed once into a virtual environment at $AFX_MATCHERING_VENV
# (default ~/.cache/afx/matchering-venv). Items it refuses (too short, silent) are listed on
# stderr and left without an output; the script fails only if it cannot run at all.
set -euo pipefail
dir=${1:?usage: scripts/matchering.sh DIR}
venv=${AFX_MATCHERING_VENV:-$HOME/.cache/afx/matchering-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matchering' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "matchering==2.0.6"
fi
"$venv/bin/python" - "$dir" <<'EOF'
import glob
import os
import sys

import matchering as mg

mg.log(warning_handler=lambda text: None, info_handler=lambda text: None)
failed = 0
for target in sorted(glob.glob(os.path.join(sys.argv[1], "*.input.wav"))):
    stem = target[: -len(".input.wav")]
    out = stem + ".matchering.wav"
    if os.path.exists(out):
        continue
    try:
        mg.process(target=target, reference=stem + ".reference.wav", results=[mg.pcm24(out)])
    except Exception as error:  # matchering raises its own ModuleError and plain errors
        failed += 1
        print(f"matchering: {os.path.basename(stem)}: {error}", file=sys.stderr)
print(f"matchering: {failed} item(s) refused", file=sys.stderr)
EOF
