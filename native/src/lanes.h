// The batch-innermost "lanes" layout of the sparse kernels: a matrix A[n][j] (n < batch, the tfjs
// batch-outermost layouts) becomes B[j][lane] with lanes = batch rounded up to 16, so one AVX-512
// register holds one value for 16 images. Both directions run as 16×16 register-block transposes.
#pragma once
#include <cstdint>

namespace cigl {

constexpr int64_t kLaneWidth = 16;

inline int64_t laneCount(int64_t batch) { return (batch + kLaneWidth - 1) / kLaneWidth * kLaneWidth; }

// dst[j·lanes + n] = src[n·srcStride + j] for n < batch, 0 for batch ≤ n < lanes; j < columns.
void toLanes(const float* src, int64_t srcStride, int64_t batch, int64_t columns, float* dst, int64_t lanes);
// dst[n·dstStride + j] = src[j·lanes + n] for n < batch, j < columns.
void fromLanes(const float* src, int64_t lanes, int64_t batch, int64_t columns, float* dst, int64_t dstStride);

}  // namespace cigl
