#include "sparse_conv.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "batchnorm.h"
#include "lanes.h"
#include "parallel.h"
#include "phase_timer.h"
#include "vec16.h"

namespace cigl {
namespace {

// Sizes of the padded lane buffers (see sparse_conv.h). A buffer is `chunks` equal chunks one after the
// other (lanes.h, LaneChunks), each the layout of its own images with `lanes` lanes: the kernels run on
// one chunk at a time, with the chunk's geometry (chunk(g, c): batch = its images) and its base pointers.
struct LaneLayout {
  int64_t lanes, chunks;  // lanes per chunk
  int64_t inRows, inCols;
  // dy sits at rows [gradTop, gradTop + outHeight) and columns [gradLeft, gradLeft + outWidth).
  int64_t gradRows, gradCols, gradTop, gradLeft;

  explicit LaneLayout(const ConvGeometry& g) {
    const LaneChunks k(g.batch);
    lanes = k.width;
    chunks = k.count;
    inRows = std::max((g.outHeight - 1) * g.strideHeight + g.kernelHeight, g.padTop + g.inHeight);
    inCols = std::max((g.outWidth - 1) * g.strideWidth + g.kernelWidth, g.padLeft + g.inWidth);
    // The input-gradient gather reads dy at (⌊padded row / stride⌋ − ⌊kh / stride⌋): pad for both ends.
    gradTop = (g.kernelHeight - 1) / g.strideHeight;
    gradLeft = (g.kernelWidth - 1) / g.strideWidth;
    gradRows = gradTop + std::max(g.outHeight, (g.padTop + g.inHeight - 1) / g.strideHeight + 1);
    gradCols = gradLeft + std::max(g.outWidth, (g.padLeft + g.inWidth - 1) / g.strideWidth + 1);
  }
  // Elements of one chunk of each buffer.
  int64_t inputChunk(const ConvGeometry& g) const { return inRows * inCols * g.inChannels * lanes; }
  int64_t gradChunk(const ConvGeometry& g) const { return gradRows * gradCols * g.outChannels * lanes; }
  int64_t outputChunk(const ConvGeometry& g) const { return g.outHeight * g.outWidth * g.outChannels * lanes; }
  // x's shape in lanes, unpadded ([inHeight][inWidth][inChannels][lanes]).
  int64_t inputDataChunk(const ConvGeometry& g) const { return g.inHeight * g.inWidth * g.inChannels * lanes; }
  int64_t inputSize(const ConvGeometry& g) const { return inputChunk(g) * chunks; }
  int64_t gradSize(const ConvGeometry& g) const { return gradChunk(g) * chunks; }
  int64_t outputSize(const ConvGeometry& g) const { return outputChunk(g) * chunks; }
  // The convolution of chunk c's images alone; its NHWC tensors start at image firstImage(c).
  ConvGeometry chunk(const ConvGeometry& g, int64_t c) const {
    ConvGeometry gc = g;
    gc.batch = LaneChunks(g.batch).images(g.batch, c);
    return gc;
  }
  int64_t firstImage(int64_t c) const { return c * lanes; }
};

// Floats of one image in each NHWC tensor of a convolution.
inline int64_t inImage(const ConvGeometry& g) { return g.inHeight * g.inWidth * g.inChannels; }
inline int64_t outImage(const ConvGeometry& g) { return g.outHeight * g.outWidth * g.outChannels; }

// Where chunk c starts in a tensor of the convolution's output shape, in output lanes or in NHWC.
inline const float* outputChunkOf(const float* t, bool inLanes, const LaneLayout& l, const ConvGeometry& g, int64_t c) {
  return t + (inLanes ? c * l.outputChunk(g) : l.firstImage(c) * outImage(g));
}

// The active weights grouped into lists (CSR): list k holds entries [start[k], start[k+1]), each a
// weight value, its float offset into a lane buffer relative to the list's base pointer, and its HWIO
// index in the filter. Built by a counting sort over one sequential scan of the filter (a list per
// output channel would otherwise read the filter with a stride of outChannels floats, once per list);
// within a list, entries keep the HWIO scan order.
struct CompressedFilter {
  std::vector<int64_t> start;
  std::vector<int64_t> offset;
  std::vector<float> value;
  std::vector<int32_t> position;
  // Entries of a list are in kernel-row order: list k's entries with kernel row ≥ kh start at
  // rowStart[k · (kernelHeight + 1) + kh]. A row of the pass whose window hangs over the zero padding
  // takes only the entries of the kernel rows that land on data (the others would add exact zeros).
  std::vector<int64_t> rowStart;
  int64_t kernelRows = 0;

  int64_t lists() const { return static_cast<int64_t>(start.size()) - 1; }
  // The entries [first, last) of `list` whose kernel rows lie in [khLo, khHi).
  int64_t first(int64_t list, int64_t khLo) const { return rowStart[list * (kernelRows + 1) + khLo]; }
  int64_t last(int64_t list, int64_t khHi) const { return rowStart[list * (kernelRows + 1) + khHi]; }
};

// Visits every active position in HWIO order: visit(i, kh, kw, ci, co). Each run of 32 output channels
// is tested into a bit mask first, without branches, and only its set bits are visited: at the usual
// densities most positions are inactive, and a branch per position mispredicted at every active one.
CIGL_MULTIVERSION
uint32_t nonzeroBits(const float* p, int n) {
  uint32_t bits = 0;
  for (int j = 0; j < n; j++) bits |= static_cast<uint32_t>(p[j] != 0.0f) << j;
  return bits;
}

template <class Visit>
void forEachActive(const ConvGeometry& g, const float* active, Visit visit) {
  const int64_t C = g.outChannels;
  int64_t i = 0;
  for (int64_t kh = 0; kh < g.kernelHeight; kh++)
    for (int64_t kw = 0; kw < g.kernelWidth; kw++)
      for (int64_t ci = 0; ci < g.inChannels; ci++, i += C)
        for (int64_t co0 = 0; co0 < C; co0 += 32) {
          const int n = static_cast<int>(std::min<int64_t>(32, C - co0));
          uint32_t bits = nonzeroBits(active + i + co0, n);
          while (bits) {
            const int j = __builtin_ctz(bits);
            bits &= bits - 1;
            visit(i + co0 + j, kh, kw, ci, co0 + j);
          }
        }
}

// The active entries sorted into their lists (a stable counting sort: within a list, HWIO scan order),
// with value 0 (see compressed).
template <class ListOf, class OffsetOf>
CompressedFilter compress(const ConvGeometry& g, int64_t lists, const float* active, ListOf listOf, OffsetOf offsetOf) {
  struct Found {
    int64_t list, offset;
    int32_t position;
  };
  thread_local std::vector<Found> found;
  found.clear();
  CompressedFilter f;
  f.start.assign(lists + 1, 0);
  forEachActive(g, active, [&](int64_t i, int64_t kh, int64_t kw, int64_t ci, int64_t co) {
    const int64_t list = listOf(kh, kw, ci, co);
    f.start[list + 1]++;
    found.push_back({list, offsetOf(kh, kw, ci, co), static_cast<int32_t>(i)});
  });
  for (int64_t k = 0; k < lists; k++) f.start[k + 1] += f.start[k];
  const int64_t total = f.start[lists];
  f.offset.resize(total);
  f.value.resize(total);
  f.position.resize(total);
  std::vector<int64_t> next(f.start.begin(), f.start.end() - 1);
  for (const Found& e : found) {
    const int64_t at = next[e.list]++;
    f.offset[at] = e.offset;
    f.position[at] = e.position;
  }
  // Kernel row of an HWIO position: position / (kernelWidth · inChannels · outChannels).
  const int64_t KH = g.kernelHeight, perKernelRow = g.kernelWidth * g.inChannels * g.outChannels;
  f.kernelRows = KH;
  f.rowStart.resize(lists * (KH + 1));
  for (int64_t k = 0; k < lists; k++) {
    int64_t e = f.start[k];
    for (int64_t kh = 0; kh <= KH; kh++) {
      while (e < f.start[k + 1] && f.position[e] / perKernelRow < kh) e++;
      f.rowStart[k * (KH + 1) + kh] = e;
    }
  }
  return f;
}

// Recently compressed patterns, per thread. Within a step each layer's pattern is compressed for the
// forward pass, the filter gradient and the input gradient, and between mask updates it does not change
// at all: a hit reads only the weight values. Keyed by the geometry, the kind of lists and the pattern
// itself, compared in full (a memcmp of the filter, far cheaper than a rebuild). A returned filter
// stays valid until this thread's next lookup (the kernels hold one at a time).
enum class Lists { kByOutputChannel, kByInputChannel };
class PatternCache {
 public:
  template <class Build>
  CompressedFilter& get(const ConvGeometry& g, Lists kind, const float* active, Build build) {
    const int64_t size = g.kernelHeight * g.kernelWidth * g.inChannels * g.outChannels;
    clock_++;
    for (auto& e : entries_)
      if (e->kind == kind && std::memcmp(&e->geometry, &g, sizeof g) == 0 && std::memcmp(e->active.data(), active, sizeof(float) * size) == 0) {
        e->used = clock_;
        return e->filter;
      }
    // A new entry while there is room, else the least recently used one.
    Entry* e = entries_.size() < kCapacity
                   ? entries_.emplace_back(std::make_unique<Entry>()).get()
                   : std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) { return a->used < b->used; })->get();
    *e = Entry{g, kind, std::vector<float>(active, active + size), build(), clock_};
    return e->filter;
  }

 private:
  struct Entry {
    ConvGeometry geometry;
    Lists kind;
    std::vector<float> active;
    CompressedFilter filter;
    uint64_t used;
  };
  // A step of resnet20 needs 2 per masked layer (38); more networks or geometries just rebuild.
  static constexpr size_t kCapacity = 64;
  std::vector<std::unique_ptr<Entry>> entries_;  // stable addresses for the returned references
  uint64_t clock_ = 0;
};

// The pattern's lists (cached) with the weight values of w; without w (the filter gradient, which reads
// none) the values are left as they are.
template <class ListOf, class OffsetOf>
const CompressedFilter& compressed(const ConvGeometry& g, Lists kind, int64_t lists, const float* w, const float* active, ListOf listOf,
                                   OffsetOf offsetOf) {
  PhaseScope time(Phase::kCompressFilter);
  thread_local PatternCache cache;
  CompressedFilter& f = cache.get(g, kind, active, [&] { return compress(g, lists, active, listOf, offsetOf); });
  if (w)
    for (size_t e = 0; e < f.value.size(); e++) f.value[e] = w[f.position[e]];
  return f;
}

