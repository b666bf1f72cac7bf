// Sparse 2-D convolution for masked layers (SparseProp-style): only the active weights are visited, and
// every active weight drives vector FMAs over the batch. Activations therefore live in a "lanes" layout
// with the batch innermost, spatially zero-padded so that no inner loop needs a bounds check:
//   input lanes  [chunk][inRows][inCols][inChannels][lanes]   (x padded as the convolution pads it)
//   grad lanes   [chunk][gradRows][gradCols][outChannels][lanes] (dy padded for the transposed gather)
// The batch is split into equal chunks of at most 64 lanes (lanes.h, LaneChunks: 128 images are two
// chunks of 64, 19 one chunk of 32; lanes after a chunk's images hold zeros), stored one after the other:
// a gather then reads one chunk's contiguous 256-byte runs, and with two threads each works on its own
// chunk. Results are written straight into the tfjs layouts (NHWC activations, HWIO filters), so the
// callers see the same tensors as the dense path.
//
// The active set comes from `active` (same shape as the filter, nonzero = active), not from the weight
// values: a freshly grown weight is exactly 0 and must still get its gradient. Inactive positions get a
// zero filter gradient. The compressed filter is rebuilt at every call: O(filter size), negligible next
// to the convolution, and it makes CigL's per-step random mask free.
#pragma once
#include <cstdint>
#include <vector>

#include "conv.h"

