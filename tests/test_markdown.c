/* The Markdown subset used by reports becomes the expected HTML. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "batchlab/markdown.h"

static void converts_the_report_subset(void **state) {
    const char *md = "# Title <x>\n\n"
                     "**Use batch 64** with `lr 0.1` & see [the table](results.csv).\n"
                     "second line\n\n"
                     "- one\n- **two**\n\n"
                     "| B | steps |\n|---|---|\n| 16 | 4000 |\n| 32 | 2100 |\n\n"
                     "![steps](plots/steps.png)\n\n"
                     "```\nbatchlab sweep --out a<b\n```\n";
    char *html = bl_markdown_to_html(md, "T & t", 1);
    assert_non_null(html);
    assert_non_null(strstr(html, "<title>T &amp; t</title>"));
    assert_non_null(strstr(html, "<h1>Title &lt;x&gt;</h1>"));
    assert_non_null(strstr(html, "<p><strong>Use batch 64</strong> with <code>lr 0.1</code> &amp; "
                                 "see <a href=\"results.csv\">the table</a>.\nsecond line</p>"));
    assert_non_null(strstr(html, "<ul>\n<li>one</li>\n<li><strong>two</strong></li>\n</ul>"));
    assert_non_null(strstr(html, "<thead>\n<tr><th>B</th><th>steps</th></tr>\n</thead><tbody>\n"
                                 "<tr><td>16</td><td>4000</td></tr>"));
    assert_non_null(strstr(html, "<img src=\"plots/steps.svg\" alt=\"steps\">"));
    assert_non_null(strstr(html, "<pre><code>batchlab sweep --out a&lt;b\n</code></pre>"));
    assert_non_null(strstr(html, "</body></html>"));
    free(html);
    html = bl_markdown_to_html("![p](a.png)\n", "x", 0);
    assert_non_null(strstr(html, "src=\"a.png\""));
    free(html);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(converts_the_report_subset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