// One list per output channel, offsets into the input lanes (forward and filter gradient).
const CompressedFilter& byOutputChannel(const ConvGeometry& g, const LaneLayout& l, const float* w, const float* active) {
  return compressed(
      g, Lists::kByOutputChannel, g.outChannels, w, active, [](int64_t, int64_t, int64_t, int64_t co) { return co; },
      [&](int64_t kh, int64_t kw, int64_t ci, int64_t) { return ((kh * l.inCols + kw) * g.inChannels + ci) * l.lanes; });
}

// One list per (input channel, kh mod strideH, kw mod strideW), offsets into the grad lanes relative to
// dy's position (⌊row / stride⌋, ⌊col / stride⌋) of a padded input pixel: the input gradient as a gather.
const CompressedFilter& byInputChannel(const ConvGeometry& g, const LaneLayout& l, const float* w, const float* active) {
  return compressed(
      g, Lists::kByInputChannel, g.inChannels * g.strideHeight * g.strideWidth, w, active,
      [&](int64_t kh, int64_t kw, int64_t ci, int64_t) { return (ci * g.strideHeight + kh % g.strideHeight) * g.strideWidth + kw % g.strideWidth; },
      [&](int64_t kh, int64_t kw, int64_t, int64_t co) {
        return ((-(kh / g.strideHeight) * l.gradCols - kw / g.strideWidth) * g.outChannels + co) * l.lanes;
      });
}

// Lane vectors of a chunk handled together starting at vector v of `vectors` (≤ 4): the whole chunk
// when it is full, so each active weight streams the chunk's contiguous 256 bytes per position.
inline int vectorsPerCall(int64_t vectors, int64_t v) {
  const int64_t left = vectors - v;
  return left >= 4 ? 4 : left >= 2 ? 2 : 1;
}

// For P positions at once (base + q·baseStep, out + q·outStride): Σ_e value[e] · base[offset[e] + ·]
// over entries [begin, end) of one list, V vectors wide. P·V independent accumulators hide the FMA
// latency; each entry's weight is broadcast once for all of them.
template <int V, int P>
CIGL_INLINE void gatherPositions(const CompressedFilter& f, int64_t begin, int64_t end, const float* base, int64_t baseStep, float* out,
                                 int64_t outStride) {
  v16 acc[P][V];
  for (int q = 0; q < P; q++)
    for (int v = 0; v < V; v++) acc[q][v] = v16{};
  for (int64_t e = begin; e < end; e++) {
    const float* p = base + f.offset[e];
    const float w = f.value[e];
    for (int q = 0; q < P; q++)
      for (int v = 0; v < V; v++) acc[q][v] += w * load16(p + q * baseStep + v * kLaneWidth);
  }
  for (int q = 0; q < P; q++)
    for (int v = 0; v < V; v++) store16(out + q * outStride + v * kLaneWidth, acc[q][v]);
}

// The kernel rows [lo, hi) whose input rows lie on x's data (not its zero padding) for output row oh.
struct KernelRows {
  int64_t lo, hi;
};
inline KernelRows kernelRowsOnData(const ConvGeometry& g, int64_t oh) {
  const int64_t top = oh * g.strideHeight;  // padded input row of kernel row 0
  return {std::clamp<int64_t>(g.padTop - top, 0, g.kernelHeight), std::clamp<int64_t>(g.padTop + g.inHeight - top, 0, g.kernelHeight)};
}

// One block of P positions (base + q·baseStep, out + q·outStep) for `lists` lists firstList +
// k·listStep, list k's results at out + k·outListStep; only the entries of the kernel rows on data.
template <int V, int P>
CIGL_INLINE void gatherBlock(const CompressedFilter& f, int64_t firstList, int64_t listStep, int64_t lists, KernelRows rows, const float* base,
                             int64_t baseStep, float* out, int64_t outStep, int64_t outListStep) {
  for (int64_t k = 0; k < lists; k++) {
    const int64_t list = firstList + k * listStep;
    gatherPositions<V, P>(f, f.first(list, rows.lo), f.last(list, rows.hi), base, baseStep, out + k * outListStep, outStep);
  }
}

// `count` positions of a row, blocked: P·V accumulators per block (24 at V = 4: six positions of a
// 64-lane chunk), the row's remainder in pairs and then singly.
template <int V>
CIGL_INLINE void gatherRowPositions(const CompressedFilter& f, int64_t count, int64_t firstList, int64_t listStep, int64_t lists, KernelRows rows,
                                    const float* base, int64_t baseStep, float* out, int64_t outStep, int64_t outListStep) {
  constexpr int P = V == 4 ? 6 : 16 / V;
  int64_t q = 0;
  for (; q + P <= count; q += P)
    gatherBlock<V, P>(f, firstList, listStep, lists, rows, base + q * baseStep, baseStep, out + q * outStep, outStep, outListStep);
  if (P > 2)
    for (; q + 2 <= count; q += 2)
      gatherBlock<V, 2>(f, firstList, listStep, lists, rows, base + q * baseStep, baseStep, out + q * outStep, outStep, outListStep);
  for (; q < count; q++)
    gatherBlock<V, 1>(f, firstList, listStep, lists, rows, base + q * baseStep, baseStep, out + q * outStep, outStep, outListStep);
}

// Where the rows of one chunk of a padded lane buffer (dy's grad lanes, x's input lanes) lie: the whole
// buffer (no slots), or a ring of `slots` rows for a transient one (PendingGrad, PendingLanes), written by
// its consumer just ahead of reading it. The ring's buffer is [behind rows][slots][ahead rows]: a row in
// one of the last `behind` slots is copied before the first as well, and one in the first `ahead` slots
// after the last (mirrors), so that a reader of row R finds rows R − behind … R + ahead one after the
// other, as in the whole buffer (the input gradient reads dy's rows back, the gathers over x read ahead).
struct LaneRows {
  float* lanes = nullptr;
  int64_t rowSize = 0;
  int64_t slots = 0, behind = 0, ahead = 0;
  float* row(int64_t R) const { return lanes + (slots ? R % slots + behind : R) * rowSize; }
  float* mirrorBefore(int64_t R) const { return slots && R % slots >= slots - behind ? lanes + (R % slots + behind - slots) * rowSize : nullptr; }
  float* mirrorAfter(int64_t R) const { return slots && R % slots < ahead ? lanes + (R % slots + behind + slots) * rowSize : nullptr; }
};

// Row R of a ring also at its mirror positions (LaneRows), once written.
inline void mirrorRow(const LaneRows& rows, int64_t R) {
  if (float* m = rows.mirrorBefore(R)) std::memcpy(m, rows.row(R), sizeof(float) * rows.rowSize);
  if (float* m = rows.mirrorAfter(R)) std::memcpy(m, rows.row(R), sizeof(float) * rows.rowSize);
}

// The whole of one chunk's padded input lanes, or of its grad lanes, as LaneRows.
inline LaneRows inputLaneRows(const ConvGeometry& g, const LaneLayout& l, const float* xChunk) {
  return {const_cast<float*>(xChunk), l.inCols * g.inChannels * l.lanes};
}
inline LaneRows gradLaneRows(const ConvGeometry& g, const LaneLayout& l, const float* dyChunk) {
  return {const_cast<float*>(dyChunk), l.gradCols * g.outChannels * l.lanes};
}

template <int V>
CIGL_INLINE void forwardRow(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const LaneRows& x, int64_t oh,
                            int64_t lane0, float* tile) {
  const int64_t xStep = g.strideWidth * g.inChannels * l.lanes, outStep = g.outChannels * l.lanes;
  const float* xRow = x.row(oh * g.strideHeight) + lane0;
  gatherRowPositions<V>(f, g.outWidth, 0, 1, g.outChannels, kernelRowsOnData(g, oh), xRow, xStep, tile + lane0, outStep, l.lanes);
}

// Input columns of one parity class (w ≡ w0 mod strideWidth) share their lists (one per input channel:
// list (ci·strideH + rh)·strideW + rw); along the class the dy base moves by one output column per step.
template <int V>
CIGL_INLINE void backwardDataRow(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const LaneRows& dy, int64_t h,
                                 int64_t lane0, float* tile) {
  const int64_t row = h + g.padTop, qh = row / g.strideHeight, rh = row % g.strideHeight;
  // Kernel row kh reads dy row qh − ⌊kh / stride⌋, which must lie in [0, outHeight).
  const KernelRows rows{std::clamp<int64_t>((qh - g.outHeight + 1) * g.strideHeight, 0, g.kernelHeight),
                        std::clamp<int64_t>((qh + 1) * g.strideHeight, 0, g.kernelHeight)};
  const int64_t dyStep = g.outChannels * l.lanes, outStep = g.strideWidth * g.inChannels * l.lanes;
  for (int64_t w0 = 0; w0 < std::min(g.strideWidth, g.inWidth); w0++) {
    const int64_t col = w0 + g.padLeft, qw = col / g.strideWidth, rw = col % g.strideWidth;
    const float* base = dy.row(qh + l.gradTop) + (qw + l.gradLeft) * g.outChannels * l.lanes + lane0;
    const int64_t count = (g.inWidth - w0 + g.strideWidth - 1) / g.strideWidth;
    gatherRowPositions<V>(f, count, rh * g.strideWidth + rw, g.strideHeight * g.strideWidth, g.inChannels, rows, base, dyStep,
                          tile + w0 * g.inChannels * l.lanes + lane0, outStep, l.lanes);
  }
}

// Filter-gradient partial sums of G consecutive entries (from entry e, all of output channel co) over
// one output row: the G accumulators and dy's V vectors stay in registers along the row, so memory sees
// one x load per multiply-add and one accumulator load/store per entry and row.
template <int V, int G>
CIGL_INLINE void filterGradRow(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const float* xRow,
                               const float* dyRow, int64_t co, int64_t e, float* acc) {
  v16 a[G];
  const float* p[G];
  for (int j = 0; j < G; j++) {
    a[j] = load16(acc + j * kLaneWidth);
    p[j] = xRow + f.offset[e + j];
  }
  const int64_t xStep = g.strideWidth * g.inChannels * l.lanes, dyStep = g.outChannels * l.lanes;
  const float* db = dyRow + co * l.lanes;
  for (int64_t ow = 0; ow < g.outWidth; ow++) {
    v16 d[V];
    for (int v = 0; v < V; v++) d[v] = load16(db + ow * dyStep + v * kLaneWidth);
    for (int j = 0; j < G; j++)
      for (int v = 0; v < V; v++) a[j] += load16(p[j] + ow * xStep + v * kLaneWidth) * d[v];
  }
  for (int j = 0; j < G; j++) store16(acc + j * kLaneWidth, a[j]);
}

