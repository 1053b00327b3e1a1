#!/bin/sh
# Installs the Debian 12 packages liblvmmed needs to build and test, if missing.
# Idempotent and non-interactive; needs root (or sudo) only when something is missing.
set -eu
packages="gcc g++ make binutils meson ninja-build pkg-config libopenblas-dev libpng-dev \
libtiff-dev check abigail-tools python3 python3-numpy python3-scipy \
libjansson-dev python3-torch python3-torchvision \
libjpeg62-turbo-dev python3-pil python3-tifffile libtiff-tools clang-14 libclang-rt-14-dev"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && { echo "install_deps: all packages present"; exit 0; }
echo "install_deps: installing$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing
