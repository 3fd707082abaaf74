/* Atomic files and safetensors: round trips, failure paths that must leave
 * the old file intact and no temp files behind, every reader error naming the
 * path and the tensor, a robustness sweep over corrupted files, and a check
 * that Python reads what we write. */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "batchlab/io.h"
#include "test_util.h"

/* ---- helpers ---------------------------------------------------------------- */

static size_t read_file(const char *path, char *buf, size_t cap) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return (size_t)-1;
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

/* Number of entries in dir (excluding . and ..); also fails if any is a temp file. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (strstr(e->d_name, ".tmp.")) fail_msg("temp file left behind: %s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static void join(char *out, size_t cap, const char *dir, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

/* A file made of an 8-byte LE length, the given header text and data bytes. */
static void write_raw(const char *path, const char *header, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    uint64_t len = strlen(header);
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(len >> (8 * i));
    assert_int_equal(fwrite(le, 1, 8, fp), 8);
    assert_int_equal(fwrite(header, 1, len, fp), len);
    if (n) assert_int_equal(fwrite(data, 1, n, fp), n);
    fclose(fp);
}

/* Reads path expecting failure with code; checks the message names path and
 * every string in the NULL-terminated list. */
static void expect_read_error(const char *path, bl_status code, ...) {
    bl_safetensors st;
    bl_error err = {0};
    bl_status rc = bl_safetensors_read(&st, path, &err);
    if (rc != code)
        fail_msg("%s: got %s, want %s: %s", path, bl_status_name(rc), bl_status_name(code),
                 err.msg);
    assert_int_equal(err.code, code);
    if (!strstr(err.msg, path)) fail_msg("message does not name the path: %s", err.msg);
    va_list ap;
    va_start(ap, code);
    const char *want;
    while ((want = va_arg(ap, const char *)))
        if (!strstr(err.msg, want)) fail_msg("message lacks \"%s\": %s", want, err.msg);
    va_end(ap);
    assert_null(st.buf); /* left zeroed */
    assert_null(st.tensors);
    bl_safetensors_free(&st);
}

static bl_tensor make_tensor(const char *name, bl_dtype dt, int ndim, const int64_t *shape,
                             const void *data) {
    bl_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.dtype = dt;
    t.ndim = ndim;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        t.shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    t.data = data;
    t.nbytes = n * bl_dtype_size(dt);
    return t;
}

/* ---- atomic files ----------------------------------------------------------- */

static void atomic_write_creates_and_replaces(void **state) {
    const char *dir = tu_tmpdir();
    char path[512], buf[64];
    join(path, sizeof path, dir, "out.bin");
    bl_error err = {0};
    assert_int_equal(bl_atomic_write(path, "hello world", 11, &err), BL_OK);
    assert_int_equal(read_file(path, buf, sizeof buf), 11);
    assert_memory_equal(buf, "hello world", 11);
    assert_int_equal(count_entries(dir), 1);

    assert_int_equal(bl_atomic_write(path, "second", 6, &err), BL_OK);
    assert_int_equal(read_file(path, buf, sizeof buf), 6);
    assert_memory_equal(buf, "second", 6);
    assert_int_equal(count_entries(dir), 1);

    /* an ordinary file mode, not mkstemp's 0600 */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_mode & S_IRGRP);

    /* empty file, and the streaming interface */
    assert_int_equal(bl_atomic_write(path, NULL, 0, &err), BL_OK);
    assert_int_equal(read_file(path, buf, sizeof buf), 0);
    bl_atomic_file af;
    assert_int_equal(bl_atomic_open(&af, path, &err), BL_OK);
    fprintf(af.fp, "n=%d", 42);
    assert_int_equal(bl_atomic_commit(&af, &err), BL_OK);
    bl_atomic_abort(&af); /* after commit: a no-op */
    assert_int_equal(read_file(path, buf, sizeof buf), 4);
    assert_memory_equal(buf, "n=42", 4);
    assert_int_equal(count_entries(dir), 1);
    tu_rmtree(dir);
}