// Filter-gradient partial sums over output rows [oh0, oh1), all channels: acc holds one vector per
// entry. Rows outermost, so x's rows are read from memory once and then served from cache for every
// channel.
template <int V>
CIGL_INLINE void backwardWeightsChunk(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const LaneRows& x,
                                      const LaneRows& dy, int64_t oh0, int64_t oh1, int64_t lane0, float* acc) {
  const int64_t co0 = 0, co1 = g.outChannels, e0 = 0;
  for (int64_t oh = oh0; oh < oh1; oh++) {
    const float* xRow = x.row(oh * g.strideHeight) + lane0;
    const float* dyRow = dy.row(oh + l.gradTop) + l.gradLeft * g.outChannels * l.lanes + lane0;
    const KernelRows rows = kernelRowsOnData(g, oh);
    for (int64_t co = co0; co < co1; co++) {
      const int64_t end = f.last(co, rows.hi);
      for (int64_t e = f.first(co, rows.lo); e < end;) {
        float* a = acc + (e - e0) * kLaneWidth;
        const int64_t left = end - e;
        if (left >= 8) { filterGradRow<V, 8>(g, l, f, xRow, dyRow, co, e, a); e += 8; }
        else if (left >= 4) { filterGradRow<V, 4>(g, l, f, xRow, dyRow, co, e, a); e += 4; }
        else if (left >= 2) { filterGradRow<V, 2>(g, l, f, xRow, dyRow, co, e, a); e += 2; }
        else { filterGradRow<V, 1>(g, l, f, xRow, dyRow, co, e, a); e += 1; }
      }
    }
  }
}

#define CIGL_DISPATCH_V(vectors, call) \
  switch (vectors) {                   \
    case 4: call(4); break;            \
    case 2: call(2); break;            \
    default: call(1); break;           \
  }

// Rows [begin, end) of a gather pass, the forward pass (rows of y, `in` x's rows) or the input gradient
// (rows of dx, `in` dy's rows): each row is computed in lanes into `tile`, then transposed into the NHWC
// result while still in cache.
CIGL_MULTIVERSION
void gatherRows(bool inputGradient, const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const LaneRows& in,
                int64_t begin, int64_t end, float* tile, float* out, const float* addLanes = nullptr) {
  const int64_t rows = inputGradient ? g.inHeight : g.outHeight;
  const int64_t rowSize = inputGradient ? g.inWidth * g.inChannels : g.outWidth * g.outChannels;
  for (int64_t r = begin; r < end; r++) {
    PhaseScope gatherTime(inputGradient ? Phase::kDataGather : Phase::kForwardGather);
    for (int64_t v = 0, n; v < l.lanes / kLaneWidth; v += n) {
      n = vectorsPerCall(l.lanes / kLaneWidth, v);
      const int64_t lane0 = v * kLaneWidth;
#define CIGL_CALL(V)                                      \
  if (inputGradient)                                      \
    backwardDataRow<V>(g, l, f, in, r, lane0, tile);      \
  else                                                    \
    forwardRow<V>(g, l, f, in, r, lane0, tile);
      CIGL_DISPATCH_V(n, CIGL_CALL)
#undef CIGL_CALL
    }
    // An identity shortcut's gradient joins while the row is in cache (else a pass of its own).
    if (addLanes) {
      const float* add = addLanes + r * rowSize * l.lanes;
      for (int64_t i = 0; i < rowSize * l.lanes; i += kLaneWidth) store16(tile + i, load16(tile + i) + load16(add + i));
    }
    gatherTime.stop();
    PhaseScope fromLanesTime(inputGradient ? Phase::kDataFromLanes : Phase::kNormalizeToNhwc);
    fromLanes(tile, l.lanes, g.batch, rowSize, out + r * rowSize, rows * rowSize);
  }
}

// Rows [begin, end) of the input gradient written in lanes ([inHeight][inWidth][inChannels][lanes]),
// for a producer that reads its upstream gradient in lanes (sparseConvBnBackward with dzInLanes). With
// addLanes (dx's layout) it is added, and with gateLanes (this convolution's padded input lanes) the sum
// passes only where the input was positive, while each row is in cache: an identity shortcut's gradient
// and the ReLU of the residual join that produced x.
CIGL_MULTIVERSION
void gatherRowsToLanes(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const LaneRows& dy, int64_t begin,
                       int64_t end, float* dxLanes, const float* addLanes, const float* gateLanes) {
  const int64_t rowSize = g.inWidth * g.inChannels * l.lanes;
  PhaseScope gatherTime(Phase::kDataGather);
  for (int64_t r = begin; r < end; r++) {
    float* row = dxLanes + r * rowSize;
    for (int64_t v = 0, n; v < l.lanes / kLaneWidth; v += n) {
      n = vectorsPerCall(l.lanes / kLaneWidth, v);
      const int64_t lane0 = v * kLaneWidth;
#define CIGL_CALL(V) backwardDataRow<V>(g, l, f, dy, r, lane0, row)
      CIGL_DISPATCH_V(n, CIGL_CALL)
#undef CIGL_CALL
    }
    if (!addLanes && !gateLanes) continue;
    const float* add = addLanes ? addLanes + r * rowSize : nullptr;
    const float* gate = gateLanes ? gateLanes + ((r + g.padTop) * l.inCols + g.padLeft) * g.inChannels * l.lanes : nullptr;
    for (int64_t i = 0; i < rowSize; i += kLaneWidth) {
      v16 d = load16(row + i);
      if (add) d = d + load16(add + i);
      if (gate) d = load16(gate + i) > v16{} ? d : v16{};
      store16(row + i, d);
    }
  }
}

CIGL_MULTIVERSION
void backwardWeightsRows(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const LaneRows& x,
                         const LaneRows& dy, int64_t oh0, int64_t oh1, float* acc) {
  for (int64_t v = 0, n; v < l.lanes / kLaneWidth; v += n) {
    n = vectorsPerCall(l.lanes / kLaneWidth, v);
    const int64_t lane0 = v * kLaneWidth;
#define CIGL_CALL(V) backwardWeightsChunk<V>(g, l, f, x, dy, oh0, oh1, lane0, acc)
    CIGL_DISPATCH_V(n, CIGL_CALL)
#undef CIGL_CALL
  }
}

// Per-thread scratch that survives between calls (no page faults on every step), starting on a cache
// line like the pool's arrays (see BufferPool): a 64-byte vector load from a misaligned base straddles
// two lines, and that alone cost the gathers a third of their speed.
// Slot 1 is for a pending dy's rows written inside a gather that holds slot 0, slot 2 for a transient
// dy's ring of rows, slot 3 for filter-gradient partial sums taken inside an input-gradient gather, slot 4
// for a transient input's ring of rows; slots 5 and 6 (the calling thread's) for a transient dy and input
// written whole where threads would share a chunk.
float* scratch(size_t size, int slot = 0) {
  thread_local std::vector<float> buffers[7];
  std::vector<float>& buffer = buffers[slot];
  if (buffer.size() < size + kLaneWidth) buffer.resize(size + kLaneWidth);
  const uintptr_t address = reinterpret_cast<uintptr_t>(buffer.data());
  return buffer.data() + ((64 - address % 64) % 64) / sizeof(float);
}

// parallel.h's thread rule takes elements per row; these kernels know their whole job's work.
inline int64_t perRow(int64_t work, int64_t rows) { return (work + rows - 1) / std::max<int64_t>(1, rows); }

// Whether forChunkRows gives every thread whole chunks (then a thread's rows of a chunk are its own).
bool threadsOwnChunks(int64_t chunks, int64_t rows, int64_t elementsPerRow) { return chunks % planThreads(chunks * rows, elementsPerRow) == 0; }

// A pending output (sparse_conv.h): rows [begin, end) of chunk c of its destination, or all of it in one pass.
void writePendingRows(const PendingLanes& p, int64_t c, int64_t begin, int64_t end);
void writePending(const PendingLanes& p);
// Where chunk c of a pending output's rows go (rowsOf): its destination, or the consumer's ring. A
// transient one (no destination) is written into the consumer's own copy with its ring (ringed: an
// input's ring in scratch slot 4, a dy's in slot 2), or whole (wholeInput; a dy, scratch slot 5).
LaneRows rowsOf(const PendingLanes& p, const LaneLayout& ln, int64_t c);
PendingLanes ringed(const PendingLanes& input, const LaneLayout& ln);
const float* wholeInput(const PendingLanes& p);
void writePendingRows(const PendingGrad& p, int64_t c, int64_t begin, int64_t end);
LaneRows rowsOf(const PendingGrad& p, const LaneLayout& l, int64_t c);
void writePendingGrad(const PendingGrad& p);
// Where a consumer that needs rows up to `end` should stop writing: a pooled dy's rows come in window
// pairs, so the pair's second row is written with its first (its gradient is routed once for both).
inline int64_t pendingRowsEnd(const PendingLanes&, int64_t end) { return end; }
int64_t pendingRowsEnd(const PendingGrad& p, int64_t end);

// GradientSums (sparse_conv.h) with BatchNorm's scale and shift worked out; rowSums adds row r of chunk
// c of dz (in lanes) to acc (2·C doubles).
struct SumsTarget {
  const GradientSums* target;
  std::vector<float> a, b;
  explicit SumsTarget(const GradientSums& t);
  void rowSums(int64_t c, int64_t r, const float* dz, double* acc) const;
};

// Rows of chunk c of a pending output's destination written so far by the gather that consumes it: each
// gathered row first writes the rows up to the last one it reads (timed as `phase`). None without a pending.
template <class Pending>
struct RowsAhead {
  const Pending* pending;
  int64_t chunk, rows;
  Phase phase;
  int64_t ready = 0;
  void upTo(int64_t need) {
    if (!pending) return;
    need = std::min(pendingRowsEnd(*pending, std::min(need, rows)), rows);
    if (need <= ready) return;
    PhaseScope time(phase);
    writePendingRows(*pending, chunk, ready, need);
    ready = need;
  }
  void rest() { upTo(rows); }
};

// Zeroes the padding of one row of a padded lane buffer (`cols` pixels of `pixel` floats, data in
// [left, left + width)), or the whole row when it lies outside the data; returns where the data starts,
// or nullptr for a row that is all padding.
inline float* padRow(float* row, int64_t cols, int64_t left, int64_t width, int64_t pixel, bool inside) {
  if (!inside) {
    std::memset(row, 0, sizeof(float) * cols * pixel);
    return nullptr;
  }
  std::memset(row, 0, sizeof(float) * left * pixel);
  std::memset(row + (left + width) * pixel, 0, sizeof(float) * (cols - left - width) * pixel);
  return row + left * pixel;
}

