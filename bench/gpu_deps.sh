#!/usr/bin/env bash
# Build dependencies for a machine that has no network (the GPU device machine),
# carried there as Debian packages and unpacked into a private prefix.
#
#   bench/gpu_deps.sh fetch [DIR]            here: download the .deb files into DIR
#                                            (default runs/gpu-debs, which git ignores)
#   bench/gpu_deps.sh install DIR PREFIX     there: unpack them into PREFIX and print the
#                                            environment to use them (eval its output)
#
# The packages are this machine's (Debian 12): the development files of OpenBLAS,
# cJSON, libmicrohttpd, libcurl, cmocka and zlib, pkg-config itself (pkgconf), and
# the run-time libraries they need. On the other machine, `install` keeps a run-time library only where that
# system has no library of the same soname (ldconfig -p): the headers come from the
# prefix, the system's own libraries win. GPU_DEPS_PRUNE=0 keeps every library.
# Nothing is installed system-wide; unpacking into / could break the system.
# The device tool carries DIR when the call names it: carry ["runs/gpu-debs"].
set -euo pipefail

# Development packages (headers, .pc files, the libX.so links) and the run-time
# libraries behind them, down to what a minimal Ubuntu or Debian may lack.
DEV="libopenblas-pthread-dev libcjson-dev libmicrohttpd-dev libcurl4-openssl-dev
     libcmocka-dev zlib1g-dev pkgconf pkgconf-bin libpkgconf3"
RUNTIME="libopenblas0-pthread libgfortran5 libquadmath0 libcjson1 libmicrohttpd12 libcurl4
     libcmocka0 zlib1g libgnutls30 libhogweed6 libnettle8 libgmp10 libp11-kit0 libffi8
     libtasn1-6 libidn2-0 libunistring2 libbrotli1 libgssapi-krb5-2 libkrb5-3 libk5crypto3
     libkrb5support0 libcom-err2 libkeyutils1 libldap-2.5-0 libsasl2-2 libsasl2-modules-db
     libdb5.3 libnghttp2-14 libpsl5 librtmp1 libssh2-1 libssl3 libzstd1"

fetch() {
    local dir=${1:-runs/gpu-debs}
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    (cd "$dir" && apt-get download $DEV $RUNTIME)
    echo "gpu_deps: $(find "$dir" -name '*.deb' | wc -l) packages, $(du -sh "$dir" | cut -f1) in $dir"
}

# soname FILE: the DT_SONAME of a shared library, or nothing.
soname() {
    readelf -d "$1" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p'
}

# system_lib SONAME: the path of the system's x86-64 library with that soname, or nothing.
system_lib() {
    ldconfig -p | awk -v s="$1" '!p && $1 == s && /x86-64/ { p = $NF } END { print p }'
}

install_debs() {
    local dir=$1 prefix=$2 f so sys l
    shopt -s nullglob
    local debs=("$dir"/*.deb)
    [ ${#debs[@]} -gt 0 ] || { echo "gpu_deps: no .deb files in $dir" >&2; return 1; }
    mkdir -p "$prefix"
    for f in "${debs[@]}"; do dpkg-deb -x "$f" "$prefix"; done
    rm -rf "${prefix:?}/usr/share"
    # Keep the system's libraries where it has them (same soname).
    if [ "${GPU_DEPS_PRUNE:-1}" = 1 ] && command -v readelf >/dev/null; then
        while IFS= read -r f; do
            so=$(soname "$f")
            [ -n "$so" ] || continue
            sys=$(system_lib "$so")
            [ -n "$sys" ] || continue
            # Links to it: a development link (libX.so) now points at the
            # system's library; the others go with it.
            for l in "$(dirname "$f")"/*; do
                if [ ! -L "$l" ] || [ "$(readlink -f "$l")" != "$(readlink -f "$f")" ]; then
                    continue
                fi
                if [[ $l == *.so ]]; then ln -sf "$sys" "$l"; else rm -f "$l"; fi
            done
            rm -f "$f"
            echo "gpu_deps: $so: the system's $sys" >&2
        done < <(find "$prefix" -name '*.so*' -type f)
        find "$prefix" -xtype l -delete # links into what is gone (static archives stay)
    fi
    # The soname links (libfoo.so.1 -> libfoo.so.1.2.3) that ldconfig would make.
    local libdirs=() pcdirs=() d
    while IFS= read -r d; do libdirs+=("$d"); done < <(find "$prefix" -name 'lib*.so*' -printf '%h\n' | sort -u)
    for d in "${libdirs[@]}"; do ldconfig -n "$d" 2>/dev/null || true; done
    # .pc files: paths into the prefix; Requires.private dropped (no static link here,
    # and e.g. gnutls.pc is not carried).
    while IFS= read -r f; do
        sed -i -E -e "s#(^|[=[:space:]]|-I|-L)/usr#\1$prefix/usr#g" -e '/^Requires.private:/d' "$f"
        pcdirs+=("$(dirname "$f")")
    done < <(find "$prefix" -name '*.pc')
    local pc lib
    pc=$(printf '%s\n' "${pcdirs[@]}" | sort -u | paste -sd:)
    lib=$(printf '%s\n' "${libdirs[@]}" | paste -sd:)
    if ! command -v pkg-config >/dev/null && [ -x "$prefix/usr/bin/pkg-config" ]; then
        echo "export PATH=$prefix/usr/bin:\$PATH"
    fi
    echo "export PKG_CONFIG_PATH=$pc\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}"
    echo "export LD_LIBRARY_PATH=$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
    echo "export CMAKE_PREFIX_PATH=$prefix/usr\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}"
    echo "export GPU_DEPS_LIBDIRS=$lib"
}

case ${1:-} in
fetch) fetch "${2:-}" ;;
install) install_debs "${2:?DIR}" "${3:?PREFIX}" ;;
*)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
