/* Reports are written once, as Markdown (readable as plain text and on any
 * code host), and turned into a standalone HTML page by this converter, so the
 * two never disagree.
 *
 * The subset: "#"/"##"/"###" headings, paragraphs, "- " lists, pipe tables
 * (header row, then a |---| row), fenced ``` code blocks, an image alone on its
 * line as ![alt](src), and inline **bold**, `code` and [text](url). Text is
 * HTML-escaped; anything else passes through as text. */
#ifndef BATCHLAB_MARKDOWN_H
#define BATCHLAB_MARKDOWN_H

#ifdef __cplusplus
extern "C" {
#endif

/* A complete HTML page (with a small stylesheet) for md, or NULL when out of memory;
 * the caller frees it. svg_images=1 points images ending in .png at the .svg beside
 * them (vector plots in the browser, PNGs in the Markdown). */
char *bl_markdown_to_html(const char *md, const char *title, int svg_images);

#ifdef __cplusplus
}
#endif

#endif