// Writes `rows` padded rows of each chunk of a lane buffer from an NHWC tensor whose real rows sit at
// [top, top + height) and columns at [left, left + width); everything else becomes 0.
void paddedToLanes(const float* src, int64_t batch, int64_t height, int64_t width, int64_t channels, int64_t rows, int64_t cols,
                   int64_t top, int64_t left, const LaneLayout& l, float* dst) {
  PhaseScope time(Phase::kInputToLanes);
  const int64_t pixel = channels * l.lanes, image = height * width * channels;
  const LaneChunks chunks(batch);
  forChunkRows(l.chunks, rows, cols * pixel, [&](int64_t c, int64_t begin, int64_t end, int) {
    const float* chunkSrc = src + l.firstImage(c) * image;
    float* chunkDst = dst + c * rows * cols * pixel;
    for (int64_t r = begin; r < end; r++) {
      const int64_t h = r - top;
      float* data = padRow(chunkDst + r * cols * pixel, cols, left, width, pixel, h >= 0 && h < height);
      if (data) toLanes(chunkSrc + h * width * channels, image, chunks.images(batch, c), width * channels, data, l.lanes);
    }
  });
}

void inputToLanes(const ConvGeometry& g, const LaneLayout& l, const float* x, float* xLanes) {
  paddedToLanes(x, g.batch, g.inHeight, g.inWidth, g.inChannels, l.inRows, l.inCols, g.padTop, g.padLeft, l, xLanes);
}

}  // namespace

int64_t sparseConvInputLanesSize(const ConvGeometry& g) { return LaneLayout(g).inputSize(g); }
int64_t sparseConvOutputLanesSize(const ConvGeometry& g) { return LaneLayout(g).outputSize(g); }
int64_t sparseConvGradLanesSize(const ConvGeometry& g) { return LaneLayout(g).gradSize(g); }
int64_t sparseConvInputDataLanesSize(const ConvGeometry& g) { const LaneLayout l(g); return l.inputDataChunk(g) * l.chunks; }

void sparseConvForward(const ConvGeometry& g, const float* x, const float* w, const float* active, float* y, float* xLanes) {
  const LaneLayout l(g);
  inputToLanes(g, l, x, xLanes);
  const CompressedFilter& f = byOutputChannel(g, l, w, active);
  forChunkRows(l.chunks, g.outHeight, f.start.back() * g.outWidth * l.lanes, [&](int64_t c, int64_t begin, int64_t end, int) {
    float* tile = scratch(g.outWidth * g.outChannels * l.lanes);
    gatherRows(false, l.chunk(g, c), l, f, inputLaneRows(g, l, xLanes + c * l.inputChunk(g)), begin, end, tile, y + l.firstImage(c) * outImage(g));
  });
}

void sparseConvGradToLanes(const ConvGeometry& g, const float* dy, float* dyLanes) {
  const LaneLayout l(g);
  paddedToLanes(dy, g.batch, g.outHeight, g.outWidth, g.outChannels, l.gradRows, l.gradCols, l.gradTop, l.gradLeft, l, dyLanes);
}

namespace {

// Rows a transient dy's ring holds per thread beyond the `behind` rows a reader looks back: the row being
// read, one written ahead of it, and a pooled dy's window partner.
constexpr int64_t kRingAhead = 3;

// A pending dy's copy whose rows go into this thread's ring (scratch slot 2) of slots + behind rows.
PendingGrad ringed(const PendingGrad& input, const LaneLayout& l, int64_t behind) {
  PendingGrad p = input;
  p.ringBehind = behind;
  p.ringSlots = behind + kRingAhead;
  p.dyLanes = scratch((p.ringSlots + behind) * l.gradCols * input.g.outChannels * l.lanes, 2);
  return p;
}

// Combines the threads' filter-gradient partial sums (one vector per active entry) in thread order into dw.
void reduceFilterGradient(const CompressedFilter& f, const std::vector<const float*>& partial, int64_t begin, int64_t end, float* dw) {
  for (int64_t e = begin; e < end; e++) {
    float sum = 0.0f;
    for (const float* p : partial)
      if (p) sum += sum16(load16(p + e * kLaneWidth));
    dw[f.position[e]] = sum;
  }
}

}  // namespace

void sparseConvBackwardData(const ConvGeometry& g, const float* dyLanes, const float* w, const float* active, float* dx, bool dxInLanes,
                            const float* addLanes, const float* gateLanes, const PendingGrad* input, const std::vector<GradientSums>& sums,
                            const FilterGradient* weights) {
  const LaneLayout l(g);
  const CompressedFilter& f = byInputChannel(g, l, w, active);
  const int64_t dxChunk = dxInLanes ? l.inputDataChunk(g) : l.lanes * inImage(g);
  const int64_t work = perRow(f.start.back() * g.inWidth * l.lanes, g.strideHeight * g.strideWidth);
  const bool transient = input && !input->dyLanes;
  if (input && !threadsOwnChunks(l.chunks, g.inHeight, work)) {
    // Threads would share a chunk's dy rows: dy is written whole first (a transient one into the calling
    // thread's scratch), and the filter gradient runs on its own after the input gradient.
    PendingGrad stored = *input;
    if (transient) stored.dyLanes = scratch(l.chunks * l.gradChunk(g), 5);
    writePendingGrad(stored);
    sparseConvBackwardData(g, stored.dyLanes, w, active, dx, dxInLanes, addLanes, gateLanes, nullptr, sums);
    if (weights) sparseConvBackwardWeights(g, weights->x ? wholeInput(*weights->x) : weights->xLanes, stored.dyLanes, active, weights->dw);
    return;
  }
  if (weights && !input) {
    sparseConvBackwardData(g, dyLanes, w, active, dx, dxInLanes, addLanes, gateLanes, nullptr, sums);
    sparseConvBackwardWeights(g, weights->x ? wholeInput(*weights->x) : weights->xLanes, dyLanes, active, weights->dw);
    return;
  }
  // With `weights`, each dy row also adds its filter-gradient terms right after it is written: partial
  // sums per thread (scratch slot 3), combined in thread order as sparseConvBackwardWeights combines them.
  const CompressedFilter* fw = weights ? &byOutputChannel(g, l, nullptr, active) : nullptr;
  const int64_t entries = fw ? fw->start.back() : 0;
  // One per thread of the reduceChunkRows below (the same plan).
  std::vector<const float*> partial(static_cast<size_t>(planThreads(l.chunks * g.inHeight, work)));
  if (fw) std::memset(weights->dw, 0, sizeof(float) * g.kernelHeight * g.kernelWidth * g.inChannels * g.outChannels);
  const std::vector<SumsTarget> targets(sums.begin(), sums.end());
  // Each target's sums side by side in one accumulator: [target][2·C].
  std::vector<int64_t> at{0};
  for (const GradientSums& s : sums) at.push_back(at.back() + 2 * s.g.outChannels);
  // Input row r reads dy's rows ⌊(r + padTop) / strideH⌋ + gradTop back to `behind` rows before it.
  const int64_t behind = (g.kernelHeight - 1) / g.strideHeight;
  const std::vector<double> total = reduceChunkRows(l.chunks, g.inHeight, work, at.back(), [&](int64_t c, int64_t begin, int64_t end, double* acc) {
    const ConvGeometry gc = l.chunk(g, c);
    const PendingGrad own = transient ? ringed(*input, l, behind) : PendingGrad{};
    const LaneRows dyRows = transient ? rowsOf(own, l, c) : gradLaneRows(g, l, dyLanes + c * l.gradChunk(g));
    // The filter gradient's x: stored, or a transient input re-derived a few rows ahead into this thread's ring.
    const PendingLanes xOwn = weights && weights->x ? ringed(*weights->x, l) : PendingLanes{};
    const LaneRows xRows = !weights ? LaneRows{} : weights->x ? rowsOf(xOwn, l, c) : inputLaneRows(g, l, weights->xLanes + c * l.inputChunk(g));
    RowsAhead<PendingLanes> xAhead{weights && weights->x ? &xOwn : nullptr, c, l.inRows, Phase::kNormalizeToLanes};
    const float* add = addLanes ? addLanes + c * l.inputDataChunk(g) : nullptr;
    float* filterAcc = nullptr;
    if (fw) {
      // Zeroed by the thread's first chunk only: a thread may go on to another.
      const float*& mine = partial[omp_get_thread_num()];
      filterAcc = scratch(entries * kLaneWidth + 1, 3);
      if (!mine) std::fill(filterAcc, filterAcc + entries * kLaneWidth, 0.0f);
      mine = filterAcc;
    }
    RowsAhead<PendingGrad> dy{transient ? &own : input, c, l.gradRows, Phase::kBnGradientApply};
    int64_t filterRows = 0;  // output rows whose filter-gradient terms are added
    const auto filterUpTo = [&](int64_t oh) {
      for (; filterRows < std::min(oh, g.outHeight); filterRows++) {
        xAhead.upTo(filterRows * g.strideHeight + g.kernelHeight);
        PhaseScope gatherTime(Phase::kWeightsGather);
        backwardWeightsRows(g, l, *fw, xRows, dyRows, filterRows, filterRows + 1, filterAcc);
      }
    };
    for (int64_t r = begin; r < end; r++) {
      dy.upTo((r + g.padTop) / g.strideHeight + l.gradTop + 1);
      if (fw) filterUpTo(dy.ready - l.gradTop);
      if (dxInLanes)
        gatherRowsToLanes(gc, l, f, dyRows, r, r + 1, dx + c * dxChunk, add, gateLanes ? gateLanes + c * l.inputChunk(g) : nullptr);
      else
        gatherRows(true, gc, l, f, dyRows, r, r + 1, scratch(g.inWidth * g.inChannels * l.lanes), dx + c * dxChunk, add);
      for (size_t k = 0; k < targets.size(); k++) targets[k].rowSums(c, r, dx + c * dxChunk, acc + at[k]);
    }
    // dy's rows no input row reads (but the filter gradient's output rows may).
    for (int64_t oh = filterRows; fw && oh < g.outHeight; oh++) {
      dy.upTo(oh + l.gradTop + 1);
      filterUpTo(oh + 1);
    }
    if (!transient) dy.rest();
  });
  for (size_t k = 0; k < sums.size(); k++) std::copy(total.begin() + at[k], total.begin() + at[k + 1], sums[k].out);
  if (fw) {
    PhaseScope reduceTime(Phase::kWeightsReduce);
    forRowRanges(entries, static_cast<int64_t>(partial.size()) * kLaneWidth,
                 [&](int64_t begin, int64_t end, int) { reduceFilterGradient(*fw, partial, begin, end, weights->dw); });
  }
}

