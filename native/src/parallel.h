// Deterministic work splitting for the addon's own loops (oneDNN threads itself). Rows are split into
// one contiguous range per OpenMP thread; per-thread partial sums are combined in thread order, so a
// result depends only on the data and the thread count, never on scheduling.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace cigl {

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMinElements = 1 << 15;

inline int threadsFor(int64_t elements) {
  return elements < kParallelMinElements ? 1 : omp_get_max_threads();
}

// Threads to use for `rows` rows of `elementsPerRow` elements.
inline int planThreads(int64_t rows, int64_t elementsPerRow) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threadsFor(rows * elementsPerRow), rows)));
}

// Calls body(begin, end, thread) for each thread's contiguous share of [0, rows).
template <class Body>
void forRowRanges(int64_t rows, int64_t elementsPerRow, Body body) {
  const int threads = planThreads(rows, elementsPerRow);
  if (threads <= 1) {
    body(int64_t{0}, rows, 0);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int n = omp_get_num_threads();
    body(rows * t / n, rows * (t + 1) / n, t);
  }
}

// Calls body(chunk, begin, end, thread) for each thread's contiguous share of the rows of `chunks`
// chunks taken one after the other ([0, chunks·rows)), cut at chunk boundaries: rows [begin, end) of
// `chunk`. With as many chunks as threads each thread works on its own chunk.
template <class Body>
void forChunkRows(int64_t chunks, int64_t rows, int64_t elementsPerRow, Body body) {
  forRowRanges(chunks * rows, elementsPerRow, [&](int64_t begin, int64_t end, int t) {
    for (int64_t i = begin; i < end;) {
      const int64_t c = i / rows, stop = std::min(end, (c + 1) * rows);
      body(c, i - c * rows, stop - c * rows, t);
      i = stop;
    }
  });
}

// Per-channel sums over the rows of all chunks: accumulate(chunk, begin, end, acc) adds its rows'
// contributions into `width` doubles; returns the per-thread sums combined in thread order.
template <class Accumulate>
std::vector<double> reduceChunkRows(int64_t chunks, int64_t rows, int64_t elementsPerRow, int64_t width, Accumulate accumulate) {
  const int threads = planThreads(chunks * rows, elementsPerRow);
  std::vector<double> partial(static_cast<size_t>(threads) * width, 0.0);
  forChunkRows(chunks, rows, elementsPerRow,
               [&](int64_t c, int64_t begin, int64_t end, int t) { accumulate(c, begin, end, partial.data() + t * width); });
  std::vector<double> total(width, 0.0);
  for (int t = 0; t < threads; t++)
    for (int64_t i = 0; i < width; i++) total[i] += partial[t * width + i];
  return total;
}

// reduceChunkRows over one chunk: accumulate(begin, end, acc).
template <class Accumulate>
std::vector<double> reduceRows(int64_t rows, int64_t elementsPerRow, int64_t width, Accumulate accumulate) {
  return reduceChunkRows(1, rows, elementsPerRow, width, [&](int64_t, int64_t begin, int64_t end, double* acc) { accumulate(begin, end, acc); });
}

}  // namespace cigl

// Hot element loops are compiled for AVX-512, AVX2+FMA and baseline x86-64 and picked at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CIGL_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CIGL_MULTIVERSION
#endif
