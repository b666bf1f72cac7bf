#include "sparse_conv.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "lanes.h"
#include "parallel.h"
#include "vec16.h"

namespace cigl {
namespace {

// Sizes of the padded lane buffers (see sparse_conv.h).
struct LaneLayout {
  int64_t lanes;
  int64_t inRows, inCols;
  // dy sits at rows [gradTop, gradTop + outHeight) and columns [gradLeft, gradLeft + outWidth).
  int64_t gradRows, gradCols, gradTop, gradLeft;

  explicit LaneLayout(const ConvGeometry& g) {
    lanes = laneCount(g.batch);
    inRows = std::max((g.outHeight - 1) * g.strideHeight + g.kernelHeight, g.padTop + g.inHeight);
    inCols = std::max((g.outWidth - 1) * g.strideWidth + g.kernelWidth, g.padLeft + g.inWidth);
    // The input-gradient gather reads dy at (⌊padded row / stride⌋ − ⌊kh / stride⌋): pad for both ends.
    gradTop = (g.kernelHeight - 1) / g.strideHeight;
    gradLeft = (g.kernelWidth - 1) / g.strideWidth;
    gradRows = gradTop + std::max(g.outHeight, (g.padTop + g.inHeight - 1) / g.strideHeight + 1);
    gradCols = gradLeft + std::max(g.outWidth, (g.padLeft + g.inWidth - 1) / g.strideWidth + 1);
  }
  int64_t inputSize(const ConvGeometry& g) const { return inRows * inCols * g.inChannels * lanes; }
  int64_t gradSize(const ConvGeometry& g) const { return gradRows * gradCols * g.outChannels * lanes; }
};

// The active weights grouped into lists (CSR): list k holds entries [start[k], start[k+1]), each a
// weight value, its float offset into a lane buffer relative to the list's base pointer, and its HWIO
// index in the filter.
struct CompressedFilter {
  std::vector<int64_t> start{0};
  std::vector<int64_t> offset;
  std::vector<float> value;
  std::vector<int32_t> position;