void sparseConvBackwardWeights(const ConvGeometry& g, const float* xLanes, const float* dyLanes, const float* active, float* dw,
                               const PendingGrad* input) {
  const LaneLayout l(g);
  const CompressedFilter& f = byOutputChannel(g, l, nullptr, active);
  std::memset(dw, 0, sizeof(float) * g.kernelHeight * g.kernelWidth * g.inChannels * g.outChannels);
  // The rows of all chunks split between the threads, each with partial sums for every active weight,
  // added in thread order: each thread reads only its share of x and dy (a split by output channel made
  // every thread stream all of both, and the kernel is bound by those reads).
  const int64_t total = f.start.back(), rows = l.chunks * g.outHeight;
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threadsFor(total * rows * g.outWidth * l.lanes), rows)));
  // A transient dy (no dyLanes) goes row by row through each thread's own ring: output row oh reads dy's row
  // oh + gradTop alone, so any split of the rows works. A stored one needs whole chunks per thread.
  const bool transient = input && !input->dyLanes;
  if (input && !transient && l.chunks % threads != 0) {
    writePendingGrad(*input);
    input = nullptr;
  }
  std::vector<const float*> partial(threads);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    float* acc = scratch(total * kLaneWidth + 1);
    partial[t] = acc;
    std::fill(acc, acc + total * kLaneWidth, 0.0f);
    const PendingGrad own = transient ? ringed(*input, l, 0) : PendingGrad{};
    for (int64_t i = rows * t / n, end = rows * (t + 1) / n; i < end;) {
      const int64_t c = i / g.outHeight, first = i - c * g.outHeight, stop = std::min(end, (c + 1) * g.outHeight);
      // Output row oh reads dy's grad-lanes row oh + gradTop.
      RowsAhead<PendingGrad> dy{transient ? &own : input, c, l.gradRows, Phase::kBnGradientApply};
      if (transient) dy.ready = first + l.gradTop;
      const LaneRows dyRows = transient ? rowsOf(own, l, c) : gradLaneRows(g, l, dyLanes + c * l.gradChunk(g));
      const LaneRows xRows = inputLaneRows(g, l, xLanes + c * l.inputChunk(g));
      for (int64_t oh = first; oh < stop - c * g.outHeight; oh++) {
        dy.upTo(oh + l.gradTop + 1);
        PhaseScope gatherTime(Phase::kWeightsGather);
        backwardWeightsRows(g, l, f, xRows, dyRows, oh, oh + 1, acc);
      }
      if (!transient) dy.rest();
      i = stop;
    }
#pragma omp barrier
    PhaseScope reduceTime(Phase::kWeightsReduce);
    reduceFilterGradient(f, partial, total * t / n, total * (t + 1) / n, dw);
  }
}

// ---- fused BatchNorm (sparseConvBnForward / sparseConvBnBackward) -----------------------------------------