static void atomic_write_into_missing_directory_fails(void **state) {
    const char *dir = tu_tmpdir();
    char path[512];
    join(path, sizeof path, dir, "no/such/dir/out.bin");
    bl_error err = {0};
    assert_int_equal(bl_atomic_write(path, "x", 1, &err), BL_ERR_IO);
    assert_int_equal(err.code, BL_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "No such file or directory"));
    assert_false(tu_file_exists(path));
    assert_int_equal(count_entries(dir), 0);
    tu_rmtree(dir);
}

/* The rename fails when the destination is a non-empty directory: the commit
 * must report it, remove the temp file, and leave the destination alone. */
static void atomic_commit_failure_cleans_up(void **state) {
    const char *dir = tu_tmpdir();
    char path[512], inner[600];
    join(path, sizeof path, dir, "target");
    assert_int_equal(mkdir(path, 0755), 0);
    join(inner, sizeof inner, path, "keep");
    assert_int_equal(bl_atomic_write(inner, "k", 1, NULL), BL_OK);

    bl_error err = {0};
    bl_atomic_file af;
    assert_int_equal(bl_atomic_open(&af, path, &err), BL_OK);
    fputs("new data", af.fp);
    assert_int_equal(bl_atomic_commit(&af, &err), BL_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "renaming"));
    bl_atomic_abort(&af);
    assert_int_equal(count_entries(dir), 1); /* just the directory, no temp file */
    assert_true(tu_file_exists(inner));
    tu_rmtree(dir);
}

static void atomic_abort_keeps_previous_file(void **state) {
    const char *dir = tu_tmpdir();
    char path[512], buf[64];
    join(path, sizeof path, dir, "ckpt");
    bl_error err = {0};
    assert_int_equal(bl_atomic_write(path, "old", 3, &err), BL_OK);
    bl_atomic_file af;
    assert_int_equal(bl_atomic_open(&af, path, &err), BL_OK);
    assert_true(tu_file_exists(af.tmp));
    fputs("half of the new conte", af.fp);
    fflush(af.fp);
    bl_atomic_abort(&af);
    bl_atomic_abort(&af); /* twice is safe */
    assert_int_equal(read_file(path, buf, sizeof buf), 3);
    assert_memory_equal(buf, "old", 3);
    assert_int_equal(count_entries(dir), 1);

    /* committing an aborted file is an error, not a crash */
    assert_int_equal(bl_atomic_commit(&af, &err), BL_ERR_ARG);
    tu_rmtree(dir);
}

