// Memory-bound layers around the convolutions: the residual join, 2×2 max pooling and global average
// pooling, NHWC, forward and backward.
#pragma once
#include <cstdint>

namespace cigl {

// z = a + b (float32, same shape): tfjs's gradient tape accumulates gradients with it.
void add(int64_t size, const float* a, const float* b, float* z);
// z = max(a + b, 0).
void addRelu(int64_t size, const float* a, const float* b, float* z);
// g = dz·[out > 0]: the gradient through any ReLU given its output.
void reluBackward(int64_t size, const float* dz, const float* out, float* g);

struct PoolShape {
  int64_t batch, height, width, channels;  // input; the output is [batch, height/2, width/2, channels]
};
// 2×2 window, stride 2, 'valid' (an odd last row/column is dropped).
void maxPool2Forward(const PoolShape& s, const float* x, float* y);
// Routes dy to the first maximum of each window in row-major order (tfjs's rule); zeros elsewhere.
void maxPool2Backward(const PoolShape& s, const float* x, const float* dy, float* dx);

// y[n, c] = mean over h, w of x[n, h, w, c].
void globalAvgPoolForward(const PoolShape& s, const float* x, float* y);
void globalAvgPoolBackward(const PoolShape& s, const float* dy, float* dx);

}  // namespace cigl
