#!/bin/sh
# deps.sh - makes sure the Debian packages tapegrad builds and runs with are
# installed. Idempotent: installs only what is missing (as root), otherwise
# prints the exact apt-get line to run. Used by `make` targets demo and check.
#   scripts/deps.sh            build, test and demo dependencies
#   scripts/deps.sh --extra P  also package P (e.g. clang, valgrind)
set -eu
pkgs="build-essential pkg-config check libjemalloc-dev libopenblas-dev libdnnl-dev zlib1g-dev dataset-fashion-mnist gnuplot-nox fortunes"
while [ $# -gt 0 ]; do
    case "$1" in
    --extra) pkgs="$pkgs $2"; shift 2 ;;
    *) echo "deps.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps.sh: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "deps.sh: missing packages; run:" >&2
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
fi
