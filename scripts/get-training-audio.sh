#!/usr/bin/env bash
# Installs the Debian packages afx trains on and prints the folders that hold their audio:
#   music:  wesnoth-1.16-music   (orchestral, Ogg Vorbis)
#   speech: fillets-ng-data-cs   (voice-acted Czech dialogue, Ogg Vorbis)
# Usage: scripts/get-training-audio.sh   (needs root or sudo; prints "music DIR" / "speech DIR")
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wesnoth-1.16-music fillets-ng-data-cs >/dev/null
music=$(dpkg -L wesnoth-1.16-music | grep -E '\.ogg$' | xargs -n1 dirname | sort -u | head -n1)
speech=$(dpkg -L fillets-ng-data-cs | grep -E '\.ogg$' | xargs -n1 dirname | sort | uniq -c | sort -rn | head -n1 | awk '{print $2}')
speech_root=$(dpkg -L fillets-ng-data-cs | grep -E '\.ogg$' | sed 's#/[^/]*$##' | awk -F/ '{print $1"/"$2"/"$3"/"$4"/"$5}' | sort -u | head -n1)
echo "music  $music"
echo "speech $speech_root"
