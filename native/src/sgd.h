// One SGD-with-momentum update of one parameter, fused: the optimiser's chain of tfjs ops (up to 9
// kernel launches per parameter and step, ~600 for resnet20) in one pass over memory.
#pragma once
#include <cstdint>

namespace cigl {

struct SgdHyper {
  float lr, momentum, weightDecay;  // weightDecay 0 for parameters without decay
  bool nesterov;
};

// With g = grad·gradScale + weightDecay·w (gradScale may be null: no multiply; it turns ∂L/∂W_eff into
// ∂L/∂w for W_eff = w ⊙ gradScale), buf' = momentum·buf + g, d = g + momentum·buf' (Nesterov) or buf':
//   w' = (w − lr·d)·mask, buf' = buf'·mask (mask may be null: no multiply).
// Every operation rounds to float32 in the order the tfjs op chain uses (no fused multiply-add), so the
// results are bitwise those of src/train/optimizer.ts's op chain.
void sgdMomentumStep(int64_t size, const SgdHyper& h, const float* w, const float* buf, const float* grad, const float* mask,
                     float* wOut, float* bufOut, const float* gradScale = nullptr);

}  // namespace cigl
