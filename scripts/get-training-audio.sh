#!/usr/bin/env bash
# Fetches the audio afx trains and evaluates on from Debian packages (downloaded with
# `apt-get download` and unpacked with `dpkg-deb -x`: nothing is installed) and gathers it into
# one folder per kind, with one sub-folder per package (music) or per voice (speech):
#   DEST/music/<package>[-<group>]/...   game scores: orchestral, world, electronic, ambient,
#                                        rock/metal, chiptune (about 25 h)
#   DEST/speech/<package>-<voice>/...    recorded voices, one folder per speaker or language
#                                        (short lines are joined within a folder for training)
# Ogg Vorbis, FLAC, WAV and MP3 files are linked where they lie; Opus, G.722 and GSM files are
# converted once to FLAC with ffmpeg; zip archives (.pk3, public.zip) are unpacked; the
# Frets-on-Fire songs are mixed from their backing and guitar stems with sox.
#
# Usage: scripts/get-training-audio.sh [--music | --speech | --core] [DEST]
#   --music / --speech  only that kind; --core  only the two packages of earlier versions
#   (wesnoth-1.16-music, fillets-ng-data-cs: 0.3 GB instead of about 5 GB)
#   DEST defaults to $AFX_DATA or ~/.cache/afx/training-audio. Needs root or sudo for apt-get
#   (ffmpeg, sox and unzip are installed if missing). Re-running skips what is already there.
# Prints "music DIR" and "speech DIR" at the end.
set -euo pipefail

kinds="music speech"
core=0
case "${1:-}" in
    --music) kinds="music"; shift ;;
    --speech) kinds="speech"; shift ;;
    --core) core=1; shift ;;
esac
dest=${1:-${AFX_DATA:-$HOME/.cache/afx/training-audio}}
debs="$dest/debs"
unpacked="$dest/unpacked"
mkdir -p "$debs" "$unpacked"

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
missing=""
for tool in ffmpeg sox unzip; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
$SUDO apt-get update -qq
if [ -n "$missing" ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing libsox-fmt-all >/dev/null
fi

# fetch PACKAGE: downloads and unpacks it once into $unpacked/PACKAGE.
fetch() {
    local pkg=$1
    [ -e "$unpacked/$pkg/.unpacked" ] && return 0
    (cd "$debs" && ls "${pkg}"_*.deb >/dev/null 2>&1 || apt-get download -qq "$pkg" 2>/dev/null)
    rm -rf "${unpacked:?}/$pkg"
    dpkg-deb -x "$(ls "$debs/${pkg}"_*.deb | head -n1)" "$unpacked/$pkg"
    touch "$unpacked/$pkg/.unpacked"
}

# unzip_in PACKAGE ARCHIVE-PATTERN MEMBER-PATTERN: unpacks the audio members of the package's
# zip archives into $unpacked/PACKAGE/zip (once).
unzip_in() {
    local pkg=$1 archives=$2 members=$3
    [ -e "$unpacked/$pkg/zip/.unzipped" ] && return 0
    mkdir -p "$unpacked/$pkg/zip"
    find "$unpacked/$pkg" -path "$unpacked/$pkg/zip" -prune -o -type f -name "$archives" -print | while read -r archive; do
        unzip -q -o "$archive" "$members" -d "$unpacked/$pkg/zip" 2>/dev/null || true
    done
    touch "$unpacked/$pkg/zip/.unzipped"
}

# place FILE KIND FOLDER: links FILE (or its FLAC conversion) into DEST/KIND/FOLDER under a
# name made of its last three path components, so names stay unique.
place() {
    local file=$1 kind=$2 folder=$3
    local dir="$dest/$kind/$folder"
    mkdir -p "$dir"
    local name
    name=$(echo "$file" | awk -F/ '{n=NF; print (n>2 ? $(n-2) "-" : "") (n>1 ? $(n-1) "-" : "") $n}')
    local format=()
    case "${file,,}" in
        *.ogg|*.flac|*.wav|*.mp3)
            [ -e "$dir/$name" ] || ln -s "$file" "$dir/$name"
            return 0 ;;
        *.gsm) format=(-f gsm) ;;
        *.g722) format=(-f g722) ;;
    esac
    # Raw GSM and G.722 have no header: their format is named. A file ffmpeg cannot read is
    # left out with a note.
    [ -e "$dir/$name.flac" ] || ffmpeg -nostdin -loglevel error "${format[@]}" -i "$file" -c:a flac "$dir/$name.flac" \
        || { rm -f "$dir/$name.flac"; echo "left out (cannot convert): $file" >&2; }
}

