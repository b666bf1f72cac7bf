// Sparse 2-D convolution for masked layers (SparseProp-style): only the active weights are visited, and
// every active weight drives vector FMAs over the batch. Activations therefore live in a "lanes" layout
// with the batch innermost, spatially zero-padded so that no inner loop needs a bounds check:
//   input lanes  [inRows][inCols][inChannels][lanes]   (x padded as the convolution pads it)
//   grad lanes   [gradRows][gradCols][outChannels][lanes] (dy padded for the transposed gather)
// with lanes = batch rounded up to 16 (extra lanes hold zeros). Results are written straight into the
// tfjs layouts (NHWC activations, HWIO filters), so the callers see the same tensors as the dense path.
//
// The active set comes from `active` (same shape as the filter, nonzero = active), not from the weight
// values: a freshly grown weight is exactly 0 and must still get its gradient. Inactive positions get a
// zero filter gradient. The compressed filter is rebuilt at every call: O(filter size), negligible next
// to the convolution, and it makes CigL's per-step random mask free.
#pragma once
#include <cstdint>

#include "conv.h"

namespace cigl {

// Element counts of the two lane buffers for a geometry.
int64_t sparseConvInputLanesSize(const ConvGeometry& g);
int64_t sparseConvGradLanesSize(const ConvGeometry& g);

// y = conv(x, w ⊙ [active ≠ 0]); also writes x in the input-lanes layout (kept for the filter gradient).
void sparseConvForward(const ConvGeometry& g, const float* x, const float* w, const float* active, float* y, float* xLanes);
// dy (NHWC) in the grad-lanes layout, shared by the two backward passes.
void sparseConvGradToLanes(const ConvGeometry& g, const float* dy, float* dyLanes);
// dx = ∂L/∂x through the active weights only.
void sparseConvBackwardData(const ConvGeometry& g, const float* dyLanes, const float* w, const float* active, float* dx);
// dw = ∂L/∂w at the active positions, 0 elsewhere.
void sparseConvBackwardWeights(const ConvGeometry& g, const float* xLanes, const float* dyLanes, const float* active, float* dw);

}  // namespace cigl
