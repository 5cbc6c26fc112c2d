#!/usr/bin/env bash
# Install the system packages Heimdex builds and tests against (Debian/Ubuntu), if missing.
# Idempotent: prints nothing to do when everything is present.
set -euo pipefail
pkgs=(pkg-config clang libclang-dev ffmpeg
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
      libavfilter-dev libavdevice-dev python3-pip cmake espeak-ng fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "deps: system packages present"
else
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# An S3-compatible server for the native stack and its tests (scripts/native-stack.sh,
# heimdex-server/tests/server_native.rs).
if ! command -v moto_server >/dev/null 2>&1 && ! python3 -c 'import moto.server' 2>/dev/null; then
  echo "deps: installing moto[server] (S3 for the native stack)"
  python3 -m pip install -q 'moto[server]'
fi
# Emulators for the object-store connector tests (heimdex-connectors/tests/object_stores.rs):
# WebDAV for the http connector (wsgidav on cheroot) and Azure Blob Storage (Azurite, npm,
# installed under $HEIMDEX_NPM_PREFIX, default ~/.cache/heimdex-npm, where the tests look).
if ! command -v wsgidav >/dev/null 2>&1 || ! python3 -c 'import cheroot' 2>/dev/null; then
  echo "deps: installing wsgidav and cheroot (WebDAV server for the http connector tests)"
  python3 -m pip install -q wsgidav cheroot
fi
# Google Cloud Storage JSON API emulator for the gcs connector tests (heimdex-connectors/tests/gcs.rs).
if ! command -v gcp-storage-emulator >/dev/null 2>&1; then
  echo "deps: installing gcp-storage-emulator (GCS emulator for the gcs connector tests)"
  python3 -m pip install -q gcp-storage-emulator
fi
npm_prefix="${HEIMDEX_NPM_PREFIX:-$HOME/.cache/heimdex-npm}"
if [ ! -x "$npm_prefix/node_modules/.bin/azurite-blob" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "deps: installing nodejs and npm (for Azurite)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  echo "deps: installing azurite into $npm_prefix (Azure Blob emulator for the azure connector tests)"
  mkdir -p "$npm_prefix"
  npm install -s --no-audit --no-fund --prefix "$npm_prefix" azurite >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "deps: cargo-nextest not found; tests will run with cargo test"
fi
