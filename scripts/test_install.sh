#!/bin/sh
# test_install.sh - installs the library into a temporary prefix, builds the
# README's program (examples/readme.c) against it exactly as the README shows
# (cc prog.c $(pkg-config --cflags --libs tapegrad)), runs it with no
# environment help (no LD_LIBRARY_PATH: the rpath from tapegrad.pc finds the
# library), compares the gradients with the hand-computed ones printed in
# README.md, and checks that the installed shared library exports only the
# names include/tapegrad.h declares, under a versioned SONAME, that the static
# library's other names carry the tg_ prefix and that no test hook ships.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make --no-print-directory -s install PREFIX="$tmp/prefix" >/dev/null
lib="$tmp/prefix/lib"
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "test_install: $*"; failed=$((failed + 1)); }

export PKG_CONFIG_PATH="$lib/pkgconfig"
cc -std=gnu11 examples/readme.c -o "$tmp/readme" $(pkg-config --cflags --libs tapegrad)
if env -u LD_LIBRARY_PATH "$tmp/readme" > "$tmp/out.txt" 2>&1; then
    fail=0
    for want in "loss = 2.188125" "dloss/dW float32 [3,2] {0.075, 0.4, -0.9125, 2.675, -1.9, 4.95}" \
                "dloss/db float32 [2] {-0.775, 1.9}"; do
        grep -qF "$want" "$tmp/out.txt" || { bad "README program output lacks: $want"; fail=1; }
    done
    [ "$fail" = 0 ] && ok
else
    bad "the README program built against the installed library does not start:"; cat "$tmp/out.txt"
fi

# The program records the versioned SONAME, which the installed link provides.
soname=$(readelf -d "$lib/libtapegrad.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
case "$soname" in
    libtapegrad.so.[0-9]*) [ -e "$lib/$soname" ] && ok || bad "SONAME $soname is not installed" ;;
    *) bad "no versioned SONAME (got '$soname')" ;;
esac
readelf -d "$tmp/readme" | grep -q "NEEDED.*\[$soname\]" && ok || bad "the program does not need $soname"

# Every exported name is declared in the public header.
leaked=""
for s in $(nm -D --defined-only "$lib/libtapegrad.so" | awk '{print $3}'); do
    case "$s" in _init|_fini|__bss_start|_edata|_end) continue ;; esac
    grep -qE "[^A-Za-z0-9_]$s\(" include/tapegrad.h || leaked="$leaked $s"
done
if [ -z "$leaked" ]; then ok; else bad "exported but not in tapegrad.h:$leaked"; fi

# The static library cannot hide its internals, so each carries the tg_
# prefix: a program's own tg_dtype_name or tg_error_set links beside them.
unprefixed=""
for s in $(nm -g --defined-only "$lib/libtapegrad.a" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u); do
    case "$s" in tg_*) continue ;; esac
    grep -qE "[^A-Za-z0-9_]$s\(" include/tapegrad.h || unprefixed="$unprefixed $s"
done
if [ -z "$unprefixed" ]; then ok; else bad "internal names without the tg_ prefix:$unprefixed"; fi

# Test hooks (tests link build/libtapegrad-test.a) are in neither library.
hooks=$(nm "$lib/libtapegrad.a" "$lib/libtapegrad.so" 2>/dev/null | grep -E 'tg_mem_fail_after|tg_arena_set_poison' || true)
if [ -z "$hooks" ]; then ok; else bad "test hooks in the installed library: $hooks"; fi

echo "install: $passed passed, $failed failed"
[ "$failed" = 0 ]
