#!/usr/bin/env bash
# The public headers (include/batchlab/*.h) compile on their own, with only
# the include directory on the path (nothing from src/), as:
#   - C99, pedantic, warnings as errors, each header alone and all together;
#   - the same after <complex.h>, which #defines I (OpenBLAS's cblas.h includes it);
#   - C++11 with warnings as errors; a C++ program calling the library then links
#     against libbatchlab.so and runs, which proves the extern "C" blocks.
#   headers.sh INCLUDE_DIR CC CXX LIBBATCHLAB_SO
set -euo pipefail
inc=$1 cc=$2 cxx=$3 lib=$4
T=$(mktemp -d /tmp/blheaders.XXXXXX)
trap 'rm -rf "$T"' EXIT
cflags=(-std=c99 -pedantic-errors -Wall -Wextra -Werror -I"$inc")
fail=0
check() { # NAME COMMAND...
    local name=$1
    shift
    if "$@" 2>"$T/err"; then
        echo "ok   $name"
    else
        echo "FAIL $name:"
        sed 's/^/    /' "$T/err" | head -20
        fail=1
    fi
}

headers=()
for h in "$inc"/batchlab/*.h; do headers+=("batchlab/$(basename "$h")"); done
if grep -nE '#include +"' "$inc"/batchlab/*.h | grep -v '#include "batchlab/'; then
    echo "FAIL: a public header includes something outside include/batchlab"
    fail=1
fi
for h in "${headers[@]}"; do
    printf '#include <%s>\n' "$h" >"$T/one.c"
    check "C99 $h alone" "$cc" "${cflags[@]}" -fsyntax-only "$T/one.c"
done
{ for h in "${headers[@]}"; do printf '#include <%s>\n' "$h"; done; } >"$T/all.h"
printf '#include "all.h"\nint main(void) { return bl_status_name(BL_OK)[0] == 0; }\n' >"$T/all.c"
check "C99 all headers" "$cc" "${cflags[@]}" -fsyntax-only "$T/all.c"
printf '#include <complex.h>\n#include "all.h"\nint main(void) { return I == 0; }\n' >"$T/cplx.c"
check "C99 all headers after <complex.h>" "$cc" "${cflags[@]}" -fsyntax-only "$T/cplx.c"

if ! command -v "$cxx" >/dev/null; then
    echo "FAIL: no C++ compiler ($cxx); install g++ (part of build-essential)"
    exit 1
fi
cat >"$T/all.cpp" <<'CPP'
#include "all.h"
#include <cstdio>
int main() {
    bl_rng r;
    bl_rng_seed(&r, 1);
    bl_error err = {};
    bl_cpu_isa isa;
    if (bl_cpu_isa_parse("baseline", &isa, &err) != BL_OK) return 1;
    std::printf("%s %s %u\n", bl_status_name(BL_ERR_IO), bl_cpu_isa_name(isa), bl_rng_below(&r, 10));
    return 0;
}
CPP
check "C++11 all headers, linked with libbatchlab.so" \
    "$cxx" -std=c++11 -Wall -Wextra -Werror -I"$inc" -I"$T" "$T/all.cpp" -o "$T/cxx" "$lib"
if [ $fail -eq 0 ]; then
    check "C++11 program runs" env LD_LIBRARY_PATH="$(dirname "$lib")" "$T/cxx"
fi
exit $fail
