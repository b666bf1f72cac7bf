// Fully connected layers (oneDNN's sgemm) and the softmax cross-entropy loss.
#pragma once
#include <cstdint>

namespace cigl {

struct DenseShape {
  int64_t batch, in, out;
};

// y = act(x·w + b); x [batch, in], w [in, out], b [out].
void denseForward(const DenseShape& s, const float* x, const float* w, const float* b, bool relu, float* y);
// dx = g·wᵀ.
void denseBackwardData(const DenseShape& s, const float* g, const float* w, float* dx);
// dw = xᵀ·g.
void denseBackwardWeights(const DenseShape& s, const float* x, const float* g, float* dw);
// db[j] = Σ_rows g[i, j].
void columnSums(int64_t rows, int64_t cols, const float* g, float* db);

// C = op(A)·op(B) for row-major matrices (op = transpose when the flag is set); used by the kernels
// above and by the benchmark's ceiling measurement.
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C);

// Mean over rows of −log softmax(logits)[label]. Labels index columns; out-of-range labels throw.
double softmaxCrossEntropy(int64_t rows, int64_t classes, const float* logits, const int32_t* labels);
// dlogits = scale·(softmax(logits) − onehot(labels)) / rows.
void softmaxCrossEntropyBackward(int64_t rows, int64_t classes, const float* logits, const int32_t* labels, float scale,
                                 float* dlogits);

}  // namespace cigl
