#!/usr/bin/env bash
# Installs the build into BUILD/install-test with `cmake --install`, checks
# the layout (CLI, versioned shared library, static library, headers, .pc),
# then builds examples/train_noise.c the way a C user would, with
# pkg-config, twice: against the installed libbatchlab.so, and against
# libbatchlab.a (its dependencies still shared). Each build runs on the
# committed Fashion-MNIST sample and must write its checkpoint.
#   install_example.sh CMAKE BUILD_DIR CC SOURCE_DIR DATA_DIR
set -euo pipefail
cmake=$1 build=$2 cc=$3 src=$4 data=$5
example=$src/examples/train_noise.c
prefix=$build/install-test
rm -rf "$prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$build/install-test.log"
T=$(mktemp -d /tmp/blinstall.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

# GNUInstallDirs may choose lib/ or lib/<multiarch>/: ask the .pc where it went.
pc=$(find "$prefix" -name batchlab.pc -path '*/pkgconfig/*' | head -1)
[ -n "$pc" ] || fail "no batchlab.pc under $prefix"
export PKG_CONFIG_PATH=$(dirname "$pc")
pkg-config --exists batchlab || fail "pkg-config does not accept $pc"
libdir=$(pkg-config --variable=libdir batchlab)
includedir=$(pkg-config --variable=includedir batchlab)
[ "$(pkg-config --modversion batchlab)" = 0.1.0 ] || fail "version $(pkg-config --modversion batchlab)"
[ -x "$prefix/bin/batchlab" ] || fail "no $prefix/bin/batchlab"
[ -f "$libdir/libbatchlab.so.0.1.0" ] || fail "no $libdir/libbatchlab.so.0.1.0"
[ "$(readlink "$libdir/libbatchlab.so.0")" = libbatchlab.so.0.1.0 ] || fail "libbatchlab.so.0 link"
[ "$(readlink "$libdir/libbatchlab.so")" = libbatchlab.so.0 ] || fail "libbatchlab.so link"
[ -f "$libdir/libbatchlab.a" ] || fail "no $libdir/libbatchlab.a"
n_src=$(ls "$src"/include/batchlab/*.h | wc -l)
n_inst=$(ls "$includedir"/batchlab/*.h | wc -l)
[ "$n_src" = "$n_inst" ] || fail "$n_inst headers installed in $includedir/batchlab, want $n_src"
for m in $(pkg-config --print-requires-private batchlab); do
    pkg-config --exists "$m" || fail "Requires.private names $m, which pkg-config does not know"
done
echo "ok   installed: $prefix/bin/batchlab, $libdir/libbatchlab.{so.0.1.0,so.0,so,a}," \
    "$n_inst headers, $pc"

run() { # NAME BINARY: runs it on the sample, checks the checkpoint it writes
    local name=$1 bin=$2 ckpt=$T/$1.safetensors
    if ! LD_LIBRARY_PATH=$libdir "$bin" "$data" "$ckpt" >"$T/$name.out" 2>&1; then
        sed 's/^/    /' "$T/$name.out"
        fail "$name: train_noise exited nonzero"
    fi
    [ -s "$ckpt" ] || fail "$name: no checkpoint at $ckpt"
    grep -q "noise scale" "$T/$name.out" || fail "$name: no noise scale printed"
    echo "ok   $name:"
    sed 's/^/       /' "$T/$name.out"
}

# Shared: what the example's comment tells a user to type, warnings as errors.
"$cc" -std=c99 -Wall -Wextra -Werror "$example" $(pkg-config --cflags --libs batchlab) -o "$T/shared"
readelf -d "$T/shared" | grep -q 'NEEDED.*\[libbatchlab\.so\.0\]' ||
    fail "the shared build does not depend on libbatchlab.so.0"
run shared "$T/shared"

# Static: libbatchlab.a plus what it needs, from the .pc's Requires.private (one
# level: their own Libs) and Libs.private. `pkg-config --static --libs` goes on
# to the dependencies' own private libraries (libcurl's -lnghttp2 ...), which
# link only where every one of their -dev packages is installed; it must list
# at least the same flags.
private_libs=$(sed -n 's/^Libs.private: *//p' "$pc")
requires=$(pkg-config --print-requires-private batchlab)
static_flags="$libdir/libbatchlab.a $(pkg-config --libs $requires) $private_libs"
full=" $(pkg-config --static --libs batchlab) "
for f in -lbatchlab $(pkg-config --libs $requires) $private_libs; do
    [[ "$full" == *" $f "* ]] || fail "pkg-config --static --libs batchlab lacks $f"
done
"$cc" -std=c99 -Wall -Wextra -Werror "$example" $(pkg-config --cflags batchlab) $static_flags \
    -o "$T/static"
if readelf -d "$T/static" | grep -q 'NEEDED.*libbatchlab'; then
    fail "the static build still depends on libbatchlab.so"
fi
run static "$T/static"
