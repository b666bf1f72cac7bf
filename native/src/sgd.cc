#include "sgd.h"

namespace cigl {

// Deliberately not multiversioned: the baseline (SSE2) build has no FMA instruction, so no product-sum
// can be contracted into one rounding; the loop is bound by memory anyway.
void sgdMomentumStep(int64_t size, const SgdHyper& h, const float* __restrict w, const float* __restrict buf,
                     const float* __restrict grad, const float* __restrict mask, float* __restrict wOut, float* __restrict bufOut,
                     const float* __restrict gradScale) {
  for (int64_t i = 0; i < size; i++) {
    float g = grad[i];
    if (gradScale) g = g * gradScale[i];
    if (h.weightDecay != 0.0f) {
      const float decay = w[i] * h.weightDecay;
      g = g + decay;
    }
    float b = g;
    if (h.momentum != 0.0f) {
      const float kept = buf[i] * h.momentum;
      b = kept + g;
    }
    float d = b;
    if (h.nesterov) {
      const float look = b * h.momentum;
      d = g + look;
    }
    const float step = d * h.lr;
    float next = w[i] - step;
    if (mask) {
      next = next * mask[i];
      b = b * mask[i];
    }
    wOut[i] = next;
    bufOut[i] = b;
  }
}

}  // namespace cigl