# take PACKAGE KIND FOLDER REGEX [GROUP-SED]: places every audio file of the unpacked package
# whose path matches REGEX (extended, case-insensitive) into DEST/KIND/FOLDER, or, with
# GROUP-SED (a sed expression printing a group name from the path), into DEST/KIND/FOLDER-GROUP.
take() {
    local pkg=$1 kind=$2 folder=$3 regex=$4 group=${5:-}
    # Links of an earlier run go (the selection may have changed); conversions stay.
    find "$dest/$kind" -maxdepth 2 -path "$dest/$kind/$folder*" -type l -delete 2>/dev/null || true
    find "$unpacked/$pkg" -type f | grep -iE '\.(ogg|flac|wav|mp3|opus|g722|gsm)$' | grep -iE "$regex" | sort | while read -r file; do
        if [ -n "$group" ]; then
            place "$file" "$kind" "$folder-$(echo "$file" | sed -nE "$group")"
        else
            place "$file" "$kind" "$folder"
        fi
    done
    echo "$kind/$folder: $(find "$dest/$kind" -maxdepth 1 -name "$folder*" -type d | wc -l) folder(s)" >&2
}

music() {
    for pkg in wesnoth-1.16-music; do fetch "$pkg"; done
    take wesnoth-1.16-music music wesnoth '/music/'
    [ "$core" -eq 1 ] && return 0
    for pkg in 0ad-data ufoai-music warzone2100-music naev-data supertux-data widelands-data hedgewars-data \
        freedroidrpg-data drascula-music flare-game megaglest-data fretsonfire-songs-sectoid \
        fretsonfire-songs-muldjord openclonk-data hyperrogue-music freecol; do
        fetch "$pkg"
    done
    unzip_in 0ad-data 'public.zip' 'audio/music/*'
    take 0ad-data music 0ad '/zip/audio/music/'
    unzip_in ufoai-music '*.pk3' 'music/*'
    take ufoai-music music ufoai '/zip/music/'
    take warzone2100-music music warzone2100 '.'
    take naev-data music naev '/music/'
    take supertux-data music supertux '/music/'
    take widelands-data music widelands '/music/'
    take hedgewars-data music hedgewars '/music/'
    take freedroidrpg-data music freedroidrpg '/music/'
    take drascula-music music drascula '.'
    take flare-game music flare '/music/'
    take megaglest-data music megaglest '/music/'
    take openclonk-data music openclonk 'music'
    take hyperrogue-music music hyperrogue '/music/'
    take freecol music freecol '/music/|/anthem/'
    # Frets on Fire ships each song as a backing track and a guitar stem: mix them.
    for pkg in fretsonfire-songs-sectoid fretsonfire-songs-muldjord; do
        find "$unpacked/$pkg" -name song.ogg | sort | while read -r song; do
            local dir mixed
            dir=$(dirname "$song")
            mixed="$dest/music/fretsonfire/$(basename "$dir").flac"
            mkdir -p "$dest/music/fretsonfire"
            if [ ! -e "$mixed" ]; then
                if [ -e "$dir/guitar.ogg" ]; then sox -q -m "$song" "$dir/guitar.ogg" "$mixed"; else sox -q "$song" "$mixed"; fi
            fi
        done
    done
}

speech() {
    fetch fillets-ng-data-cs
    take fillets-ng-data-cs speech fillets-cs '.'
    [ "$core" -eq 1 ] && return 0
    for pkg in tuxpaint-stamps-default klettres-data ktuberling-data hedgewars-data \
        asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722 asterisk-core-sounds-fr-g722 \
        asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722 \
        asterisk-prompt-it-menardi-wav asterisk-prompt-es-co asterisk-prompt-fr-armelle; do
        fetch "$pkg"
    done
    # Tux Paint: each stamp's spoken name and description, `<stamp>[_desc]_<lang>.ogg`.
    take tuxpaint-stamps-default speech tuxpaint '_[a-z]{2}(_[a-z]{2})?\.ogg$' 's/.*_([a-z]{2}(_[A-Za-z]{2})?)\.ogg$/\1/p'
    # KLettres and KTuberling: one folder per language.
    take klettres-data speech klettres '/klettres/' 's#.*/klettres/([^/]+)/.*#\1#p'
    take ktuberling-data speech ktuberling '/sounds/' 's#.*/sounds/([^/]+)/.*#\1#p'
    # Hedgewars: one folder per voice pack.
    take hedgewars-data speech hedgewars '/voices/' 's#.*/voices/([^/]+)/.*#\1#p'
    for lang in en es fr it ru; do
        take "asterisk-core-sounds-$lang-g722" speech "asterisk-$lang" '\.g722$'
    done
    take asterisk-prompt-it-menardi-wav speech asterisk-it-menardi '.'
    take asterisk-prompt-es-co speech asterisk-es-co '.'
    take asterisk-prompt-fr-armelle speech asterisk-fr-armelle '.'
}

for kind in $kinds; do
    "$kind"
done
for kind in $kinds; do
    echo "$kind $dest/$kind"
done
