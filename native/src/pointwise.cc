#include "pointwise.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "parallel.h"

namespace cigl {
namespace {

constexpr int64_t kChunk = 1 << 14;  // elements per row range for flat loops

CIGL_MULTIVERSION
void addRange(const float* a, const float* b, float* z, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) z[i] = a[i] + b[i];
}

CIGL_MULTIVERSION
void addReluRange(const float* a, const float* b, float* z, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) z[i] = std::max(a[i] + b[i], 0.0f);
}

CIGL_MULTIVERSION
void reluBackwardRange(const float* dz, const float* out, float* g, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) g[i] = out[i] > 0.0f ? dz[i] : 0.0f;
}

// Flat loops split into chunks of kChunk elements so forRowRanges can share them out.
template <class Body>
void forChunks(int64_t size, Body body) {
  const int64_t chunks = (size + kChunk - 1) / kChunk;
  forRowRanges(chunks, kChunk, [&](int64_t b, int64_t e, int) { body(b * kChunk, std::min(size, e * kChunk)); });
}

CIGL_MULTIVERSION
void maxPoolRows(const PoolShape& s, const float* x, float* y, int64_t begin, int64_t end) {
  const int64_t H = s.height, W = s.width, C = s.channels, OH = H / 2, OW = W / 2;
  for (int64_t r = begin; r < end; r++) {  // r = n·OH + oh
    const int64_t n = r / OH, oh = r % OH;
    const float* top = x + ((n * H + 2 * oh) * W) * C;
    const float* bottom = top + W * C;
    float* out = y + r * OW * C;
    for (int64_t ow = 0; ow < OW; ow++) {
      const float* t0 = top + 2 * ow * C;
      const float* b0 = bottom + 2 * ow * C;
      float* o = out + ow * C;
      for (int64_t c = 0; c < C; c++) o[c] = std::max(std::max(t0[c], t0[C + c]), std::max(b0[c], b0[C + c]));
    }
  }
}

// dx rows 2·oh and 2·oh + 1 of image n: zeros, plus dy at the first maximum of each window in the
// order (0,0), (0,1), (1,0), (1,1), as tfjs's maxPoolPositions.
void maxPoolBackwardWindowRow(const PoolShape& s, const float* x, const float* dy, float* dx, int64_t n, int64_t oh) {
  const int64_t H = s.height, W = s.width, C = s.channels, OW = W / 2;
  const int64_t offset = (n * H + 2 * oh) * W * C;
  const float* top = x + offset;
  const float* bottom = top + W * C;
  float* dxTop = dx + offset;
  float* dxBottom = dxTop + W * C;
  std::memset(dxTop, 0, sizeof(float) * 2 * W * C);
  const float* g = dy + (n * (H / 2) + oh) * OW * C;
  for (int64_t ow = 0; ow < OW; ow++) {
    const int64_t o0 = 2 * ow * C, o1 = o0 + C;
    for (int64_t c = 0; c < C; c++) {
      float best = top[o0 + c];
      float* where = dxTop + o0 + c;
      if (top[o1 + c] > best) { best = top[o1 + c]; where = dxTop + o1 + c; }
      if (bottom[o0 + c] > best) { best = bottom[o0 + c]; where = dxBottom + o0 + c; }
      if (bottom[o1 + c] > best) where = dxBottom + o1 + c;
      *where = g[ow * C + c];
    }
  }
}

}  // namespace

void add(int64_t size, const float* a, const float* b, float* z) {
  forChunks(size, [&](int64_t begin, int64_t end) { addRange(a, b, z, begin, end); });
}

void addRelu(int64_t size, const float* a, const float* b, float* z) {
  forChunks(size, [&](int64_t begin, int64_t end) { addReluRange(a, b, z, begin, end); });
}

void reluBackward(int64_t size, const float* dz, const float* out, float* g) {
  forChunks(size, [&](int64_t begin, int64_t end) { reluBackwardRange(dz, out, g, begin, end); });
}

void maxPool2Forward(const PoolShape& s, const float* x, float* y) {
  const int64_t rows = s.batch * (s.height / 2);
  forRowRanges(rows, 2 * s.width * s.channels, [&](int64_t b, int64_t e, int) { maxPoolRows(s, x, y, b, e); });
}

void maxPool2Backward(const PoolShape& s, const float* x, const float* dy, float* dx) {
  const int64_t OH = s.height / 2, rowElements = s.width * s.channels;
  forRowRanges(s.batch * OH, 2 * rowElements, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; r++) maxPoolBackwardWindowRow(s, x, dy, dx, r / OH, r % OH);
  });
  if (s.height % 2 == 1)  // the dropped last row of each image gets no gradient
    for (int64_t n = 0; n < s.batch; n++) std::memset(dx + ((n + 1) * s.height - 1) * rowElements, 0, sizeof(float) * rowElements);
}

void globalAvgPoolForward(const PoolShape& s, const float* x, float* y) {
  const int64_t HW = s.height * s.width, C = s.channels;
  forRowRanges(s.batch, HW * C, [&](int64_t b, int64_t e, int) {
    std::vector<double> acc(C);
    for (int64_t n = b; n < e; n++) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const float* img = x + n * HW * C;
      for (int64_t i = 0; i < HW; i++)
        for (int64_t c = 0; c < C; c++) acc[c] += img[i * C + c];
      for (int64_t c = 0; c < C; c++) y[n * C + c] = static_cast<float>(acc[c] / HW);
    }
  });
}

void globalAvgPoolBackward(const PoolShape& s, const float* dy, float* dx) {
  const int64_t HW = s.height * s.width, C = s.channels;
  const float inv = 1.0f / static_cast<float>(HW);
  forRowRanges(s.batch, HW * C, [&](int64_t b, int64_t e, int) {
    for (int64_t n = b; n < e; n++)
      for (int64_t i = 0; i < HW; i++)
        for (int64_t c = 0; c < C; c++) dx[(n * HW + i) * C + c] = dy[n * C + c] * inv;
  });
}

}  // namespace cigl
