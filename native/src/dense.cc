#include "dense.h"

#include <dnnl.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.h"
#include "signal_guard.h"

namespace cigl {

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C) {
  const int64_t lda = transA ? M : K, ldb = transB ? K : N;
  const SignalsHeld held;
  const dnnl_status_t status =
      dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
  if (status != dnnl_success) throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(status));
}

void denseForward(const DenseShape& s, const float* x, const float* w, const float* b, bool relu, float* y) {
  sgemm(false, false, s.batch, s.out, s.in, x, w, y);
  forRowRanges(s.batch, s.out, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; i++) {
      float* row = y + i * s.out;
      for (int64_t j = 0; j < s.out; j++) {
        const float v = row[j] + b[j];
        row[j] = relu ? std::max(v, 0.0f) : v;
      }
    }
  });
}

void denseBackwardData(const DenseShape& s, const float* g, const float* w, float* dx) {
  sgemm(false, true, s.batch, s.in, s.out, g, w, dx);
}

void denseBackwardWeights(const DenseShape& s, const float* x, const float* g, float* dw) {
  sgemm(true, false, s.in, s.out, s.batch, x, g, dw);
}

void columnSums(int64_t rows, int64_t cols, const float* g, float* db) {
  const std::vector<double> sums = reduceRows(rows, cols, cols, [&](int64_t b, int64_t e, double* acc) {
    for (int64_t i = b; i < e; i++)
      for (int64_t j = 0; j < cols; j++) acc[j] += g[i * cols + j];
  });
  for (int64_t j = 0; j < cols; j++) db[j] = static_cast<float>(sums[j]);
}

namespace {

int32_t checkedLabel(const int32_t* labels, int64_t i, int64_t classes) {
  const int32_t label = labels[i];
  if (label < 0 || label >= classes)
    throw std::range_error("label " + std::to_string(label) + " at row " + std::to_string(i) + " is outside [0, " +
                           std::to_string(classes) + ")");
  return label;
}

// log Σ exp(row) computed stably, and the row maximum.
double logSumExp(const float* row, int64_t classes, double* maxOut) {
  double m = row[0];
  for (int64_t j = 1; j < classes; j++) m = std::max(m, static_cast<double>(row[j]));
  double sum = 0;
  for (int64_t j = 0; j < classes; j++) sum += std::exp(row[j] - m);
  *maxOut = m;
  return m + std::log(sum);
}

}  // namespace

double softmaxCrossEntropy(int64_t rows, int64_t classes, const float* logits, const int32_t* labels) {
  double total = 0;
  for (int64_t i = 0; i < rows; i++) {
    const float* row = logits + i * classes;
    double m;
    total += logSumExp(row, classes, &m) - row[checkedLabel(labels, i, classes)];
  }
  return total / rows;
}

void softmaxCrossEntropyBackward(int64_t rows, int64_t classes, const float* logits, const int32_t* labels, float scale,
                                 float* dlogits) {
  const double k = static_cast<double>(scale) / rows;
  for (int64_t i = 0; i < rows; i++) {
    const float* row = logits + i * classes;
    double m;
    const double lse = logSumExp(row, classes, &m);
    const int32_t label = checkedLabel(labels, i, classes);
    for (int64_t j = 0; j < classes; j++) {
      const double p = std::exp(row[j] - lse);
      dlogits[i * classes + j] = static_cast<float>(k * (p - (j == label ? 1.0 : 0.0)));
    }
  }
}

}  // namespace cigl
