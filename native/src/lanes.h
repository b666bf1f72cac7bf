// The batch-innermost "lanes" layout of the sparse kernels: a matrix A[n][j] (n < batch, the tfjs
// batch-outermost layouts) becomes B[j][lane] with lanes ≥ batch (a multiple of 16), so one AVX-512
// register holds one value for 16 images. Both directions run as 16×16 register-block transposes.
#pragma once
#include <algorithm>
#include <cstdint>

#include "vec16.h"

namespace cigl {

constexpr int64_t kLaneWidth = 16;

// Rows i and i + b (i & b == 0) exchange their off-diagonal b×b blocks.
template <int b>
CIGL_INLINE void swapBlocks(v16* r, const v16i& lo, const v16i& hi) {
  for (int i = 0; i < 16; i++) {
    if (i & b) continue;
    const v16 a = r[i], c = r[i + b];
    r[i] = __builtin_shuffle(a, c, lo);
    r[i + b] = __builtin_shuffle(a, c, hi);
  }
}

// In-register transpose of 16 rows of 16 floats: four rounds of swapping the off-diagonal b×b blocks
// of every 2b×2b block (b = 8, 4, 2, 1), two two-source shuffles per row pair and round. (No lambdas
// here or in the kernels: a lambda is compiled for the baseline ISA, not for the caller's clone.)
CIGL_INLINE void transpose16(v16* r) {
  swapBlocks<8>(r, v16i{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}, v16i{8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31});
  swapBlocks<4>(r, v16i{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27}, v16i{4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31});
  swapBlocks<2>(r, v16i{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29}, v16i{2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31});
  swapBlocks<1>(r, v16i{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}, v16i{1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31});
}

// The sparse kernels' lane buffers hold the batch in chunks of at most kChunkLanes lanes, chunk after
// chunk ([chunk][...][lanes of the chunk]): a gather then streams one chunk's rows, half or less of what a
// whole-batch row would be, and each thread works on its own chunk. Every chunk has the same width (a
// multiple of 16), so one compressed filter's offsets serve all of them; chunk c holds images
// [c·width, min((c + 1)·width, batch)) and zeros after them.
constexpr int64_t kChunkLanes = 64;
struct LaneChunks {
  int64_t count, width;
  explicit LaneChunks(int64_t batch)
      : count(std::max<int64_t>(1, (batch + kChunkLanes - 1) / kChunkLanes)),
        width(((batch + count - 1) / count + kLaneWidth - 1) / kLaneWidth * kLaneWidth) {}
  int64_t lanes() const { return count * width; }
  // Images held by chunk c.
  int64_t images(int64_t batch, int64_t c) const { return std::min(width, batch - c * width); }
};

// Lanes of all chunks together: the batch rounded up to a whole number of equal chunks.
inline int64_t laneCount(int64_t batch) { return LaneChunks(batch).lanes(); }

// dst[j·lanes + n] = src[n·srcStride + j] for n < batch, 0 for batch ≤ n < lanes; j < columns.
void toLanes(const float* src, int64_t srcStride, int64_t batch, int64_t columns, float* dst, int64_t lanes);
// toLanes of src where gate > 0, 0 elsewhere (gate laid out as src): a ReLU's backward pass on the way.
void toLanesGated(const float* src, const float* gate, int64_t srcStride, int64_t batch, int64_t columns, float* dst, int64_t lanes);
// dst[n·dstStride + j] = src[j·lanes + n] for n < batch, j < columns.
void fromLanes(const float* src, int64_t lanes, int64_t batch, int64_t columns, float* dst, int64_t dstStride);

}  // namespace cigl
