#!/bin/sh
# test_install.sh - installs the library into a temporary prefix, builds the
# README's program (examples/readme.c) against it through pkg-config, runs it
# and compares the gradients with the hand-computed ones printed in README.md.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make --no-print-directory -s install PREFIX="$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
cc -std=gnu11 examples/readme.c -o "$tmp/readme" $(pkg-config --cflags tapegrad) \
    $(pkg-config --libs tapegrad)
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/readme" > "$tmp/out.txt"
fail=0
for want in "loss = 2.188125" "dloss/dW float32 [3,2] {0.075, 0.4, -0.9125, 2.675, -1.9, 4.95}" \
            "dloss/db float32 [2] {-0.775, 1.9}"; do
    if ! grep -qF "$want" "$tmp/out.txt"; then
        echo "test_install: README program output lacks: $want"; fail=1
    fi
done
if [ "$fail" = 0 ]; then echo "install: 1 passed, 0 failed"; else cat "$tmp/out.txt"; echo "install: 0 passed, 1 failed"; exit 1; fi