namespace {

// BatchNorm's per-channel affine map. One helper for the forward pass and for the backward pass's
// re-computation of the ReLU decision: the same expression compiled the same way gives the same bits.
CIGL_INLINE v16 affine(v16 y, float a, float b) { return y * a + b; }
CIGL_INLINE v16 reluOf(v16 v) { return v > v16{} ? v : v16{}; }

// Zeroes the padding lanes of a chunk: after its images (`batch`, the chunk's), the rest of their lane
// vector and, in a chunk that is not full, whole vectors.
struct PaddingLanes {
  int64_t full;  // lane vectors with an image in every lane
  v16 mask[kChunkLanes / kLaneWidth];
  explicit PaddingLanes(int64_t batch) : full(batch / kLaneWidth) {
    for (int64_t v = 0; v < kChunkLanes / kLaneWidth; v++)
      for (int i = 0; i < 16; i++) mask[v][i] = v * kLaneWidth + i < batch ? 1.0f : 0.0f;
  }
  CIGL_INLINE v16 zeroed(v16 x, int64_t v) const { return v < full ? x : x * mask[v]; }
};

// The forward pass's scale and shift from the (float) batch statistics; the backward pass calls it too.
void affineOf(int64_t C, const float* mean, const float* variance, const float* gamma, const float* beta, float epsilon, float* a, float* b) {
  for (int64_t c = 0; c < C; c++) {
    const double scale = gamma[c] / std::sqrt(static_cast<double>(variance[c]) + epsilon);
    a[c] = static_cast<float>(scale);
    b[c] = static_cast<float>(beta[c] - static_cast<double>(mean[c]) * scale);
  }
}

// Adds Σ (y − pivot) and Σ (y − pivot)² over one output row of y in lanes ([ow][c][lanes]) to acc[c]
// and acc[C + c]. Float partial sums per row (≤ a few thousand values per lane), doubles across rows.
CIGL_MULTIVERSION
void rowMoments(const float* row, int64_t width, int64_t C, int64_t lanes, int64_t batch, const float* pivot, double* acc) {
  const int64_t vectors = lanes / kLaneWidth;
  const PaddingLanes padding(batch);
  for (int64_t c = 0; c < C; c++) {
    v16 s{}, q{};
    const v16 p = v16{} + pivot[c];
    for (int64_t w = 0; w < width; w++) {
      const float* y = row + (w * C + c) * lanes;
      for (int64_t v = 0; v < vectors; v++) {
        v16 d = load16(y + v * kLaneWidth) - p;
        d = padding.zeroed(d, v);
        s += d;
        q += d * d;
      }
    }
    acc[c] += sum16(s);
    acc[C + c] += sum16(q);
  }
}

// Output rows [begin, end) of the convolution straight into yLanes, with their moments.
CIGL_MULTIVERSION
void forwardRowsToLanes(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const LaneRows& x, int64_t begin,
                        int64_t end, float* yLanes, const float* pivot, double* acc) {
  const int64_t rowSize = g.outWidth * g.outChannels * l.lanes;
  for (int64_t r = begin; r < end; r++) {
    float* row = yLanes + r * rowSize;
    PhaseScope gatherTime(Phase::kForwardGather);
    for (int64_t v = 0, n; v < l.lanes / kLaneWidth; v += n) {
      n = vectorsPerCall(l.lanes / kLaneWidth, v);
      const int64_t lane0 = v * kLaneWidth;
#define CIGL_CALL(V) forwardRow<V>(g, l, f, x, r, lane0, row)
      CIGL_DISPATCH_V(n, CIGL_CALL)
#undef CIGL_CALL
    }
    gatherTime.stop();
    if (!acc) continue;
    PhaseScope momentsTime(Phase::kForwardMoments);
    rowMoments(row, g.outWidth, g.outChannels, l.lanes, g.batch, pivot, acc);
  }
}

// An identity shortcut held in the padded input lanes of another convolution (`geometry`, whose input
// has this one's output shape): where output row r starts in it.
struct SkipLanes {
  const float* lanes;
  const ConvGeometry* geometry;
  // The same skip for chunk c alone (the same chunk of the geometry's input lanes).
  SkipLanes ofChunk(int64_t c) const { return {lanes + c * LaneLayout(*geometry).inputChunk(*geometry), geometry}; }
  const float* row(int64_t r, const LaneLayout& own) const {
    const LaneLayout ls(*geometry);
    return lanes + ((r + geometry->padTop) * ls.inCols + geometry->padLeft) * geometry->inChannels * own.lanes;
  }
};

// z rows [begin, end) (NHWC) = act(a·y + b) from y in lanes: fromLanes with BatchNorm applied on the way.
// With `skip` (NHWC, z's shape), z = act(a·y + b + skip); with skipLanes the same, the skip read in lanes.
CIGL_MULTIVERSION
void normalizeRows(const ConvGeometry& g, const LaneLayout& l, const float* yLanes, const float* a, const float* b, bool relu,
                   const float* skip, const SkipLanes* skipLanes, int64_t begin, int64_t end, float* z) {
  const int64_t C = g.outChannels, columns = g.outWidth * C, plane = g.outHeight * columns;
  // Without a skip the activation is applied before the transpose, with one after adding it (a skip in
  // lanes is added before the transpose).
  const bool reluFirst = relu && !skip;
  for (int64_t r = begin; r < end; r++) {
    const float* src = yLanes + r * columns * l.lanes;
    float* dst = z + r * columns;
    const float* skipRow = skip ? skip + r * columns : nullptr;
    const float* skipLaneRow = skipLanes ? skipLanes->row(r, l) : nullptr;
    for (int64_t nb = 0; nb < g.batch; nb += kLaneWidth) {
      for (int64_t jb = 0; jb < columns; jb += kLaneWidth) {
        const int64_t jn = std::min<int64_t>(kLaneWidth, columns - jb);
        if (jn == kLaneWidth && nb + kLaneWidth <= g.batch) {
          v16 t[16];
          for (int j = 0; j < 16; j++) {
            const int64_t c = (jb + j) % C;
            v16 v = affine(load16(src + (jb + j) * l.lanes + nb), a[c], b[c]);
            if (skipLaneRow) v = v + load16(skipLaneRow + (jb + j) * l.lanes + nb);
            t[j] = reluFirst ? reluOf(v) : v;
          }
          transpose16(t);
          if (skipRow) {
            for (int i = 0; i < 16; i++) {
              const v16 v = t[i] + load16(skipRow + (nb + i) * plane + jb);
              t[i] = relu ? reluOf(v) : v;
            }
          }
          for (int i = 0; i < 16; i++) store16(dst + (nb + i) * plane + jb, t[i]);
        } else {
          // Edge block: whole lane vectors through the same helper, then the images that exist.
          const int64_t nEnd = std::min<int64_t>(nb + kLaneWidth, g.batch);
          for (int64_t j = 0; j < jn; j++) {
            const int64_t c = (jb + j) % C;
            v16 v = affine(load16(src + (jb + j) * l.lanes + nb), a[c], b[c]);
            if (skipLaneRow) v = v + load16(skipLaneRow + (jb + j) * l.lanes + nb);
            if (reluFirst) v = reluOf(v);
            for (int64_t n = nb; n < nEnd; n++) {
              float value = v[n - nb];
              if (skipRow) {
                value += skipRow[n * plane + jb + j];
                if (relu) value = value > 0.0f ? value : 0.0f;
              }
              dst[n * plane + jb + j] = value;
            }
          }
        }
      }
    }
  }
}

// std::max's choice on each lane (the second only where the first is smaller), as maxPool2Forward takes it.
CIGL_INLINE v16 maxOf(v16 p, v16 q) { return p < q ? q : p; }

// The activations act(a·y + b) of one 2×2 pooling window (top row t0 t1, bottom row b0 b1) at pixel
// offsets o0 and o1 = o0 + one pixel of two y rows in lanes. One helper for the pooled forward pass and
// the routing of its gradient, so both see the same bits and pick the same maxima.
struct Window {
  v16 t0, t1, b0, b1;
};
CIGL_INLINE Window windowOf(const float* top, const float* bottom, int64_t o0, int64_t o1, float a, float b, bool relu) {
  Window z{affine(load16(top + o0), a, b), affine(load16(top + o1), a, b), affine(load16(bottom + o0), a, b), affine(load16(bottom + o1), a, b)};
  if (relu) z = {reluOf(z.t0), reluOf(z.t1), reluOf(z.b0), reluOf(z.b1)};
  return z;
}

// Pooled rows [begin, end) of z (NHWC [n][⌊H/2⌋][⌊W/2⌋][C]) = the 2×2 max pool of act(a·y + b), from y in
// lanes: each window's four activations by normalizeRows's expressions, their maximum in maxPool2Forward's
// order, the row gathered in lanes in `tile` and transposed into NHWC while in cache.
CIGL_MULTIVERSION
void normalizeRowsPooled(const ConvGeometry& g, const LaneLayout& l, const float* yLanes, const float* a, const float* b, bool relu,
                         int64_t begin, int64_t end, float* tile, float* z) {
  const int64_t C = g.outChannels, vectors = l.lanes / kLaneWidth, pixel = C * l.lanes, rowSize = g.outWidth * pixel;
  const int64_t OH = g.outHeight / 2, OW = g.outWidth / 2;
  for (int64_t r = begin; r < end; r++) {
    const float* top = yLanes + 2 * r * rowSize;
    const float* bottom = top + rowSize;
    for (int64_t w = 0; w < OW; w++)
      for (int64_t c = 0; c < C; c++) {
        const int64_t o0 = (2 * w * C + c) * l.lanes, o1 = o0 + pixel;
        for (int64_t v = 0; v < vectors; v++) {
          const int64_t i = v * kLaneWidth;
          const Window z = windowOf(top + i, bottom + i, o0, o1, a[c], b[c], relu);
          store16(tile + (w * C + c) * l.lanes + i, maxOf(maxOf(z.t0, z.t1), maxOf(z.b0, z.b1)));
        }
      }
    fromLanes(tile, l.lanes, g.batch, OW * C, z + r * OW * C, OH * OW * C);
  }
}

// Padded input-lane rows [begin, end) of the next convolution (geometry `gn`, whose input is this
// layer's output) = act(a·y + b [+ skip]): BatchNorm applied lane to lane, no transpose; borders and
// padding lanes 0.
CIGL_MULTIVERSION
void normalizeRowsToLanes(const ConvGeometry& g, const LaneLayout& l, const float* yLanes, const float* a, const float* b, bool relu,
                          const SkipLanes* skipLanes, const ConvGeometry& gn, const LaneLayout& ln, int64_t begin, int64_t end, const LaneRows& next) {
  const int64_t C = g.outChannels, vectors = l.lanes / kLaneWidth, pixel = C * l.lanes;
  const PaddingLanes padding(g.batch);
  for (int64_t R = begin; R < end; R++) {
    const int64_t h = R - gn.padTop;
    float* zRow = padRow(next.row(R), ln.inCols, gn.padLeft, g.outWidth, pixel, h >= 0 && h < g.outHeight);
    if (!zRow) {
      mirrorRow(next, R);
      continue;
    }
    const float* yRow = yLanes + h * g.outWidth * pixel;
    const float* skipRow = skipLanes ? skipLanes->row(h, l) : nullptr;
    for (int64_t w = 0; w < g.outWidth; w++)
      for (int64_t c = 0; c < C; c++) {
        const int64_t o = (w * C + c) * l.lanes;
        for (int64_t v = 0; v < vectors; v++) {
          v16 z = affine(load16(yRow + o + v * kLaneWidth), a[c], b[c]);
          if (skipRow) z = z + load16(skipRow + o + v * kLaneWidth);
          if (relu) z = reluOf(z);
          z = padding.zeroed(z, v);
          store16(zRow + o + v * kLaneWidth, z);
        }
      }
    mirrorRow(next, R);
  }
}

// The upstream gradient through the ReLU: dz where the forward pass's a·y + b was positive.
CIGL_INLINE v16 throughRelu(v16 dz, v16 y, float a, float b, bool relu) { return relu ? (affine(y, a, b) > v16{} ? dz : v16{}) : dz; }

// Adds Σ g and Σ g·(y − mean) over output rows [begin, end) to acc[c], acc[C + c] (g = dz through the ReLU).
CIGL_MULTIVERSION
void gradientSumRows(const ConvGeometry& g, const LaneLayout& l, const float* dz, bool dzInLanes, const float* yLanes, const float* mean,
                     const float* a, const float* b, bool relu, int64_t begin, int64_t end, float* scratchTile, double* acc) {
  const int64_t C = g.outChannels, columns = g.outWidth * C, vectors = l.lanes / kLaneWidth;
  for (int64_t r = begin; r < end; r++) {
    // dz of this row in lanes (padding lanes 0: no contribution).
    const float* tile = dzInLanes ? dz + r * columns * l.lanes : scratchTile;
    if (!dzInLanes) toLanes(dz + r * columns, g.outHeight * columns, g.batch, columns, scratchTile, l.lanes);
    const float* yRow = yLanes + r * columns * l.lanes;
    for (int64_t c = 0; c < C; c++) {
      v16 sg{}, sgy{};
      const v16 m = v16{} + mean[c];
      for (int64_t w = 0; w < g.outWidth; w++) {
        const int64_t o = (w * C + c) * l.lanes;
        for (int64_t v = 0; v < vectors; v++) {
          const v16 y = load16(yRow + o + v * kLaneWidth);
          const v16 gv = throughRelu(load16(tile + o + v * kLaneWidth), y, a[c], b[c], relu);
          sg += gv;
          sgy += gv * (y - m);
        }
      }
      acc[c] += sum16(sg);
      acc[C + c] += sum16(sgy);
    }
  }
}

// A window's gradient d routed to its first maximum in maxPool2Backward's order, 0 at the other three: the
// one that takes d is the last of the four that beats every earlier one. Each choice is a select on a
// comparison (a comparison kept as a mask variable was compiled to scalar code).
CIGL_INLINE Window routedWindow(const Window& z, v16 d) {
  const v16 zero{}, m1 = maxOf(z.t0, z.t1), m2 = maxOf(m1, z.b0);
  const v16 notB1 = z.b1 > m2 ? zero : d, notB0 = z.b0 > m1 ? zero : notB1;
  return {z.t1 > z.t0 ? zero : notB0, z.t1 > z.t0 ? notB0 : zero, z.b0 > m1 ? notB1 : zero, z.b1 > m2 ? d : zero};
}

// Each 2×2 window of one pooled row (y rows `top` and `bottom`, the pooled gradient `pooled` in lanes
// [⌊W/2⌋][C][lanes]), its gradient routed (routedWindow) from the activations re-derived as
// normalizeRowsPooled derived them (the same bits, so the same maxima): visit(c, o0, o1, i, v, routed)
// with the window's pixel offsets o0 and o1 = o0 + one pixel and the lane offset i of vector v.
template <class Visit>
CIGL_INLINE void forEachRoutedWindow(const ConvGeometry& g, const LaneLayout& l, const float* pooled, const float* top, const float* bottom,
                                     const float* a, const float* b, bool relu, Visit& visit) {
  const int64_t C = g.outChannels, vectors = l.lanes / kLaneWidth, pixel = C * l.lanes, OW = g.outWidth / 2;
  for (int64_t w = 0; w < OW; w++)
    for (int64_t c = 0; c < C; c++) {
      const int64_t o0 = (2 * w * C + c) * l.lanes, o1 = o0 + pixel;
      for (int64_t v = 0; v < vectors; v++) {
        const int64_t i = v * kLaneWidth;
        visit(c, o0, o1, i, v, routedWindow(windowOf(top + i, bottom + i, o0, o1, a[c], b[c], relu), load16(pooled + (w * C + c) * l.lanes + i)));
      }
    }
}

// The routed gradient itself, into two full-size rows (gTop, gBottom, [W][C][lanes]).
struct StoreRouted {
  float *gTop, *gBottom;
  CIGL_INLINE void operator()(int64_t, int64_t o0, int64_t o1, int64_t i, int64_t, const Window& g) {
    store16(gTop + o0 + i, g.t0);
    store16(gTop + o1 + i, g.t1);
    store16(gBottom + o0 + i, g.b0);
    store16(gBottom + o1 + i, g.b1);
  }
};

// One pooled row of a max pool's gradient routed into the two full-size rows of its windows (gTop,
// gBottom): 0 away from each window's maximum and in a dropped odd last column.
CIGL_MULTIVERSION
void routeWindowRows(const ConvGeometry& g, const LaneLayout& l, const float* pooled, const float* top, const float* bottom, const float* a,
                     const float* b, bool relu, float* gTop, float* gBottom) {
  StoreRouted store{gTop, gBottom};
  forEachRoutedWindow(g, l, pooled, top, bottom, a, b, relu, store);
  if (g.outWidth % 2 == 1) {
    const int64_t pixel = g.outChannels * l.lanes;
    std::memset(gTop + (g.outWidth - 1) * pixel, 0, sizeof(float) * pixel);
    std::memset(gBottom + (g.outWidth - 1) * pixel, 0, sizeof(float) * pixel);
  }
}

// dy = g·A + y·B + K, 0 in padding lanes, with g = dz through the ReLU. One helper for every dy row.
CIGL_INLINE v16 dyOf(v16 dz, v16 y, float a, float b, bool relu, float A, float B, float K, const PaddingLanes& padding, int64_t v) {
  const v16 gv = throughRelu(dz, y, a, b, relu);
  return padding.zeroed(gv * A + y * B + K, v);
}

// dy from the routed gradient, into two rows of dy (interior columns).
struct StoreDy {
  const float *top, *bottom, *a, *b;
  bool relu;
  const float *A, *B, *K;
  PaddingLanes padding;
  float *dyTop, *dyBottom;
  CIGL_INLINE void operator()(int64_t c, int64_t o0, int64_t o1, int64_t i, int64_t v, const Window& g) {
    store16(dyTop + o0 + i, dyOf(g.t0, load16(top + o0 + i), a[c], b[c], relu, A[c], B[c], K[c], padding, v));
    store16(dyTop + o1 + i, dyOf(g.t1, load16(top + o1 + i), a[c], b[c], relu, A[c], B[c], K[c], padding, v));
    store16(dyBottom + o0 + i, dyOf(g.b0, load16(bottom + o0 + i), a[c], b[c], relu, A[c], B[c], K[c], padding, v));
    store16(dyBottom + o1 + i, dyOf(g.b1, load16(bottom + o1 + i), a[c], b[c], relu, A[c], B[c], K[c], padding, v));
  }
};

// Both full-size rows of one pooled row's windows of dy (interior columns, from dyTop and dyBottom): the
// pool's gradient (`pooled`, in lanes) routed as routeWindowRows routes it, straight into dyOf, without
// storing the routed rows.
CIGL_MULTIVERSION
void pooledDyPair(const ConvGeometry& g, const LaneLayout& l, const float* pooled, const float* top, const float* bottom, const float* a,
                  const float* b, bool relu, const float* A, const float* B, const float* K, float* dyTop, float* dyBottom) {
  const int64_t C = g.outChannels, vectors = l.lanes / kLaneWidth, pixel = C * l.lanes;
  const PaddingLanes padding(g.batch);
  StoreDy store{top, bottom, a, b, relu, A, B, K, padding, dyTop, dyBottom};
  forEachRoutedWindow(g, l, pooled, top, bottom, a, b, relu, store);
  if (g.outWidth % 2 == 0) return;
  // A dropped odd last column: no gradient reaches it.
  const int64_t o = (g.outWidth - 1) * pixel;
  for (int64_t c = 0; c < C; c++)
    for (int64_t v = 0; v < vectors; v++) {
      const int64_t i = o + c * l.lanes + v * kLaneWidth;
      store16(dyTop + i, dyOf(v16{}, load16(top + i), a[c], b[c], relu, A[c], B[c], K[c], padding, v));
      store16(dyBottom + i, dyOf(v16{}, load16(bottom + i), a[c], b[c], relu, A[c], B[c], K[c], padding, v));
    }
}

// Pooled rows [begin, end) of a max pool's gradient (dz NHWC [n][⌊H/2⌋][⌊W/2⌋][C]) into `pooledLanes`
// ([⌊H/2⌋][⌊W/2⌋][C][lanes]), and BatchNorm's gradient sums of the routed full-size gradient
// (routeWindowRows, two rows at a time in `routed`, 2·W·C·lanes floats of cache-resident scratch, then
// gradientSumRows). The routed gradient is never stored: dy's rows route it again from pooledLanes, a
// quarter of its size.
CIGL_MULTIVERSION
void poolGradRows(const ConvGeometry& g, const LaneLayout& l, const float* dz, const float* yLanes, const float* mean, const float* a,
                  const float* b, bool relu, int64_t begin, int64_t end, float* pooledLanes, float* routed, double* acc) {
  const int64_t C = g.outChannels, rowSize = g.outWidth * C * l.lanes, OH = g.outHeight / 2, OW = g.outWidth / 2;
  for (int64_t r = begin; r < end; r++) {
    float* pooled = pooledLanes + r * OW * C * l.lanes;
    toLanes(dz + r * OW * C, OH * OW * C, g.batch, OW * C, pooled, l.lanes);
    const float* top = yLanes + 2 * r * rowSize;
    routeWindowRows(g, l, pooled, top, top + rowSize, a, b, relu, routed, routed + rowSize);
    gradientSumRows(g, l, routed, true, top, mean, a, b, relu, 0, 2, nullptr, acc);
  }
}

// Padded grad-lanes rows [begin, end): dy = g·A + y·B + K inside, 0 on the borders and in padding lanes.
// g is dz through the ReLU; with `pooledLanes` dz is a max pool's gradient in lanes (poolGradRows), routed
// here again a window row pair at a time into `scratchTile` (2·W·C·lanes floats); otherwise dz is in
// lanes, or NHWC transposed a row at a time into `scratchTile`.
CIGL_MULTIVERSION
void gradientApplyRows(const ConvGeometry& g, const LaneLayout& l, const float* dz, bool dzInLanes, const float* pooledLanes, const float* yLanes,
                       const float* a, const float* b, bool relu, const float* A, const float* B, const float* K, int64_t begin, int64_t end,
                       float* scratchTile, const LaneRows& dy) {
  const int64_t C = g.outChannels, columns = g.outWidth * C, vectors = l.lanes / kLaneWidth, pixel = C * l.lanes;
  const PaddingLanes padding(g.batch);
  int64_t routedPair = -1;
  for (int64_t R = begin; R < end; R++) {
    const int64_t r = R - l.gradTop;
    float* dyRow = padRow(dy.row(R), l.gradCols, l.gradLeft, g.outWidth, pixel, r >= 0 && r < g.outHeight);
    if (!dyRow) {
      mirrorRow(dy, R);
      continue;
    }
    const float* tile = dzInLanes ? dz + r * columns * l.lanes : scratchTile;
    if (pooledLanes && r % 2 == 0 && R + 1 < end && r + 1 < g.outHeight / 2 * 2) {
      // Both rows of a window pair at once; a lone row of a pair (a range's edge) routes through the scratch below.
      float* dyBottom = padRow(dy.row(R + 1), l.gradCols, l.gradLeft, g.outWidth, pixel, true);
      const float* top = yLanes + r * columns * l.lanes;
      pooledDyPair(g, l, pooledLanes + r / 2 * (g.outWidth / 2) * pixel, top, top + columns * l.lanes, a, b, relu, A, B, K, dyRow, dyBottom);
      mirrorRow(dy, R);
      mirrorRow(dy, R + 1);
      R++;
      continue;
    }
    if (pooledLanes) {
      const int64_t pair = r / 2;
      if (pair >= g.outHeight / 2) {
        // A dropped odd last row: no gradient reaches it.
        if (routedPair != pair) std::memset(scratchTile, 0, sizeof(float) * columns * l.lanes);
        tile = scratchTile;
      } else {
        if (routedPair != pair) {
          const float* top = yLanes + 2 * pair * columns * l.lanes;
          routeWindowRows(g, l, pooledLanes + pair * (g.outWidth / 2) * pixel, top, top + columns * l.lanes, a, b, relu, scratchTile,
                          scratchTile + columns * l.lanes);
        }
        tile = scratchTile + (r % 2) * columns * l.lanes;
      }
      routedPair = pair;
    } else if (!dzInLanes) {
      toLanes(dz + r * columns, g.outHeight * columns, g.batch, columns, scratchTile, l.lanes);
    }
    const float* yRow = yLanes + r * columns * l.lanes;
    for (int64_t w = 0; w < g.outWidth; w++)
      for (int64_t c = 0; c < C; c++) {
        const int64_t o = (w * C + c) * l.lanes;
        for (int64_t v = 0; v < vectors; v++) {
          store16(dyRow + o + v * kLaneWidth, dyOf(load16(tile + o + v * kLaneWidth), load16(yRow + o + v * kLaneWidth), a[c], b[c], relu, A[c], B[c], K[c], padding, v));
        }
      }
    mirrorRow(dy, R);
  }
}

// Rows [begin, end) of chunk c of a pending output's destination (the consumer's padded input lanes).
void writePendingRows(const PendingLanes& p, int64_t c, int64_t begin, int64_t end) {
  const LaneLayout l(p.producer), ln(p.consumer);
  const SkipLanes skip = p.skipLanes ? SkipLanes{p.skipLanes, &p.skipGeometry}.ofChunk(c) : SkipLanes{};
  normalizeRowsToLanes(l.chunk(p.producer, c), l, p.yLanes + c * l.outputChunk(p.producer), p.a.data(), p.b.data(), p.relu,
                       p.skipLanes ? &skip : nullptr, p.consumer, ln, begin, end, rowsOf(p, ln, c));
}

LaneRows rowsOf(const PendingLanes& p, const LaneLayout& ln, int64_t c) {
  const int64_t rowSize = ln.inCols * p.consumer.inChannels * ln.lanes;
  return p.ringSlots ? LaneRows{p.lanes, rowSize, p.ringSlots, 0, p.ringAhead} : inputLaneRows(p.consumer, ln, p.lanes + c * ln.inputChunk(p.consumer));
}

PendingLanes ringed(const PendingLanes& input, const LaneLayout& ln) {
  PendingLanes p = input;
  p.ringAhead = input.consumer.kernelHeight - 1;
  // A reader of rows R … R + ahead, the rows it reads next written just before it reads them.
  p.ringSlots = input.consumer.kernelHeight + 1;
  p.lanes = scratch((p.ringSlots + p.ringAhead) * ln.inCols * input.consumer.inChannels * ln.lanes, 4);
  return p;
}

const float* wholeInput(const PendingLanes& p) {
  const LaneLayout ln(p.consumer);
  PendingLanes whole = p;
  whole.lanes = scratch(ln.chunks * ln.inputChunk(p.consumer), 6);
  writePending(whole);
  return whole.lanes;
}

// All of a pending output, in one pass.
void writePending(const PendingLanes& p) {
  PhaseScope time(Phase::kNormalizeToLanes);
  const LaneLayout l(p.producer), ln(p.consumer);
  forChunkRows(l.chunks, ln.inRows, perRow(outImage(p.producer) * l.lanes, ln.inRows),
               [&](int64_t c, int64_t begin, int64_t end, int) { writePendingRows(p, c, begin, end); });
}

// The forward gather into yLanes, with the moments' partial sums when `acc` (see forwardWithMoments). With a
// pending input whose chunks the threads own whole, each thread writes its chunk's input rows just
// ahead of the output rows that first read them.
void forwardRows(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const float* xLanes, float* yLanes,
                 const PendingLanes* input, int64_t c, int64_t begin, int64_t end, const float* pivot, double* acc) {
  const ConvGeometry gc = l.chunk(g, c);
  float* y = yLanes + c * l.outputChunk(g);
  if (!input) return forwardRowsToLanes(gc, l, f, inputLaneRows(g, l, xLanes + c * l.inputChunk(g)), begin, end, y, pivot, acc);
  const bool transient = !input->lanes;
  const PendingLanes own = transient ? ringed(*input, l) : PendingLanes{};
  const PendingLanes& source = transient ? own : *input;
  const LaneRows x = rowsOf(source, l, c);
  RowsAhead<PendingLanes> xRows{&source, c, l.inRows, Phase::kNormalizeToLanes};
  // Chunk 0's first window of a stored input is written before the region (the moments' pivot reads it).
  if (c == 0 && !transient) xRows.ready = std::min(l.inRows, g.kernelHeight);
  for (int64_t r = begin; r < end; r++) {
    xRows.upTo(r * g.strideHeight + g.kernelHeight);
    forwardRowsToLanes(gc, l, f, x, r, r + 1, y, pivot, acc);
  }
  if (!transient) xRows.rest();
}

// The convolution into yLanes with the batch mean and (biased) variance of its output channels (with
// `acc` null: evaluation, no moments). A pending input is written on the way (forwardRows), or first
// in one pass when threads would share a chunk.
void forwardWithMoments(const ConvGeometry& g, const LaneLayout& l, const CompressedFilter& f, const float* xLanes, float* yLanes,
                        const PendingLanes* input, float* mean, float* variance) {
  const int64_t C = g.outChannels, work = f.start.back() * g.outWidth * l.lanes;
  if (input && !threadsOwnChunks(l.chunks, g.outHeight, work)) {
    PhaseScope time(Phase::kNormalizeToLanes);
    if (input->lanes) writePending(*input);
    else xLanes = wholeInput(*input);
    input = nullptr;
  }
  // The moments' pivot reads chunk 0's first window (rows [0, kernelHeight)).
  const float* window = xLanes;
  const PendingLanes first = input && !input->lanes ? ringed(*input, l) : PendingLanes{};
  if (input) {
    PhaseScope time(Phase::kNormalizeToLanes);
    writePendingRows(input->lanes ? *input : first, 0, 0, std::min(l.inRows, g.kernelHeight));
    if (!input->lanes) window = rowsOf(first, l, 0).row(0);
  }
  if (!mean) {
    forChunkRows(l.chunks, g.outHeight, work, [&](int64_t c, int64_t begin, int64_t end, int) {
      forwardRows(g, l, f, xLanes, yLanes, input, c, begin, end, nullptr, nullptr);
    });
    return;
  }
  // Moments are taken about a sample of each channel (image 0 at output position (0, 0)) so that the
  // variance E[(y − p)²] − E[y − p]² does not cancel when the mean is large against the spread.
  std::vector<float> pivot(C, 0.0f);
  const KernelRows rows = kernelRowsOnData(g, 0);
  for (int64_t co = 0; co < C; co++)
    for (int64_t e = f.first(co, rows.lo), end = f.last(co, rows.hi); e < end; e++) pivot[co] += f.value[e] * window[f.offset[e]];
  const std::vector<double> sums = reduceChunkRows(l.chunks, g.outHeight, work, 2 * C, [&](int64_t c, int64_t begin, int64_t end, double* acc) {
    forwardRows(g, l, f, xLanes, yLanes, input, c, begin, end, pivot.data(), acc);
  });
  const double count = static_cast<double>(g.batch) * g.outHeight * g.outWidth;
  for (int64_t c = 0; c < C; c++) {
    const double shifted = sums[c] / count;
    mean[c] = static_cast<float>(pivot[c] + shifted);
    variance[c] = static_cast<float>(std::max(0.0, sums[C + c] / count - shifted * shifted));
  }
}

SumsTarget::SumsTarget(const GradientSums& t) : target(&t), a(t.g.outChannels), b(t.g.outChannels) {
  affineOf(t.g.outChannels, t.mean, t.variance, t.gamma, t.beta, t.epsilon, a.data(), b.data());
}

void SumsTarget::rowSums(int64_t c, int64_t r, const float* dz, double* acc) const {
  PhaseScope time(Phase::kBnGradientSums);
  const ConvGeometry& g = target->g;
  const LaneLayout l(g);
  gradientSumRows(l.chunk(g, c), l, dz, true, target->yLanes + c * l.outputChunk(g), target->mean, a.data(), b.data(), target->relu, r, r + 1, nullptr, acc);
}

void writePendingRows(const PendingGrad& p, int64_t c, int64_t begin, int64_t end) {
  const LaneLayout l(p.g);
  const int64_t rowSize = p.g.outWidth * p.g.outChannels * l.lanes;
  gradientApplyRows(l.chunk(p.g, c), l, p.pooled ? nullptr : outputChunkOf(p.dz, p.dzInLanes, l, p.g, c), p.dzInLanes,
                    p.pooled ? p.dz + c * l.outputChunk(p.g) : nullptr, p.yLanes + c * l.outputChunk(p.g), p.a.data(), p.b.data(), p.relu,
                    p.A.data(), p.B.data(), p.K.data(), begin, end, scratch((p.pooled ? 2 : 1) * rowSize, 1), rowsOf(p, l, c));
}

LaneRows rowsOf(const PendingGrad& p, const LaneLayout& l, int64_t c) {
  const int64_t rowSize = l.gradCols * p.g.outChannels * l.lanes;
  return p.ringSlots ? LaneRows{p.dyLanes, rowSize, p.ringSlots, p.ringBehind} : LaneRows{p.dyLanes + c * l.gradChunk(p.g), rowSize};
}

int64_t pendingRowsEnd(const PendingGrad& p, int64_t end) {
  if (!p.pooled) return end;
  const int64_t r = end - 1 - LaneLayout(p.g).gradTop;
  return r >= 0 && r % 2 == 0 && r + 1 < p.g.outHeight / 2 * 2 ? end + 1 : end;
}

void writePendingGrad(const PendingGrad& p) {
  PhaseScope time(Phase::kBnGradientApply);
  const LaneLayout l(p.g);
  forChunkRows(l.chunks, l.gradRows, perRow(outImage(p.g) * l.lanes, l.gradRows),
               [&](int64_t c, int64_t begin, int64_t end, int) { writePendingRows(p, c, begin, end); });
}

}  // namespace

