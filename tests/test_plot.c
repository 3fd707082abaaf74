/* Plots through gnuplot: both images appear, are real PNG/SVG, are written
 * atomically (no temporary files left behind, an old image survives a failed
 * redraw), and odd titles and paths need no care from the caller. Skipped
 * when gnuplot is not installed. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "batchlab/plot.h"
#include "test_util.h"

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static void draws_png_and_svg(void **state) {
    if (!bl_plot_available()) skip();
    const char *dir = tu_tmpdir();
    char sub[4096], base[4200], png[4300], svg[4300];
    snprintf(sub, sizeof sub, "%s/with space's", dir); /* a path gnuplot must see quoted */
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(base, sizeof base, "%s/steps", sub);
    double x[] = {16, 32, 64, 128, -1}, y[] = {4000, 2100, 1200, 800, 5};
    double fx[50], fy[50];
    for (int i = 0; i < 50; i++)
        fx[i] = 8 * pow(2, i / 7.0), fy[i] = 500 * (1 + 128 / fx[i]);
    const char *labels[] = {"B=16", "B=32", "B=\"64\"", "B=128", "bad"};
    double lo[] = {3500, 2000, NAN, 700, 1}, hi[] = {4500, 2200, 1300, INFINITY, 9};
    bl_plot_series s[] = {
        {.title = "measured (it's \"quoted\")",
         .x = x,
         .y = y,
         .n = 5,
         .style = BL_PLOT_POINTS,
         .labels = labels},
        {.title = "fit", .x = fx, .y = fy, .n = 50, .style = BL_PLOT_LINES, .dashed = 1},
        {.title = "with bars", .x = x, .y = y, .n = 5, .ylo = lo, .yhi = hi},
    };
    bl_plot p = {.title = "Steps_to target: 'a' & b",
                 .xlabel = "batch size",
                 .ylabel = "steps",
                 .logx = 1,
                 .logx2 = 1,
                 .logy = 1,
                 .series = s,
                 .n_series = 3};
    bl_error err = {0};
    bl_status st = bl_plot_write(&p, base, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(st, BL_OK);
    snprintf(png, sizeof png, "%s.png", base);
    snprintf(svg, sizeof svg, "%s.svg", base);
    assert_true(file_size(png) > 1000);
    assert_true(file_size(svg) > 1000);
    FILE *f = fopen(png, "rb");
    unsigned char sig[8] = {0};
    assert_int_equal(fread(sig, 1, 8, f), 8);
    fclose(f);
    assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
    char buf[8192] = {0};
    f = fopen(svg, "r");
    assert_true(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    assert_non_null(strstr(buf, "<svg"));
    assert_int_equal(count_entries(sub), 2); /* no script or temporary images left */

    /* A plot with nothing drawable fails and leaves the previous images alone. */
    long before = file_size(png);
    double bad[] = {-1, 0};
    bl_plot_series bs = {.title = "x", .x = bad, .y = bad, .n = 2};
    bl_plot q = {.title = "empty", .logx = 1, .series = &bs, .n_series = 1};
    assert_int_equal(bl_plot_write(&q, base, &err), BL_ERR_ARG);
    assert_non_null(strstr(err.msg, "no point"));
    assert_int_equal(file_size(png), before);
    assert_int_equal(count_entries(sub), 2);

    /* A folder that does not exist is an error naming it, not a crash. */
    char missing[4300];
    snprintf(missing, sizeof missing, "%s/nope/plot", dir);
    assert_int_equal(bl_plot_write(&p, missing, &err), BL_ERR_IO);
    assert_non_null(strstr(err.msg, "nope"));
    tu_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(draws_png_and_svg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