static void touch(const char *dir, const char *name, long age_s) {
    char path[4096];
    join(path, sizeof path, dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs("half a checkpoint", fp);
    fclose(fp);
    if (age_s) {
        struct timeval tv[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
        assert_int_equal(utimes(path, tv), 0);
    }
}

static int exists_in(const char *dir, const char *name) {
    char path[4096];
    join(path, sizeof path, dir, name);
    return tu_file_exists(path);
}

/* A save killed mid-write (kill -9) leaves "<path>.tmp.<pid>.XXXXXX" behind; the next save
 * of the same target removes it when that pid is dead, and nothing else. */
static void atomic_write_removes_orphans_of_its_target(void **state) {
    const char *dir = tu_tmpdir();
    char path[512], name[600];
    join(path, sizeof path, dir, "ck.safetensors");
    pid_t dead = fork();
    assert_true(dead >= 0);
    if (dead == 0) _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    struct {
        char name[128];
        int removed;
    } files[] = {
        {"", 1},                          /* ck.safetensors.tmp.<dead>.AbC123: its writer is gone */
        {"", 0},                          /* ...tmp.<parent>.XyZ789: a live writer */
        {"", 0},                          /* ...tmp.<us>.Qwe456: maybe another thread of ours */
        {"ck.safetensors.tmp.OLD123", 1}, /* an older version's name, untouched for 2 h */
        {"ck.safetensors.tmp.NEW123", 0}, /* the same, just written */
        {"", 0},                          /* other.bin.tmp.<dead>.AbC123: another target */
        {"", 0},                          /* ck.safetensors2.tmp.<dead>.AbC123: another target */
        {"", 0}, /* ck.safetensors.tmp.<dead>.AbC123.bak: not the writer's pattern */
        {"", 0}, /* ck.safetensors.tmp.<dead>.AbC12: nor this */
    };
    snprintf(files[0].name, sizeof files[0].name, "ck.safetensors.tmp.%d.AbC123", (int)dead);
    snprintf(files[1].name, sizeof files[1].name, "ck.safetensors.tmp.%d.XyZ789", (int)getppid());
    snprintf(files[2].name, sizeof files[2].name, "ck.safetensors.tmp.%d.Qwe456", (int)getpid());
    snprintf(files[5].name, sizeof files[5].name, "other.bin.tmp.%d.AbC123", (int)dead);
    snprintf(files[6].name, sizeof files[6].name, "ck.safetensors2.tmp.%d.AbC123", (int)dead);
    snprintf(files[7].name, sizeof files[7].name, "ck.safetensors.tmp.%d.AbC123.bak", (int)dead);
    snprintf(files[8].name, sizeof files[8].name, "ck.safetensors.tmp.%d.AbC12", (int)dead);
    int n = (int)(sizeof files / sizeof files[0]);
    for (int i = 0; i < n; i++)
        touch(dir, files[i].name, i == 3 ? 7200 : 0);
    bl_error err = {0};
    assert_int_equal(bl_atomic_write(path, "new", 3, &err), BL_OK);
    for (int i = 0; i < n; i++) {
        if (exists_in(dir, files[i].name) == files[i].removed)
            fail_msg("%s: %s", files[i].name, files[i].removed ? "left behind" : "removed");
    }
    /* The writer's own temporary file names its pid. */
    bl_atomic_file af;
    assert_int_equal(bl_atomic_open(&af, path, &err), BL_OK);
    snprintf(name, sizeof name, "%s.tmp.%d.", path, (int)getpid());
    assert_memory_equal(af.tmp, name, strlen(name));
    bl_atomic_abort(&af);
    tu_rmtree(dir);
}

/* ---- safetensors ------------------------------------------------------------ */

static void safetensors_round_trip(void **state) {
    const char *dir = tu_tmpdir();
    char path[512];
    join(path, sizeof path, dir, "model.safetensors");

    float w[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, -7.0f};
    double d[4] = {3.141592653589793, -1e300, 0.5, 2.0};
    int32_t i32[4] = {1, -2, 2147483647, -2147483647 - 1};
    int64_t i64[3] = {INT64_MAX, -5, 1LL << 40};
    uint8_t u8[5] = {0, 1, 127, 128, 255};
    float scalar = 42.0f;
    int64_t s_w[] = {2, 3}, s_d[] = {4}, s_i32[] = {2, 2}, s_i64[] = {3}, s_u8[] = {5},
            s_empty[] = {0, 3}, s_4d[] = {1, 2, 1, 3};
    bl_tensor ts[] = {
        make_tensor("0.weight", BL_DT_F32, 2, s_w, w),
        make_tensor("double", BL_DT_F64, 1, s_d, d),
        make_tensor("ints", BL_DT_I32, 2, s_i32, i32),
        make_tensor("longs", BL_DT_I64, 1, s_i64, i64),
        make_tensor("bytes", BL_DT_U8, 1, s_u8, u8),
        make_tensor("scalar", BL_DT_F32, 0, NULL, &scalar),
        make_tensor("empty", BL_DT_F32, 2, s_empty, NULL),
        make_tensor("four_d", BL_DT_F32, 4, s_4d, w),
    };
    int n = (int)(sizeof ts / sizeof ts[0]);
    bl_meta_kv meta[] = {{"step", "1234"}, {"optimizer", "adamw"}, {"note", "quote \" \\ é"}};
    bl_error err = {0};
    assert_int_equal(bl_safetensors_write(path, ts, n, meta, 3, &err), BL_OK);
    assert_int_equal(count_entries(dir), 1);

    bl_safetensors st;
    if (bl_safetensors_read(&st, path, &err) != BL_OK) fail_msg("%s", err.msg);
    assert_int_equal(st.n, n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | st.buf[i];
    assert_int_equal(hlen % 8, 0); /* padded so the data is aligned */
    for (int i = 0; i < n; i++) {
        const bl_tensor *t = bl_safetensors_find(&st, ts[i].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, ts[i].dtype);
        assert_int_equal(t->ndim, ts[i].ndim);
        for (int k = 0; k < t->ndim; k++)
            assert_int_equal(t->shape[k], ts[i].shape[k]);
        assert_int_equal(t->nbytes, ts[i].nbytes);
        if (t->nbytes) assert_memory_equal(t->data, ts[i].data, t->nbytes);
    }
    assert_int_equal(st.tensors[0].dtype, BL_DT_F32); /* order kept */
    assert_string_equal(st.tensors[0].name, "0.weight");
    assert_null(bl_safetensors_find(&st, "missing"));
    assert_int_equal(st.n_meta, 3);
    assert_string_equal(bl_safetensors_meta(&st, "step"), "1234");
    assert_string_equal(bl_safetensors_meta(&st, "optimizer"), "adamw");
    assert_string_equal(bl_safetensors_meta(&st, "note"), "quote \" \\ é");
    assert_null(bl_safetensors_meta(&st, "missing"));
    bl_safetensors_free(&st);
    bl_safetensors_free(&st); /* zeroed by the first call */

    /* no tensors, no metadata */
    assert_int_equal(bl_safetensors_write(path, NULL, 0, NULL, 0, &err), BL_OK);
    assert_int_equal(bl_safetensors_read(&st, path, &err), BL_OK);
    assert_int_equal(st.n, 0);
    assert_int_equal(st.n_meta, 0);
    bl_safetensors_free(&st);

    bl_safetensors zero;
    memset(&zero, 0, sizeof zero);
    bl_safetensors_free(&zero);
    tu_rmtree(dir);
}

static void safetensors_write_rejects_bad_tensors(void **state) {
    const char *dir = tu_tmpdir();
    char path[512];
    join(path, sizeof path, dir, "bad.safetensors");
    float w[4] = {0};
    int64_t shape[] = {2, 3};
    bl_tensor t = make_tensor("w", BL_DT_F32, 2, shape, w);
    t.nbytes = 16; /* shape says 24 */
    bl_error err = {0};
    assert_int_equal(bl_safetensors_write(path, &t, 1, NULL, 0, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "'w'"));
    bl_tensor two[2] = {make_tensor("a", BL_DT_U8, 1, shape, w),
                        make_tensor("a", BL_DT_U8, 1, shape, w)};
    assert_int_equal(bl_safetensors_write(path, two, 2, NULL, 0, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "twice"));
    assert_int_equal(count_entries(dir), 0); /* nothing written */
    tu_rmtree(dir);
}

static void safetensors_readable_by_python(void **state) {
    if (!tu_file_exists("/usr/bin/python3")) skip();
    const char *dir = tu_tmpdir();
    char path[512], cmd[4096], out[4096];
    join(path, sizeof path, dir, "py.safetensors");
    float w[4] = {1.5f, -2.0f, 3.25f, 1e-3f};
    int64_t l[3] = {7, -8, 1LL << 40};
    int64_t s_w[] = {2, 2}, s_l[] = {3};
    bl_tensor ts[] = {make_tensor("layer.w", BL_DT_F32, 2, s_w, w),
                      make_tensor("ids", BL_DT_I64, 1, s_l, l)};
    bl_meta_kv meta[] = {{"step", "17"}};
    bl_error err = {0};
    assert_int_equal(bl_safetensors_write(path, ts, 2, meta, 1, &err), BL_OK);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c '\n"
             "import json, struct, sys\n"
             "b = open(sys.argv[1], \"rb\").read()\n"
             "(n,) = struct.unpack(\"<Q\", b[:8])\n"
             "h = json.loads(b[8:8 + n].decode())\n"
             "data = b[8 + n:]\n"
             "assert h[\"__metadata__\"] == {\"step\": \"17\"}, h\n"
             "w = h[\"layer.w\"]\n"
             "assert w[\"dtype\"] == \"F32\" and w[\"shape\"] == [2, 2], w\n"
             "s, e = w[\"data_offsets\"]\n"
             "assert struct.unpack(\"<4f\", data[s:e]) == (1.5, -2.0, 3.25, struct.unpack(\"<f\", "
             "struct.pack(\"<f\", 1e-3))[0])\n"
             "i = h[\"ids\"]\n"
             "s, e = i[\"data_offsets\"]\n"
             "assert i[\"dtype\"] == \"I64\" and struct.unpack(\"<3q\", data[s:e]) == (7, -8, "
             "2**40)\n"
             "assert max(t[\"data_offsets\"][1] for k, t in h.items() if k != \"__metadata__\") == "
             "len(data)\n"
             "print(\"PYOK\")\n"
             "' '%s'",
             path);
    int rc = tu_run(cmd, out, sizeof out);
    if (rc != 0 || !strstr(out, "PYOK")) fail_msg("python check failed (%d): %s", rc, out);
    tu_rmtree(dir);
}

/* ---- reader errors ---------------------------------------------------------- */

static void safetensors_read_errors(void **state) {
    const char *dir = tu_tmpdir();
    char path[512];
    uint8_t data[64] = {0};

    join(path, sizeof path, dir, "missing.safetensors");
    expect_read_error(path, BL_ERR_IO, (char *)NULL);

    join(path, sizeof path, dir, "five.safetensors");
    assert_int_equal(bl_atomic_write(path, "\x01\x02\x03\x04\x05", 5, NULL), BL_OK);
    expect_read_error(path, BL_ERR_FORMAT, "5 bytes", (char *)NULL);

    join(path, sizeof path, dir, "long_header.safetensors");
    uint8_t big[10] = {0xe8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}'}; /* claims 1000 bytes */
    assert_int_equal(bl_atomic_write(path, big, sizeof big, NULL), BL_OK);
    expect_read_error(path, BL_ERR_FORMAT, "header length 1000", (char *)NULL);

    join(path, sizeof path, dir, "json.safetensors");
    write_raw(path, "{\"w\": {\"dtype\": \"F32\", ", data, 0);
    expect_read_error(path, BL_ERR_FORMAT, "JSON", (char *)NULL);

    join(path, sizeof path, dir, "dtype.safetensors");
    write_raw(path, "{\"w\":{\"dtype\":\"F16X\",\"shape\":[1],\"data_offsets\":[0,2]}}", data, 2);
    expect_read_error(path, BL_ERR_FORMAT, "'w'", "F16X", (char *)NULL);

    join(path, sizeof path, dir, "bounds.safetensors");
    write_raw(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[100,116]}}", data,
              16);
    expect_read_error(path, BL_ERR_FORMAT, "'w'", "[100, 116]", (char *)NULL);

    join(path, sizeof path, dir, "mismatch.safetensors");
    write_raw(path, "{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,12]}}",
              data, 12);
    expect_read_error(path, BL_ERR_FORMAT,
                      "tensor '0.weight': data_offsets [0, 12] do not match shape [4, 4] of F32 "
                      "(64 bytes)",
                      (char *)NULL);

    /* a valid file cut short */
    join(path, sizeof path, dir, "truncated.safetensors");
    float w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t s2[] = {2}, s6[] = {6};
    bl_tensor ts[] = {make_tensor("a", BL_DT_F32, 1, s2, w),
                      make_tensor("b", BL_DT_F32, 1, s6, w + 2)};
    assert_int_equal(bl_safetensors_write(path, ts, 2, NULL, 0, NULL), BL_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size - 4), 0);
    expect_read_error(path, BL_ERR_FORMAT, "'b'", "truncated", (char *)NULL);

    join(path, sizeof path, dir, "overlap.safetensors");
    write_raw(path,
              "{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}",
              data, 12);
    expect_read_error(path, BL_ERR_FORMAT, "'b'", "overlap", "'a'", (char *)NULL);

    join(path, sizeof path, dir, "gap.safetensors");
    write_raw(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", data, 8);
    expect_read_error(path, BL_ERR_FORMAT, "'a'", "gap", (char *)NULL);

    join(path, sizeof path, dir, "tail.safetensors");
    write_raw(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", data, 9);
    expect_read_error(path, BL_ERR_FORMAT, "9 bytes", (char *)NULL);

    join(path, sizeof path, dir, "ndim.safetensors");
    write_raw(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", data,
              1);
    expect_read_error(path, BL_ERR_FORMAT, "'a'", "5 dimensions", (char *)NULL);

    join(path, sizeof path, dir, "negative.safetensors");
    write_raw(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", data, 1);
    expect_read_error(path, BL_ERR_FORMAT, "'a'", "shape", (char *)NULL);

    join(path, sizeof path, dir, "fraction.safetensors");
    write_raw(path, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.5]}}", data, 1);
    expect_read_error(path, BL_ERR_FORMAT, "'a'", "data_offsets", (char *)NULL);

    join(path, sizeof path, dir, "missing_field.safetensors");
    write_raw(path, "{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", data, 1);
    expect_read_error(path, BL_ERR_FORMAT, "'a'", "shape", (char *)NULL);

    join(path, sizeof path, dir, "dup.safetensors");
    write_raw(path,
              "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
              "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
              data, 2);
    expect_read_error(path, BL_ERR_FORMAT, "'a'", "twice", (char *)NULL);

    join(path, sizeof path, dir, "meta.safetensors");
    write_raw(path, "{\"__metadata__\":{\"step\":12}}", data, 0);
    expect_read_error(path, BL_ERR_FORMAT, "__metadata__", "'step'", (char *)NULL);

    join(path, sizeof path, dir, "array.safetensors");
    write_raw(path, "[1, 2]  ", data, 0);
    expect_read_error(path, BL_ERR_FORMAT, "not an object", (char *)NULL);

    join(path, sizeof path, dir, "trailing.safetensors");
    write_raw(path, "{}  x", data, 0);
    expect_read_error(path, BL_ERR_FORMAT, "after the JSON", (char *)NULL);

    /* a directory is not a file */
    expect_read_error(dir, BL_ERR_IO, (char *)NULL);
    tu_rmtree(dir);
}

