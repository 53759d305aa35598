#!/usr/bin/env bash
# afx's LV2 host against a Python host doing DeepAFx's per-item loop (BENCHMARKS.md, "afx's host
# against a Python host"), measured back to back: `afx bench --plugins` (renders per second inside
# an SPSA step on 2 threads) and scripts/python-host.py (one process, lilv's Python bindings) for
# the plugins both can host without a URID map (x42 darc, Calf's mono compressor), at DeepAFx's
# two hop sizes (1024, its mastering config; 64, its plugin class's default). The Python rate is
# doubled for two processes (perfect scaling, DeepAFx's one process per item on 2 cores).
#
# Needs scripts/install-lv2.sh first. Fetches lilv.py from Debian's lilv source package (no
# deb-src entry needed: a temporary source list) into ~/.cache/afx/lilv-src, and numpy (pip)
# where python3 lacks it. Usage: scripts/bench-python-host.sh   (PYTHON: the interpreter)
set -euo pipefail
PYTHON=${PYTHON:-python3}
cache=${AFX_CACHE:-$HOME/.cache/afx}/lilv-src
if [ ! -f "$cache/lilv.py" ]; then
    work=$(mktemp -d)
    echo "deb-src http://deb.debian.org/debian bookworm main" > "$work/sources.list"
    mkdir -p "$work/lists/partial"
    opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$work/lists")
    apt-get -qq "${opts[@]}" update
    (cd "$work" && apt-get -qq "${opts[@]}" source --download-only lilv)
    mkdir -p "$cache"
    tar -xjf "$work"/lilv_*.orig.tar.bz2 -C "$work"
    cp "$work"/lilv-*/bindings/python/lilv.py "$cache/"
    rm -rf "$work"
fi
"$PYTHON" -c "import numpy" 2>/dev/null || "$PYTHON" -m pip install -q numpy

cargo build --release --quiet --features lv2
afx=$(target/release/afx bench --plugins --json)
echo "| plugin | afx in the SPSA step (M frames/s, 2 threads) | Python, hop 1024 (× 2 processes) | afx / Python | Python, hop 64 (× 2) | afx / Python |"
echo "|---|---:|---:|---:|---:|---:|"
for uri in "http://gareus.org/oss/lv2/darc#mono" "http://calf.sourceforge.net/plugins/MonoCompressor"; do
    ours=$(echo "$afx" | "$PYTHON" -c "import json,sys; print(next(p['spsa_mframes_per_s'] for p in json.load(sys.stdin) if p['uri']=='$uri'))")
    row="| $uri | $(printf %.1f "$ours")"
    for hop in 1024 64; do
        py=$("$PYTHON" scripts/python-host.py "$cache" "$uri" --hop "$hop" | "$PYTHON" -c "import json,sys; print(2*json.load(sys.stdin)['mframes_per_s'])")
        row="$row | $(printf %.2f "$py") | $("$PYTHON" -c "print(f'{$ours/$py:.1f}')")"
    done
    echo "$row |"
done
