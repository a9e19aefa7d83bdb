#!/usr/bin/env bash
# One-command set-up on Debian/Ubuntu: system packages (PortAudio, FluidSynth + a GM soundfont, liblo's OSC tools,
# headless Pure Data for the patch test) and the Python package with its dev extras.
set -euo pipefail
APT_PACKAGES="libportaudio2 fluidsynth fluid-soundfont-gm liblo-tools puredata-core sox"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  missing=""
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
  fi
else
  echo "install.sh: no apt-get here; install these yourself: $APT_PACKAGES" >&2
fi
python3 -m pip install -q -e ".[dev]"
