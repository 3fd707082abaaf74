#!/usr/bin/env bash
# The shared library's interface is the bl_ names (cmake/libbatchlab.map):
# fails when libbatchlab.so defines any other dynamic symbol, e.g. a per-ISA
# cpu_* kernel or a helper that should have been static. The version script
# cannot hide the linker's own markers (_init, _fini, _edata, _end,
# __bss_start), which are allowed. Every exported name must be declared in a
# public header (an internal bl_ helper belongs under local: in the map).
# Also checks the soname.
#   lib_exports.sh path/to/libbatchlab.so include/batchlab
set -euo pipefail
lib=$1
headers=$2
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" != "libbatchlab.so.0" ]; then
    echo "FAIL: soname of $lib is '$soname', want libbatchlab.so.0"
    exit 1
fi
# nm -D prints "VALUE TYPE NAME" (VERSION@NODE suffixes are dropped with the cut).
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | cut -d@ -f1 | sort -u)
bad=$(grep -Ev '^(bl_.*|_init|_fini|_edata|_end|__bss_start)$' <<<"$syms" || true)
n_bl=$(grep -c '^bl_' <<<"$syms" || true)
if [ -n "$bad" ]; then
    echo "FAIL: $lib exports $(wc -l <<<"$bad") symbol(s) outside the bl_ namespace:"
    sed 's/^/    /' <<<"$bad" | head -40
    exit 1
fi
undeclared=$(for s in $(grep '^bl_' <<<"$syms"); do
    grep -qw -- "$s" "$headers"/*.h || echo "$s"
done)
if [ -n "$undeclared" ]; then
    echo "FAIL: $lib exports bl_ names that no public header declares (add them to local: in"
    echo "      cmake/libbatchlab.map, or declare them):"
    sed 's/^/    /' <<<"$undeclared"
    exit 1
fi
if [ "$n_bl" -lt 100 ]; then
    echo "FAIL: $lib exports only $n_bl bl_ symbols; the version script lost the interface"
    exit 1
fi
echo "ok: $lib (soname $soname) exports $n_bl bl_ symbols and nothing else"
