/* Building JSON with cJSON when any allocation may fail. cJSON_Add*ToObject
 * drops (and frees) a value it cannot attach, so a tree built under memory
 * pressure comes out incomplete rather than absent: a writer takes
 * bl_alloc_failures() before building and passes it here, and an incomplete
 * tree is never written. cJSON_AddItemToArray/Object with a freshly created
 * item leak that item when they fail; these wrappers free it. */
#ifndef BL_IO_JSON_H
#define BL_IO_JSON_H

#include <cjson/cJSON.h>
#include "batchlab/error.h"

/* bl_json_write, unless root is NULL or an allocation on this thread failed since mark:
 * then BL_ERR_NOMEM names path and nothing is written. */
bl_status bl_json_write_built(const char *path, const cJSON *root, unsigned mark, bl_error *err);
/* Appends item to array (or frees item when either is NULL or it cannot be added). */
void bl_json_append(cJSON *array, cJSON *item);
/* object[key] = item, or frees item. */
void bl_json_attach(cJSON *object, const char *key, cJSON *item);

#endif
