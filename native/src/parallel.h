/* Splitting a loop over rows across the configured number of threads (pthreads; one thread on Windows). */
#ifndef LORASMITH_PARALLEL_H
#define LORASMITH_PARALLEL_H

#include <stdint.h>

/* The body of a parallel loop: handles rows [first, last). */
typedef void (*lorasmith_range_fn)(void *context, int64_t first, int64_t last);

/*
 * Runs fn over [0, rows) in up to `threads` contiguous ranges, this thread taking the first. Work below
 * `min_rows_per_thread` rows per thread stays on fewer threads: starting one costs tens of microseconds.
 */
void lorasmith_parallel_for(int64_t rows, int threads, int64_t min_rows_per_thread, lorasmith_range_fn fn,
                            void *context);

#endif