  void add(int64_t off, float v, int64_t pos) {
    offset.push_back(off);
    value.push_back(v);
    position.push_back(static_cast<int32_t>(pos));
  }
  void endList() { start.push_back(static_cast<int64_t>(offset.size())); }
  int64_t lists() const { return static_cast<int64_t>(start.size()) - 1; }
};

int64_t filterIndex(const ConvGeometry& g, int64_t kh, int64_t kw, int64_t ci, int64_t co) {
  return ((kh * g.kernelWidth + kw) * g.inChannels + ci) * g.outChannels + co;
}

// One list per output channel, offsets into the input lanes (forward and filter gradient).
CompressedFilter byOutputChannel(const ConvGeometry& g, const LaneLayout& l, const float* w, const float* active) {
  CompressedFilter f;
  for (int64_t co = 0; co < g.outChannels; co++) {
    for (int64_t kh = 0; kh < g.kernelHeight; kh++)
      for (int64_t kw = 0; kw < g.kernelWidth; kw++)
        for (int64_t ci = 0; ci < g.inChannels; ci++) {
          const int64_t i = filterIndex(g, kh, kw, ci, co);
          if (active[i] != 0) f.add(((kh * l.inCols + kw) * g.inChannels + ci) * l.lanes, w ? w[i] : 0.0f, i);
        }
    f.endList();
  }
  return f;
}

// One list per (input channel, kh mod strideH, kw mod strideW), offsets into the grad lanes relative to
// dy's position (⌊row / stride⌋, ⌊col / stride⌋) of a padded input pixel: the input gradient as a gather.
CompressedFilter byInputChannel(const ConvGeometry& g, const LaneLayout& l, const float* w, const float* active) {
  CompressedFilter f;
  for (int64_t ci = 0; ci < g.inChannels; ci++)
    for (int64_t rh = 0; rh < g.strideHeight; rh++)
      for (int64_t rw = 0; rw < g.strideWidth; rw++) {
        for (int64_t kh = rh; kh < g.kernelHeight; kh += g.strideHeight)
          for (int64_t kw = rw; kw < g.kernelWidth; kw += g.strideWidth)
            for (int64_t co = 0; co < g.outChannels; co++) {
              const int64_t i = filterIndex(g, kh, kw, ci, co);
              if (active[i] == 0) continue;
              const int64_t ah = kh / g.strideHeight, aw = kw / g.strideWidth;
              f.add(((-ah * l.gradCols - aw) * g.outChannels + co) * l.lanes, w[i], i);
            }
        f.endList();
      }
  return f;
}

// Lane vectors handled together starting at vector v of `vectors`: 8 registers (128 images) keep
// both FMA pipes busy; the rest of a batch goes in chunks of 4, 2, 1.
inline int laneChunk(int64_t vectors, int64_t v) {
  const int64_t left = vectors - v;
  return left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
}

// Σ_e value[e] · base[offset[e] + ·] over one list, V vectors wide, stored to out.
template <int V>
CIGL_INLINE void gatherList(const CompressedFilter& f, int64_t list, const float* base, float* out) {
  v16 acc[V];
  for (int v = 0; v < V; v++) acc[v] = v16{};
  const int64_t end = f.start[list + 1];
  for (int64_t e = f.start[list]; e < end; e++) {
    const float* p = base + f.offset[e];
    const float w = f.value[e];
    for (int v = 0; v < V; v++) acc[v] += w * load16(p + v * kLaneWidth);
  }
  for (int v = 0; v < V; v++) store16(out + v * kLaneWidth, acc[v]);
}

template <int V>
CIGL_INLINE void forwardRow(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const float* xLanes, int64_t oh,
                            int64_t lane0, float* tile) {
  for (int64_t ow = 0; ow < g.outWidth; ow++) {
    const float* base = xLanes + ((oh * g.strideHeight) * l.inCols + ow * g.strideWidth) * g.inChannels * l.lanes + lane0;
    float* out = tile + ow * g.outChannels * l.lanes + lane0;
    for (int64_t co = 0; co < g.outChannels; co++) gatherList<V>(f, co, base, out + co * l.lanes);
  }
}

template <int V>
CIGL_INLINE void backwardDataRow(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const float* dyLanes, int64_t h,
                                 int64_t lane0, float* tile) {
  const int64_t row = h + g.padTop, qh = row / g.strideHeight, rh = row % g.strideHeight;
  for (int64_t w = 0; w < g.inWidth; w++) {
    const int64_t col = w + g.padLeft, qw = col / g.strideWidth, rw = col % g.strideWidth;
    const float* base = dyLanes + ((qh + l.gradTop) * l.gradCols + qw + l.gradLeft) * g.outChannels * l.lanes + lane0;
    float* out = tile + w * g.inChannels * l.lanes + lane0;
    for (int64_t ci = 0; ci < g.inChannels; ci++)
      gatherList<V>(f, (ci * g.strideHeight + rh) * g.strideWidth + rw, base, out + ci * l.lanes);
  }
}

// Filter-gradient partial sums of output channels [co0, co1) over all positions: acc holds one vector
// per entry of those channels (entries from f.start[co0]).
template <int V>
CIGL_INLINE void backwardWeightsChunk(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const float* xLanes,
                                      const float* dyLanes, int64_t co0, int64_t co1, int64_t lane0, float* acc) {
  const int64_t e0 = f.start[co0];
  for (int64_t oh = 0; oh < g.outHeight; oh++)
    for (int64_t ow = 0; ow < g.outWidth; ow++) {
      const float* xb = xLanes + ((oh * g.strideHeight) * l.inCols + ow * g.strideWidth) * g.inChannels * l.lanes + lane0;
      const float* db = dyLanes + ((oh + l.gradTop) * l.gradCols + ow + l.gradLeft) * g.outChannels * l.lanes + lane0;
      for (int64_t co = co0; co < co1; co++) {
        v16 d[V];
        for (int v = 0; v < V; v++) d[v] = load16(db + co * l.lanes + v * kLaneWidth);
        const int64_t end = f.start[co + 1];
        for (int64_t e = f.start[co]; e < end; e++) {
          const float* p = xb + f.offset[e];
          float* a = acc + (e - e0) * kLaneWidth;
          v16 s = load16(a);
          for (int v = 0; v < V; v++) s += load16(p + v * kLaneWidth) * d[v];
          store16(a, s);
        }
      }
    }
}

#define CIGL_DISPATCH_V(chunk, call) \
  switch (chunk) {                   \
    case 8: call(8); break;          \
    case 4: call(4); break;          \
    case 2: call(2); break;          \
    default: call(1); break;         \
  }

CIGL_MULTIVERSION
void forwardRows(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const float* xLanes, int64_t begin, int64_t end,
                 float* tile, float* y) {
  for (int64_t oh = begin; oh < end; oh++) {
    for (int64_t v = 0, chunk; v < l.lanes / kLaneWidth; v += chunk) {
      chunk = laneChunk(l.lanes / kLaneWidth, v);
      const int64_t lane0 = v * kLaneWidth;
#define CIGL_CALL(V) forwardRow<V>(g, l, f, xLanes, oh, lane0, tile)
      CIGL_DISPATCH_V(chunk, CIGL_CALL)
#undef CIGL_CALL
    }
    const int64_t rowSize = g.outWidth * g.outChannels;
    fromLanes(tile, l.lanes, g.batch, rowSize, y + oh * rowSize, g.outHeight * rowSize);
  }
}

CIGL_MULTIVERSION
void backwardDataRows(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const float* dyLanes, int64_t begin,
                      int64_t end, float* tile, float* dx) {
  for (int64_t h = begin; h < end; h++) {
    for (int64_t v = 0, chunk; v < l.lanes / kLaneWidth; v += chunk) {
      chunk = laneChunk(l.lanes / kLaneWidth, v);
      const int64_t lane0 = v * kLaneWidth;
#define CIGL_CALL(V) backwardDataRow<V>(g, l, f, dyLanes, h, lane0, tile)
      CIGL_DISPATCH_V(chunk, CIGL_CALL)
#undef CIGL_CALL
    }
    const int64_t rowSize = g.inWidth * g.inChannels;
    fromLanes(tile, l.lanes, g.batch, rowSize, dx + h * rowSize, g.inHeight * rowSize);
  }
}

CIGL_MULTIVERSION
void backwardWeightsChannels(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const float* xLanes,
                             const float* dyLanes, int64_t co0, int64_t co1, float* acc, float* dw) {
  const int64_t e0 = f.start[co0], e1 = f.start[co1];
  std::fill(acc, acc + (e1 - e0) * kLaneWidth, 0.0f);
  for (int64_t v = 0, chunk; v < l.lanes / kLaneWidth; v += chunk) {
    chunk = laneChunk(l.lanes / kLaneWidth, v);
    const int64_t lane0 = v * kLaneWidth;
#define CIGL_CALL(V) backwardWeightsChunk<V>(g, l, f, xLanes, dyLanes, co0, co1, lane0, acc)
    CIGL_DISPATCH_V(chunk, CIGL_CALL)
#undef CIGL_CALL
  }
  for (int64_t e = e0; e < e1; e++) dw[f.position[e]] = sum16(load16(acc + (e - e0) * kLaneWidth));
}

// Per-thread scratch that survives between calls (no page faults on every step).
std::vector<float>& scratch(size_t size) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < size) buffer.resize(size);
  return buffer;
}