namespace cigl {

// Element counts of the lane buffers for a geometry: input (padded x), grad (padded dy), output (y,
// unpadded: [chunk][outRows][outCols][outChannels][lanes]).
int64_t sparseConvInputLanesSize(const ConvGeometry& g);
int64_t sparseConvGradLanesSize(const ConvGeometry& g);
int64_t sparseConvOutputLanesSize(const ConvGeometry& g);
// x's shape in lanes, unpadded ([inHeight][inWidth][inChannels][lanes] per chunk): the input gradient in lanes.
int64_t sparseConvInputDataLanesSize(const ConvGeometry& g);

// y = conv(x, w ⊙ [active ≠ 0]); also writes x in the input-lanes layout (kept for the filter gradient).
void sparseConvForward(const ConvGeometry& g, const float* x, const float* w, const float* active, float* y, float* xLanes);
// dy (NHWC) in the grad-lanes layout, shared by the two backward passes.
void sparseConvGradToLanes(const ConvGeometry& g, const float* dy, float* dyLanes);
// dx = ∂L/∂x through the active weights only: NHWC, or with dxInLanes in lanes ([chunk][inH][inW][inC][lanes]).
// With `addLanes` (x's shape in lanes, as dx) it is added on the way out: the gradient of
// an identity shortcut around the layer (reluGradToLanes of the join). With `gateLanes` (lanes dx only:
// this convolution's padded input lanes, xLanes) the result is kept only where x > 0: the ReLU backward
// of the residual join that produced x, when x never left the lane layout.
// With `input` (a pending dy, see PendingGrad, for dyLanes), dyLanes is written on the way. With `sums`
// (dx in lanes only), the BatchNorm gradient sums of the layers whose output gradient dx is are taken
// from each row as it is written (GradientSums), for their sparseConvBnBackward.
// With `weights`, the filter gradient too (dw, from x's lanes), each dy row used for both right after it
// is written: then a transient pending dy (its dyLanes null, and dyLanes here null) is only ever held a
// few rows at a time.
struct PendingGrad;
struct GradientSums;
struct PendingLanes;
struct FilterGradient {
  const float* xLanes = nullptr;  // x's padded input lanes, stored
  const PendingLanes* x = nullptr;  // or x re-derived (a transient PendingLanes), a few rows ahead of the gather
  float* dw = nullptr;
};
void sparseConvBackwardData(const ConvGeometry& g, const float* dyLanes, const float* w, const float* active, float* dx, bool dxInLanes = false,
                            const float* addLanes = nullptr, const float* gateLanes = nullptr, const PendingGrad* input = nullptr,
                            const std::vector<GradientSums>& sums = {}, const FilterGradient* weights = nullptr);
// dw = ∂L/∂w at the active positions, 0 elsewhere; with `input`, dyLanes is written on the way, or with a
// transient pending dy (its dyLanes null, and dyLanes here null), only ever held a row or two at a time.
void sparseConvBackwardWeights(const ConvGeometry& g, const float* xLanes, const float* dyLanes, const float* active, float* dw,
                               const PendingGrad* input = nullptr);

// Sparse convolution fused with training-mode BatchNorm (+ ReLU). The convolution's output y never
// leaves the lane layout: the forward pass computes it into yLanes (kept for the backward pass), takes
// the batch statistics from it while each row is still in cache, and writes z = act(BN(y)) in NHWC in
// one transposing pass. The backward pass reads dz (NHWC) and yLanes, re-derives the ReLU decision from
// y (the same expression as the forward pass, so the same decision), and writes dy straight into the
// padded grad-lanes layout the two convolution gradients read. Per layer this saves writing y and dy in
// NHWC, re-reading them, the transposes between, and reading z in the backward pass.
struct BatchNormEpilogue {
  float epsilon;
  bool relu;
  // Evaluation: mean and variance are the running statistics to normalise with (read, not written), and
  // no batch moments are taken; yLanes is then only scratch.
  bool inference = false;
  // A 2×2 max pool (stride 2, odd last row and column dropped) after the activation: forward, z is the
  // pooled map, NHWC [n][⌊H/2⌋][⌊W/2⌋][C], and the full-size activation is never written; backward, dz
  // has that shape and goes to each window's first maximum in the order (0,0), (0,1), (1,0), (1,1), as
  // maxPool2Backward routes it, the maxima re-derived from y by the forward pass's expressions.
  bool pool2 = false;
};
// Chained layers (a pair conv → BN → conv → BN, the second reading only the first's output) stay in
// lanes between them: with x null, xLanes already holds the input (the previous layer's nextLanes);
// with `next`, z is written into `nextLanes`, the padded input lanes of the next convolution, instead of
// NHWC (z may then be null). With `skip` (NHWC, z's shape; not with `next`), z = act(BN(y) + skip): an
// identity residual join folded into the same pass. With `skipLanes` instead, the skip is read from the
// padded input lanes of `skipGeometry` (a convolution whose input has z's shape: the block's first), and
// z may go to NHWC or to `nextLanes`: a run of residual blocks whose activations stay in lanes.
//
// A chained layer's output can also be left pending (`deferTo`, with `next`): instead of a pass that
// writes all of nextLanes, the next convolution's forward pass (`input`, x null, xLanes = nextLanes)
// writes each row of its input lanes just before its gather first reads it, so the gather finds the
// row in cache rather than in memory. The values written are the same either way (BatchNorm's scale and
// shift are copied in). A pending output must go to that next call before anything else reads nextLanes
// or changes yLanes or the skip.
struct PendingLanes {
  ConvGeometry producer{}, consumer{};
  std::vector<float> a, b;  // BatchNorm's per-channel scale and shift, as the forward pass applies them
  bool relu = false;
  const float* yLanes = nullptr;
  const float* skipLanes = nullptr;
  ConvGeometry skipGeometry{};
  // The consumer's input lanes (nextLanes); null: a transient input, which its consumer writes a few rows
  // at a time into a ring of its own (ringSlots, ringAhead: set in the consumer's copy) just ahead of its
  // gather, never stored whole.
  float* lanes = nullptr;
  int64_t ringSlots = 0, ringAhead = 0;
};
void sparseConvBnForward(const ConvGeometry& g, const BatchNormEpilogue& bn, const float* x, const float* w, const float* active,
                         const float* gamma, const float* beta, float* z, float* mean, float* variance, float* xLanes, float* yLanes,
                         const ConvGeometry* next = nullptr, float* nextLanes = nullptr, const float* skip = nullptr,
                         const float* skipLanes = nullptr, const ConvGeometry* skipGeometry = nullptr, PendingLanes* deferTo = nullptr,
                         const PendingLanes* input = nullptr);
// The consumer's input lanes as the producer's forward pass left them pending (act(a·y + b) from its yLanes
// and batch statistics, no skip), transient: for a backward pass (FilterGradient::x) that re-derives them
// a few rows ahead of its gather instead of keeping them from the forward pass. The same bits.
PendingLanes sparseConvPendingInput(const ConvGeometry& producer, const ConvGeometry& consumer, const BatchNormEpilogue& bn, const float* yLanes,
                                    const float* mean, const float* variance, const float* gamma, const float* beta);
// dyLanes (the grad-lanes layout, borders zeroed), dgamma, dbeta from dz and the forward's yLanes and batch
// statistics; dz in NHWC, or with dzInLanes in the output-lanes layout (the next layer's input gradient).
// With bn.pool2, dz is the pooled map's gradient (NHWC): `poolLanes` (output-lanes size) receives it in
// lanes in the pass that takes BatchNorm's gradient sums, and dy's rows route it to the windows' maxima
// from there (the full-size routed gradient is never stored).
//
// dy can also be left pending (`deferTo`): the batch sums and dgamma, dbeta are taken now, but dyLanes is
// written by the first convolution gradient that reads it (sparseConvBackwardData or
// sparseConvBackwardWeights, `input`), each row just before it first reads the row, so the gather finds
// it in cache. The values are the same either way (the coefficients are copied in). A pending dy must go
// to that call before anything else reads dyLanes or changes dz or yLanes (dz: poolLanes with pool2).
struct PendingGrad {
  ConvGeometry g{};
  const float* dz = nullptr;  // in lanes or NHWC, as given; with pool2 poolLanes
  bool dzInLanes = false;
  bool pooled = false;  // dz is a max pool's gradient in lanes, [⌊H/2⌋][⌊W/2⌋][C][lanes] per chunk
  const float* yLanes = nullptr;
  bool relu = false;
  std::vector<float> a, b;     // the forward pass's BatchNorm scale and shift (for the ReLU decision)
  std::vector<float> A, B, K;  // dy = g·A + y·B + K per channel
  // Null: a transient dy, read only by the filter gradient (sparseConvBackwardWeights given no dyLanes),
  // which writes each row into a ring of its own just before reading it; dy is never stored whole.
  float* dyLanes = nullptr;
  // Set by the consumer of a transient dy for its own copy: dyLanes is then its ring (DyRows).
  int64_t ringSlots = 0, ringBehind = 0;
};
// The gradient sums (Σ g, Σ g·(y − mean) per channel, g = dz through the ReLU) that sparseConvBnBackward
// takes from dz, taken instead by the gather that writes dz in lanes (sparseConvBackwardData's `sums`),
// while each row is in cache. For the layer of geometry g (dz has its output's shape), with its forward
// pass's yLanes and statistics; `out` receives 2·outChannels sums.
struct GradientSums {
  ConvGeometry g{};
  const float* yLanes = nullptr;
  const float *mean = nullptr, *variance = nullptr, *gamma = nullptr, *beta = nullptr;
  float epsilon = 0;
  bool relu = false;
  double* out = nullptr;
};
// With `sums` (from GradientSums.out, for this dz), the pass that takes them is skipped.
void sparseConvBnBackward(const ConvGeometry& g, const BatchNormEpilogue& bn, const float* dz, bool dzInLanes, const float* yLanes,
                          const float* mean, const float* variance, const float* gamma, const float* beta, float* dyLanes, float* dgamma,
                          float* dbeta, float* poolLanes = nullptr, PendingGrad* deferTo = nullptr, const double* sums = nullptr);
// A residual join's ReLU backward into output lanes: gLanes = dz ⊙ [out > 0] with dz and out NHWC of the
// convolution's output shape. Feeds sparseConvBnBackward (dzInLanes) and, for an identity shortcut, the
// block input's gradient (sparseConvBackwardData's addLanes).
void reluGradToLanes(const ConvGeometry& g, const float* dz, const float* out, float* gLanes);

}  // namespace cigl
