#!/usr/bin/env bash
# Installs the Debian packages afx trains on and gathers their audio into two folders of
# symbolic links, one per kind, which it prints:
#   music:  wesnoth-1.16-music   (orchestral, Ogg Vorbis)
#   speech: fillets-ng-data-cs   (voice-acted Czech dialogue, Ogg Vorbis; only its `cs` files,
#           not the game's music or sound effects that share its folders)
# Usage: scripts/get-training-audio.sh [DEST]   (needs root or sudo for apt-get)
# DEST defaults to $AFX_DATA or ~/.cache/afx/training-audio; it prints "music DIR" / "speech DIR".
set -euo pipefail
dest=${1:-${AFX_DATA:-$HOME/.cache/afx/training-audio}}
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wesnoth-1.16-music fillets-ng-data-cs >/dev/null

# link PACKAGE KIND: one link per Ogg file of PACKAGE in DEST/KIND, named after its last two
# path components (folder-file.ogg) so that names stay unique and sort folder by folder.
link() {
    mkdir -p "$dest/$2"
    find "$dest/$2" -type l -delete
    find "$dest/$2" -mindepth 1 -type d -empty -delete
    dpkg -L "$1" | grep -E '\.ogg$' | while read -r file; do
        name=$(basename "$(dirname "$(dirname "$file")")")-$(basename "$(dirname "$file")")-$(basename "$file")
        ln -s "$file" "$dest/$2/$name"
    done
    echo "$2 $(find "$dest/$2" -type l | wc -l) files" >&2
}
link wesnoth-1.16-music music
link fillets-ng-data-cs speech
echo "music  $dest/music"
echo "speech $dest/speech"
