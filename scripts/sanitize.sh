#!/usr/bin/env bash
# The sanitizer job (issue 16). Builds with clang and runs the tests under
#   asan: AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer) in
#         ./build-asan: every test at the baseline ISA level (name@baseline, and
#         the tests registered without a level: test_kernels covers every level
#         itself; fault injection, fuzz corpus replays);
#   tsan: ThreadSanitizer in ./build-tsan: the tests that run threads of ours
#         side by side: serving (HTTP threads, batcher, load generator), the
#         BLAS thread count, the prefetching loader, the kernels' thread pools
#         (several thread counts; one pool per context, and after fork: test_pool),
#         and the trainer, --batch auto, find and tune through the CLI. Left
#         out as slow under TSan (30-50 s each) for no more threading than these
#         cover: test_noise, test_find, cli_sweep, cli_errors, cli_data; and
#         test_mpi, which leaves ours single-threaded.
# Exits nonzero when a test fails or any sanitizer reports, in a test or in any
# process a test starts (batchlab run by the shell tests, mpirun's ranks): every
# report goes to a file (log_path), so a child's report cannot hide behind an
# expected exit status. Suppressions (tests/sanitizers/) name third-party code
# only; a report in batchlab's own code is a defect to fix, never to suppress.
#
# Usage: scripts/sanitize.sh [asan|tsan|all]   (default all)
#   JOBS=N   build and test parallelism (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
part=${1:-all}
jobs=${JOBS:-2}
supp=$root/tests/sanitizers
case $part in asan | tsan | all) ;; *) echo "sanitize.sh: expected asan, tsan or all, got '$part'" >&2; exit 2 ;; esac
command -v clang >/dev/null || { echo "sanitize.sh: needs clang (scripts/deps.sh installs it)" >&2; exit 2; }
reports=$(mktemp -d /tmp/batchlab-sanitize.XXXXXX)
trap 'rm -rf "$reports"' EXIT
failed=0

# configure DIR SANITIZER_FLAGS: a Debug build at -O1 with the sanitizer everywhere.
# libbatchlab.so links the sanitizer runtime as a shared library (-shared-libsan):
# the executables carry the static one, and the .so is built with -Wl,--no-undefined.
configure() {
    local dir=$1 san=$2
    CC=clang cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBL_CUDA=OFF \
        -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DCMAKE_C_FLAGS="$san -fno-omit-frame-pointer" \
        -DCMAKE_EXE_LINKER_FLAGS="$san" -DCMAKE_SHARED_LINKER_FLAGS="$san -shared-libsan" \
        >"$reports/configure.log" 2>&1 || { cat "$reports/configure.log" >&2; exit 1; }
}

# build DIR TARGETS...: ninja, quiet unless it fails.
build() {
    local dir=$1
    shift
    ninja -C "$dir" -j "$jobs" "$@" >"$reports/build.log" 2>&1 || {
        tail -n 60 "$reports/build.log" >&2
        exit 1
    }
}

# run_ctest DIR ARGS...: ctest, counting a failure without stopping the job.
run_ctest() {
    local dir=$1
    shift
    ctest --test-dir "$dir" --output-on-failure -j "$jobs" "$@" || failed=1
}

# check_reports NAME: every report written under $reports fails the job, and is shown
# and kept in build-NAME/sanitizer-reports/ (emptied at the start of each part).
check_reports() {
    local name=$1 files
    files=$(find "$reports" -type f -name 'report.*' -size +0 | sort)
    if [ -n "$files" ]; then
        echo "sanitize $name: $(wc -l <<<"$files") process(es) reported:"
        for f in $files; do
            sed -n '1,60p' "$f" | sed 's/^/    /'
            echo
        done
        failed=1
        mkdir -p "$root/build-$name/sanitizer-reports"
        mv $files "$root/build-$name/sanitizer-reports/"
        echo "sanitize $name: reports kept in build-$name/sanitizer-reports/"
    fi
}

if [ "$part" = asan ] || [ "$part" = all ]; then
    t0=$(date +%s)
    configure build-asan "-fsanitize=address,undefined -fno-sanitize-recover=undefined"
    rm -rf build-asan/sanitizer-reports
    build build-asan
    t1=$(date +%s)
    # allocator_may_return_null: a failed allocation returns NULL, as in production,
    # so the out-of-memory paths (and fault injection) run instead of ASan aborting.
    export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:allocator_may_return_null=1:log_path=$reports/report"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/report"
    export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
    # Not here: test_memory and cli_oom skip themselves (ASan's shadow memory is not
    # the model's, and its runtime cannot start under ulimit -v); headers and
    # install_example link the sanitized library into programs built without the
    # sanitizer, which cannot load it (scripts/test.sh runs them). test_mpi runs on
    # its own below.
    # net_failures is left out too: it kills and cuts off ranks on purpose, so Open MPI's
    # components (libpmix, mca_coll_*) leave allocations that no frame of theirs names
    # in the fast unwinder's stacks; test_mpi below covers our distributed code.
    run_ctest build-asan -R '@baseline$|^[^@]+$' \
        -E '^(headers|install_example|test_mpi@baseline|net_failures)$'
    # Open MPI unloads its components (dlclose) before LeakSanitizer looks, so the
    # fast unwinder's one-frame stacks of their leaks name no module and match no
    # suppression; the slow unwinder finds the libmpi/libopen-pal frames beneath.
    # It makes every malloc slower, hence this test alone.
    if ctest --test-dir build-asan -N -R '^test_mpi@baseline$' | grep -q 'Total Tests: 1'; then
        LSAN_OPTIONS="$LSAN_OPTIONS:fast_unwind_on_malloc=0" run_ctest build-asan -R '^test_mpi@baseline$'
    fi
    check_reports asan
    t2=$(date +%s)
    echo "sanitize asan: build $((t1 - t0)) s, tests $((t2 - t1)) s"
    unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
fi

if [ "$part" = tsan ] || [ "$part" = all ]; then
    t0=$(date +%s)
    configure build-tsan "-fsanitize=thread"
    rm -rf build-tsan/sanitizer-reports
    tsan_tests=(test_serve_batcher test_serve_http test_serve_units test_blas_threads
        test_data_loader test_train test_replay test_tune test_pool)
    build build-tsan batchlab_cli test_kernels "${tsan_tests[@]}"
    t1=$(date +%s)
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp:log_path=$reports/report"
    pattern=$(printf '%s|' "${tsan_tests[@]}" cli_serve cli_train)
    run_ctest build-tsan -R "^(test_kernels|(${pattern%|})@baseline)\$"
    check_reports tsan
    t2=$(date +%s)
    echo "sanitize tsan: build $((t1 - t0)) s, tests $((t2 - t1)) s"
fi

if [ $failed -ne 0 ]; then
    echo "sanitize: FAILED"
    exit 1
fi
echo "sanitize: passed"
