/* `batchlab load`'s report of one run: the sweep point (percentiles in ms), its
 * JSON object and its text lines. */
#ifndef BL_CLI_LOAD_REPORT_H
#define BL_CLI_LOAD_REPORT_H

#include <cjson/cJSON.h>
#include "batchlab/serve.h"

/* The run's throughput and latency percentiles (ms) as a sweep point. */
void load_to_point(const bl_load_result *r, bl_load_sweep_point *p);
/* The run as JSON (NULL when out of memory); per_request samples per request. */
cJSON *load_result_json(const bl_load_result *r, const bl_load_sweep_point *p, int per_request);
/* The run as text on stdout. */
void load_print_result(const bl_load_result *r, const bl_load_sweep_point *p, int per_request);

#endif
