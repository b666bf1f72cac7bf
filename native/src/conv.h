// 2-D convolution on oneDNN, NHWC activations and HWIO filters (the tfjs layouts), so tensors cross
// between tfjs and the addon without copies. Filters are reordered to oneDNN's blocked layout inside,
// which is where its AVX-512 kernels are fastest.
#pragma once
#include <cstdint>

namespace cigl {

struct ConvGeometry {
  int64_t batch, inHeight, inWidth, inChannels;
  int64_t outChannels, kernelHeight, kernelWidth;
  int64_t strideHeight, strideWidth;
  int64_t outHeight, outWidth;
  int64_t padTop, padLeft, padBottom, padRight;
};

// y[n, oh, ow, oc] = conv(x[n, ih, iw, ic], w[kh, kw, ic, oc]).
void convForward(const ConvGeometry& g, const float* x, const float* w, float* y);
// dx = ∂L/∂x given dy = ∂L/∂y.
void convBackwardData(const ConvGeometry& g, const float* dy, const float* w, float* dx);
// dw = ∂L/∂w given x and dy.
void convBackwardWeights(const ConvGeometry& g, const float* x, const float* dy, float* dw);

// Number of cached convolution plans (one per distinct geometry).
int64_t convPlanCount();

}  // namespace cigl
