# Shared by the experiment scripts (compare.sh, plugins-style.sh); source it after setting
# `out`. Sets DATA (the folder scripts/get-training-audio.sh fills), AFX (a built afx binary:
# built with cargo's flags in $AFX_FEATURES unless given) and `data` (its music and speech
# folders), and defines `run`.
DATA=${DATA:-${AFX_DATA:-$HOME/.cache/afx/training-audio}}
if [ -z "${AFX:-}" ]; then
    # shellcheck disable=SC2086
    cargo build --release --quiet ${AFX_FEATURES:-}
    AFX=target/release/afx
fi
for kind in music speech; do
    [ -d "$DATA/$kind" ] || { echo "no $DATA/$kind: run scripts/get-training-audio.sh first" >&2; exit 1; }
done
mkdir -p "$out"
data=("$DATA/music" "$DATA/speech")

# run OUT_FILE COMMAND...: runs an afx training command unless OUT_FILE exists; resumes the
# run folder (OUT_FILE.run) if an earlier attempt left a checkpoint.
run() {
    local file=$1
    shift
    if [ -f "$file" ]; then
        echo "have $file"
    elif [ -f "$file.run/checkpoint.afx" ]; then
        "$AFX" "$@" --out "$file" --resume
    else
        "$AFX" "$@" --out "$file" --data "${data[@]}"
    fi
}
