#!/usr/bin/env bash
# What the `lv2` feature needs on Debian/Ubuntu: lilv to link against, and the plugins the LV2
# tests and tasks use (x42, Calf, LSP, Zam, Invada). Then build with `--features lv2`.
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq liblilv-dev lilv-utils \
    x42-plugins calf-plugins lsp-plugins-lv2 zam-plugins invada-studio-plugins-lv2 >/dev/null