// Calls body(begin, end) on contiguous shares of [0, rows), one per thread (at most `rows` threads).
template <class Body>
void forRows(int64_t rows, Body body) {
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), rows)));
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    body(rows * t / n, rows * (t + 1) / n);
  }
}

// Writes `rows` padded rows of a lane buffer from an NHWC tensor whose real rows sit at
// [top, top + height) and columns at [left, left + width); everything else becomes 0.
void paddedToLanes(const float* src, int64_t batch, int64_t height, int64_t width, int64_t channels, int64_t rows, int64_t cols,
                   int64_t top, int64_t left, int64_t lanes, float* dst) {
  const int64_t pixel = channels * lanes;
  forRows(rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      float* row = dst + r * cols * pixel;
      const int64_t h = r - top;
      if (h < 0 || h >= height) {
        std::memset(row, 0, sizeof(float) * cols * pixel);
        continue;
      }
      std::memset(row, 0, sizeof(float) * left * pixel);
      std::memset(row + (left + width) * pixel, 0, sizeof(float) * (cols - left - width) * pixel);
      toLanes(src + h * width * channels, height * width * channels, batch, width * channels, row + left * pixel, lanes);
    }
  });
}

}  // namespace

int64_t sparseConvInputLanesSize(const ConvGeometry& g) { return LaneLayout(g).inputSize(g); }
int64_t sparseConvGradLanesSize(const ConvGeometry& g) { return LaneLayout(g).gradSize(g); }

