#include "parallel.h"

#if !defined(_WIN32)
#include <pthread.h>
#define LORASMITH_HAVE_PTHREADS 1
#endif

#define MAX_THREADS 64

typedef struct {
  lorasmith_range_fn fn;
  void *context;
  int64_t first, last;
} Range;

#if defined(LORASMITH_HAVE_PTHREADS)
static void *run_range(void *arg) {
  const Range *range = (const Range *)arg;
  range->fn(range->context, range->first, range->last);
  return NULL;
}
#endif

void lorasmith_parallel_for(int64_t rows, int threads, int64_t min_rows_per_thread, lorasmith_range_fn fn,
                            void *context) {
  if (rows <= 0) return;
  int64_t workers = threads < 1 ? 1 : threads;
  if (workers > MAX_THREADS) workers = MAX_THREADS;
  if (min_rows_per_thread < 1) min_rows_per_thread = 1;
  if (workers > rows / min_rows_per_thread) workers = rows / min_rows_per_thread;
  if (workers < 2) {
    fn(context, 0, rows);
    return;
  }
#if defined(LORASMITH_HAVE_PTHREADS)
  Range ranges[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  for (int64_t w = 0; w < workers; w++) {
    ranges[w] = (Range){fn, context, rows * w / workers, rows * (w + 1) / workers};
  }
  for (int64_t w = 1; w < workers; w++) {
    started[w] = pthread_create(&ids[w], NULL, run_range, &ranges[w]) == 0;
    if (!started[w]) fn(context, ranges[w].first, ranges[w].last); /* could not start: run it here */
  }
  fn(context, ranges[0].first, ranges[0].last);
  for (int64_t w = 1; w < workers; w++) {
    if (started[w]) pthread_join(ids[w], NULL);
  }
#else
  fn(context, 0, rows);
#endif
}