void sparseConvBnForward(const ConvGeometry& g, const BatchNormEpilogue& bn, const float* x, const float* w, const float* active,
                         const float* gamma, const float* beta, float* z, float* mean, float* variance, float* xLanes, float* yLanes,
                         const ConvGeometry* next, float* nextLanes, const float* skip, const float* skipLanes,
                         const ConvGeometry* skipGeometry, PendingLanes* deferTo, const PendingLanes* input) {
  const LaneLayout l(g);
  const int64_t C = g.outChannels;
  if (x) inputToLanes(g, l, x, xLanes);
  const CompressedFilter& f = byOutputChannel(g, l, w, active);
  // In evaluation mean and variance are the running statistics to normalise with: no batch moments.
  forwardWithMoments(g, l, f, xLanes, yLanes, input, bn.inference ? nullptr : mean, bn.inference ? nullptr : variance);
  std::vector<float> a(C), b(C);
  affineOf(C, mean, variance, gamma, beta, bn.epsilon, a.data(), b.data());
  if (next) {
    PendingLanes pending{g, *next, std::move(a), std::move(b), bn.relu, yLanes, skipLanes, skipGeometry ? *skipGeometry : ConvGeometry{}, nextLanes};
    if (deferTo) *deferTo = std::move(pending);
    else writePending(pending);
  } else if (bn.pool2) {
    PhaseScope time(Phase::kNormalizeToNhwc);
    const int64_t pooledImage = g.outHeight / 2 * (g.outWidth / 2) * C;
    forChunkRows(l.chunks, g.outHeight / 2, 2 * g.outWidth * C * l.lanes, [&](int64_t c, int64_t begin, int64_t end, int) {
      normalizeRowsPooled(l.chunk(g, c), l, yLanes + c * l.outputChunk(g), a.data(), b.data(), bn.relu, begin, end,
                          scratch(g.outWidth / 2 * C * l.lanes), z + l.firstImage(c) * pooledImage);
    });
  } else {
    PhaseScope time(Phase::kNormalizeToNhwc);
    forChunkRows(l.chunks, g.outHeight, g.outWidth * C * l.lanes, [&](int64_t c, int64_t begin, int64_t end, int) {
      const SkipLanes skipInLanes = skipLanes ? SkipLanes{skipLanes, skipGeometry}.ofChunk(c) : SkipLanes{};
      const int64_t image = l.firstImage(c) * outImage(g);
      normalizeRows(l.chunk(g, c), l, yLanes + c * l.outputChunk(g), a.data(), b.data(), bn.relu, skip ? skip + image : nullptr,
                    skipLanes ? &skipInLanes : nullptr, begin, end, z + image);
    });
  }
}