/* Every truncation and every single-byte change of a valid file either reads
 * cleanly or fails with an error; never a crash or an out-of-bounds read
 * (run under ASan to make the second half of that claim strict). */
static void safetensors_survives_corruption(void **state) {
    const char *dir = tu_tmpdir();
    char path[512], bad[600];
    join(path, sizeof path, dir, "good.safetensors");
    join(bad, sizeof bad, dir, "bad.safetensors");
    float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t s23[] = {2, 3}, s2[] = {2};
    bl_tensor ts[] = {make_tensor("w", BL_DT_F32, 2, s23, w),
                      make_tensor("b", BL_DT_F32, 1, s2, w)};
    bl_meta_kv meta[] = {{"k", "v"}};
    assert_int_equal(bl_safetensors_write(path, ts, 2, meta, 1, NULL), BL_OK);
    static char good[4096], buf[4096];
    size_t n = read_file(path, good, sizeof good);
    assert_true(n > 8 && n < sizeof good);

    bl_safetensors st;
    bl_error err;
    for (size_t len = 0; len < n; len++) {
        assert_int_equal(bl_atomic_write(bad, good, len, NULL), BL_OK);
        assert_int_not_equal(bl_safetensors_read(&st, bad, &err), BL_OK);
        assert_non_null(strstr(err.msg, bad));
    }
    const uint8_t flips[] = {0x01, 0x80, 0xff};
    for (size_t i = 0; i < n; i++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(buf, good, n);
            buf[i] ^= (char)flips[f];
            assert_int_equal(bl_atomic_write(bad, buf, n, NULL), BL_OK);
            memset(&err, 0, sizeof err);
            bl_status rc = bl_safetensors_read(&st, bad, &err);
            if (rc == BL_OK) {
                for (int k = 0; k < st.n; k++)
                    assert_true((const uint8_t *)st.tensors[k].data + st.tensors[k].nbytes <=
                                st.buf + st.size);
                bl_safetensors_free(&st);
            } else {
                assert_true(err.msg[0] != '\0');
            }
        }
    }
    tu_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(atomic_write_creates_and_replaces),
        cmocka_unit_test(atomic_write_into_missing_directory_fails),
        cmocka_unit_test(atomic_commit_failure_cleans_up),
        cmocka_unit_test(atomic_abort_keeps_previous_file),
        cmocka_unit_test(atomic_write_removes_orphans_of_its_target),
        cmocka_unit_test(safetensors_round_trip),
        cmocka_unit_test(safetensors_write_rejects_bad_tensors),
        cmocka_unit_test(safetensors_readable_by_python),
        cmocka_unit_test(safetensors_read_errors),
        cmocka_unit_test(safetensors_survives_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
