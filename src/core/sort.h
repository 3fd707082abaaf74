/* Ordering doubles for medians and percentiles (qsort's comparator, shared). */
#ifndef BL_CORE_SORT_H
#define BL_CORE_SORT_H

/* qsort comparator: ascending; NaNs compare equal to everything. */
static inline int bl_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
