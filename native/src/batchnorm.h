// BatchNorm (+ optional ReLU) over the channel axis of NHWC data viewed as [rows, channels].
// Training mode normalises with the batch statistics and returns them (mean and biased variance);
// evaluation mode uses given running statistics. Backward passes fold the ReLU mask in.
#pragma once
#include <cstdint>

namespace cigl {

struct BatchNormShape {
  int64_t rows, channels;
  float epsilon;
  bool relu;
};

// z = act((y − mean)·γ/√(var + ε) + β) with batch mean/variance, written to mean/variance.
void batchNormTrainForward(const BatchNormShape& s, const float* y, const float* gamma, const float* beta, float* z,
                           float* mean, float* variance);
// Gradients through the training-mode forward (batch statistics depend on y).
void batchNormTrainBackward(const BatchNormShape& s, const float* dz, const float* z, const float* y, const float* mean,
                            const float* variance, const float* gamma, float* dy, float* dgamma, float* dbeta);
// z = act(y·scale + shift), scale = γ/√(var + ε), shift = β − mean·scale (running statistics).
void batchNormInferForward(const BatchNormShape& s, const float* y, const float* mean, const float* variance,
                           const float* gamma, const float* beta, float* z);
// Gradients through the evaluation-mode forward (statistics are constants).
void batchNormInferBackward(const BatchNormShape& s, const float* dz, const float* z, const float* y, const float* mean,
                            const float* variance, const float* gamma, float* dy, float* dgamma, float* dbeta);

// The training-mode backward pass per channel from Σg and Σg·(y − mean) (sums[c], sums[C + c]) over
// `count` values: dy = γ·istd·(g − Σg/M − x̂·Σ(g·x̂)/M) with x̂ = (y − mean)·istd, written as
// dy = g·A + y·B + K; also dgamma and dbeta. Shared with the fused sparse kernels (sparse_conv.cc).
void batchNormBackwardCoefficients(int64_t C, double count, const double* sums, const float* mean, const float* variance,
                                   const float* gamma, float epsilon, float* A, float* B, float* K, float* dgamma, float* dbeta);

}  // namespace cigl
