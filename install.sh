#!/usr/bin/env bash
# One-command set-up on Debian/Ubuntu: system packages (PortAudio, FluidSynth + a GM soundfont, liblo's OSC tools,
# headless Pure Data for the patch test, Ardour for its headless Lua host ardour7-lua in the DAW test) and the
# Python package with its dev extras.
set -euo pipefail
APT_PACKAGES="libportaudio2 fluidsynth fluid-soundfont-gm liblo-tools puredata-core sox ardour"
# installed without their recommends: Ardour's (the video timeline: ffmpeg, Qt, ~150 packages) are never used here
APT_NO_RECOMMENDS="ardour"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
if command -v apt-get >/dev/null 2>&1; then
  missing=""
  bare=""
  for p in $APT_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 && continue
    case " $APT_NO_RECOMMENDS " in
      *" $p "*) bare="$bare $p" ;;
      *) missing="$missing $p" ;;
    esac
  done
  if [ -n "$missing$bare" ]; then
    $SUDO apt-get update -qq
  fi
  if [ -n "$missing" ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
  fi
  if [ -n "$bare" ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $bare
  fi
else
  echo "install.sh: no apt-get here; install these yourself: $APT_PACKAGES" >&2
fi
python3 -m pip install -q -e ".[dev]"