void sparseConvForward(const ConvGeometry& g, const float* x, const float* w, const float* active, float* y, float* xLanes) {
  const LaneLayout l(g);
  paddedToLanes(x, g.batch, g.inHeight, g.inWidth, g.inChannels, l.inRows, l.inCols, g.padTop, g.padLeft, l.lanes, xLanes);
  const CompressedFilter f = byOutputChannel(g, l, w, active);
  forRows(g.outHeight, [&](int64_t begin, int64_t end) {
    float* tile = scratch(g.outWidth * g.outChannels * l.lanes).data();
    forwardRows(g, l, f, xLanes, begin, end, tile, y);
  });
}

void sparseConvGradToLanes(const ConvGeometry& g, const float* dy, float* dyLanes) {
  const LaneLayout l(g);
  paddedToLanes(dy, g.batch, g.outHeight, g.outWidth, g.outChannels, l.gradRows, l.gradCols, l.gradTop, l.gradLeft, l.lanes, dyLanes);
}

void sparseConvBackwardData(const ConvGeometry& g, const float* dyLanes, const float* w, const float* active, float* dx) {
  const LaneLayout l(g);
  const CompressedFilter f = byInputChannel(g, l, w, active);
  forRows(g.inHeight, [&](int64_t begin, int64_t end) {
    float* tile = scratch(g.inWidth * g.inChannels * l.lanes).data();
    backwardDataRows(g, l, f, dyLanes, begin, end, tile, dx);
  });
}

void sparseConvBackwardWeights(const ConvGeometry& g, const float* xLanes, const float* dyLanes, const float* active, float* dw) {
  const LaneLayout l(g);
  const CompressedFilter f = byOutputChannel(g, l, nullptr, active);
  std::memset(dw, 0, sizeof(float) * g.kernelHeight * g.kernelWidth * g.inChannels * g.outChannels);
  // Output channels split so that every thread gets about the same number of active weights.
  const int64_t total = f.start.back();
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), g.outChannels)));
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const auto channelAt = [&](int k) {
      const int64_t target = total * k / n;
      return static_cast<int64_t>(std::lower_bound(f.start.begin(), f.start.end() - 1, target) - f.start.begin());
    };
    const int64_t co0 = t == 0 ? 0 : channelAt(t), co1 = t == n - 1 ? g.outChannels : channelAt(t + 1);
    if (co1 > co0) {
      float* acc = scratch((f.start[co1] - f.start[co0]) * kLaneWidth + 1).data();
      backwardWeightsChannels(g, l, f, xLanes, dyLanes, co0, co1, acc, dw);
    }
  }
}

}  // namespace cigl