PendingLanes sparseConvPendingInput(const ConvGeometry& producer, const ConvGeometry& consumer, const BatchNormEpilogue& bn, const float* yLanes,
                                    const float* mean, const float* variance, const float* gamma, const float* beta) {
  const int64_t C = producer.outChannels;
  std::vector<float> a(C), b(C);
  affineOf(C, mean, variance, gamma, beta, bn.epsilon, a.data(), b.data());
  return PendingLanes{producer, consumer, std::move(a), std::move(b), bn.relu, yLanes, nullptr, ConvGeometry{}, nullptr};
}

void sparseConvBnBackward(const ConvGeometry& g, const BatchNormEpilogue& bn, const float* dz, bool dzInLanes, const float* yLanes,
                          const float* mean, const float* variance, const float* gamma, const float* beta, float* dyLanes, float* dgamma,
                          float* dbeta, float* poolLanes, PendingGrad* deferTo, const double* givenSums) {
  const LaneLayout l(g);
  const int64_t C = g.outChannels, columns = g.outWidth * C;
  std::vector<float> a(C), b(C);
  affineOf(C, mean, variance, gamma, beta, bn.epsilon, a.data(), b.data());
  std::vector<double> sums;
  if (bn.pool2) {
    // dz (NHWC, pooled) goes into poolLanes once, in lanes; dy's rows route it to the windows' maxima from there.
    PhaseScope routeTime(Phase::kPoolGradToLanes);
    const int64_t pooledRows = g.outHeight / 2, pooledImage = pooledRows * (g.outWidth / 2) * C;
    sums = reduceChunkRows(l.chunks, pooledRows, 2 * columns * l.lanes, 2 * C, [&](int64_t c, int64_t begin, int64_t end, double* acc) {
      poolGradRows(l.chunk(g, c), l, dz + l.firstImage(c) * pooledImage, yLanes + c * l.outputChunk(g), mean, a.data(), b.data(), bn.relu,
                   begin, end, poolLanes + c * l.outputChunk(g), scratch(2 * columns * l.lanes), acc);
    });
    dz = poolLanes;
    dzInLanes = false;
  } else if (givenSums) {
    sums.assign(givenSums, givenSums + 2 * C);
  } else {
    PhaseScope sumsTime(Phase::kBnGradientSums);
    sums = reduceChunkRows(l.chunks, g.outHeight, columns * l.lanes, 2 * C, [&](int64_t c, int64_t begin, int64_t end, double* acc) {
      gradientSumRows(l.chunk(g, c), l, outputChunkOf(dz, dzInLanes, l, g, c), dzInLanes, yLanes + c * l.outputChunk(g), mean, a.data(), b.data(), bn.relu, begin, end,
                      scratch(columns * l.lanes), acc);
    });
  }
  std::vector<float> A(C), B(C), K(C);
  batchNormBackwardCoefficients(C, static_cast<double>(g.batch) * g.outHeight * g.outWidth, sums.data(), mean, variance, gamma, bn.epsilon,
                                A.data(), B.data(), K.data(), dgamma, dbeta);
  PendingGrad pending{g, dz, dzInLanes, bn.pool2, yLanes, bn.relu, std::move(a), std::move(b), std::move(A), std::move(B), std::move(K), dyLanes};
  if (deferTo) *deferTo = std::move(pending);
  else writePendingGrad(pending);
}

void reluGradToLanes(const ConvGeometry& g, const float* dz, const float* out, float* gLanes) {
  const LaneLayout l(g);
  const int64_t columns = g.outWidth * g.outChannels, plane = g.outHeight * columns;
  PhaseScope time(Phase::kReluGradToLanes);
  forChunkRows(l.chunks, g.outHeight, columns * l.lanes, [&](int64_t c, int64_t begin, int64_t end, int) {
    const int64_t image = l.firstImage(c) * plane, batch = l.chunk(g, c).batch;
    for (int64_t r = begin; r < end; r++)
      toLanesGated(dz + image + r * columns, out + image + r * columns, plane, batch, columns, gLanes + c * l.outputChunk(g) + r * columns * l.lanes,
                   l.lanes);
  });
}

}  // namespace cigl
