#include "lanes.h"

#include <algorithm>

#include "parallel.h"
#include "vec16.h"

namespace cigl {

// Images outer, columns inner: 16 sequential streams through the batch-outermost side at a time
// (128 interleaved ones defeat the hardware prefetcher); the lane side of a row stays in L2. With a gate,
// src counts only where the gate is positive, masked in registers before the transpose.
template <bool Gated>
CIGL_INLINE void toLanesBody(const float* src, const float* gate, int64_t srcStride, int64_t batch, int64_t columns, float* dst, int64_t lanes) {
  for (int64_t nb = 0; nb < lanes; nb += 16) {
    for (int64_t jb = 0; jb < columns; jb += 16) {
      const int64_t jn = std::min<int64_t>(16, columns - jb);
      if (jn == 16 && nb + 16 <= batch) {
        v16 r[16];
        for (int i = 0; i < 16; i++) {
          const int64_t o = (nb + i) * srcStride + jb;
          r[i] = Gated ? (load16(gate + o) > v16{} ? load16(src + o) : v16{}) : load16(src + o);
        }
        transpose16(r);
        for (int j = 0; j < 16; j++) store16(dst + (jb + j) * lanes + nb, r[j]);
      } else {
        for (int64_t j = 0; j < jn; j++)
          for (int64_t n = nb; n < nb + 16; n++) {
            const int64_t o = n * srcStride + jb + j;
            dst[(jb + j) * lanes + n] = n < batch && (!Gated || gate[o] > 0.0f) ? src[o] : 0.0f;
          }
      }
    }
  }
}

CIGL_MULTIVERSION
void toLanes(const float* src, int64_t srcStride, int64_t batch, int64_t columns, float* dst, int64_t lanes) {
  toLanesBody<false>(src, nullptr, srcStride, batch, columns, dst, lanes);
}

CIGL_MULTIVERSION
void toLanesGated(const float* src, const float* gate, int64_t srcStride, int64_t batch, int64_t columns, float* dst, int64_t lanes) {
  toLanesBody<true>(src, gate, srcStride, batch, columns, dst, lanes);
}

CIGL_MULTIVERSION
void fromLanes(const float* src, int64_t lanes, int64_t batch, int64_t columns, float* dst, int64_t dstStride) {
  for (int64_t nb = 0; nb < batch; nb += 16) {
    for (int64_t jb = 0; jb < columns; jb += 16) {
      const int64_t jn = std::min<int64_t>(16, columns - jb);
      if (jn == 16 && nb + 16 <= batch) {
        v16 r[16];
        for (int j = 0; j < 16; j++) r[j] = load16(src + (jb + j) * lanes + nb);
        transpose16(r);
        for (int i = 0; i < 16; i++) store16(dst + (nb + i) * dstStride + jb, r[i]);
      } else {
        const int64_t nEnd = std::min<int64_t>(nb + 16, batch);
        for (int64_t n = nb; n < nEnd; n++)
          for (int64_t j = 0; j < jn; j++) dst[n * dstStride + jb + j] = src[(jb + j) * lanes + n];
      }
    }
  }
}

}  // namespace cigl
