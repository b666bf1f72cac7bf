#include "batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "parallel.h"

namespace cigl {
namespace {

// Rows per float partial sum: short enough that float accumulation stays exact to ~1e-6, long enough
// that flushing to the double totals costs nothing.
constexpr int64_t kTile = 64;

// Per-channel partial sums over row tiles. Values are shifted by a per-channel pivot (any sample of
// the channel) so that the variance E[(y − p)²] − (E[y − p])² does not cancel catastrophically.
CIGL_MULTIVERSION
void sumAndSquares(const float* __restrict y, int64_t begin, int64_t end, int64_t C, const float* __restrict pivot,
                   double* __restrict acc) {
  std::vector<float> tile(2 * C);
  float* __restrict s = tile.data();
  float* __restrict q = tile.data() + C;
  for (int64_t r0 = begin; r0 < end; r0 += kTile) {
    std::fill(tile.begin(), tile.end(), 0.0f);
    const int64_t r1 = std::min(end, r0 + kTile);
    for (int64_t r = r0; r < r1; r++) {
      const float* __restrict row = y + r * C;
      for (int64_t c = 0; c < C; c++) {
        const float v = row[c] - pivot[c];
        s[c] += v;
        q[c] += v * v;
      }
    }
    for (int64_t c = 0; c < C; c++) {
      acc[c] += s[c];
      acc[C + c] += q[c];
    }
  }
}

// z = act(y·a + b) per channel.
template <bool Relu>
CIGL_MULTIVERSION void scaleShift(const float* __restrict y, float* __restrict z, int64_t begin, int64_t end, int64_t C,
                                  const float* __restrict a, const float* __restrict b) {
  for (int64_t r = begin; r < end; r++) {
    const float* __restrict in = y + r * C;
    float* __restrict out = z + r * C;
    for (int64_t c = 0; c < C; c++) {
      const float v = in[c] * a[c] + b[c];
      out[c] = Relu ? std::max(v, 0.0f) : v;
    }
  }
}

// With g = dz·[z > 0] (or dz without ReLU): acc[0..C) += Σ g, acc[C..2C) += Σ g·(y − mean).
template <bool Relu>
CIGL_MULTIVERSION void gradientSums(const float* __restrict dz, const float* __restrict z, const float* __restrict y,
                                    int64_t begin, int64_t end, int64_t C, const float* __restrict mean,
                                    double* __restrict acc) {
  std::vector<float> tile(2 * C);
  float* __restrict sg = tile.data();
  float* __restrict sgy = tile.data() + C;
  for (int64_t r0 = begin; r0 < end; r0 += kTile) {
    std::fill(tile.begin(), tile.end(), 0.0f);
    const int64_t r1 = std::min(end, r0 + kTile);
    for (int64_t r = r0; r < r1; r++) {
      const int64_t o = r * C;
      for (int64_t c = 0; c < C; c++) {
        const float g = Relu ? (z[o + c] > 0.0f ? dz[o + c] : 0.0f) : dz[o + c];
        sg[c] += g;
        sgy[c] += g * (y[o + c] - mean[c]);
      }
    }
    for (int64_t c = 0; c < C; c++) {
      acc[c] += sg[c];
      acc[C + c] += sgy[c];
    }
  }
}

// dy = g·a + y·b + k per channel, g as above.
template <bool Relu>
CIGL_MULTIVERSION void gradientApply(const float* __restrict dz, const float* __restrict z, const float* __restrict y,
                                     float* __restrict dy, int64_t begin, int64_t end, int64_t C, const float* __restrict a,
                                     const float* __restrict b, const float* __restrict k) {
  for (int64_t r = begin; r < end; r++) {
    const int64_t o = r * C;
    for (int64_t c = 0; c < C; c++) {
      const float g = Relu ? (z[o + c] > 0.0f ? dz[o + c] : 0.0f) : dz[o + c];
      dy[o + c] = g * a[c] + y[o + c] * b[c] + k[c];
    }
  }
}

void applyScaleShift(const float* y, float* z, int64_t M, int64_t C, const float* a, const float* b, bool relu) {
  forRowRanges(M, C, [&](int64_t begin, int64_t end, int) {
    if (relu) scaleShift<true>(y, z, begin, end, C, a, b);
    else scaleShift<false>(y, z, begin, end, C, a, b);
  });
}

std::vector<double> sumGradients(const float* dz, const float* z, const float* y, int64_t M, int64_t C, const float* mean,
                                 bool relu) {
  return reduceRows(M, C, 2 * C, [&](int64_t begin, int64_t end, double* acc) {
    if (relu) gradientSums<true>(dz, z, y, begin, end, C, mean, acc);
    else gradientSums<false>(dz, z, y, begin, end, C, mean, acc);
  });
}

void applyGradient(const float* dz, const float* z, const float* y, float* dy, int64_t M, int64_t C, const float* a,
                   const float* b, const float* k, bool relu) {
  forRowRanges(M, C, [&](int64_t begin, int64_t end, int) {
    if (relu) gradientApply<true>(dz, z, y, dy, begin, end, C, a, b, k);
    else gradientApply<false>(dz, z, y, dy, begin, end, C, a, b, k);
  });
}

}  // namespace

void batchNormTrainForward(const BatchNormShape& s, const float* y, const float* gamma, const float* beta, float* z,
                           float* mean, float* variance) {
  const int64_t M = s.rows, C = s.channels;
  const float* pivot = y;  // the first row
  const std::vector<double> sums =
      reduceRows(M, C, 2 * C, [&](int64_t b, int64_t e, double* acc) { sumAndSquares(y, b, e, C, pivot, acc); });
  std::vector<float> a(C), b(C);
  for (int64_t c = 0; c < C; c++) {
    const double shifted = sums[c] / M;
    const double m = pivot[c] + shifted;
    const double v = std::max(0.0, sums[C + c] / M - shifted * shifted);
    mean[c] = static_cast<float>(m);
    variance[c] = static_cast<float>(v);
    const double scale = gamma[c] / std::sqrt(v + s.epsilon);
    a[c] = static_cast<float>(scale);
    b[c] = static_cast<float>(beta[c] - m * scale);
  }
  applyScaleShift(y, z, M, C, a.data(), b.data(), s.relu);
}

void batchNormTrainBackward(const BatchNormShape& s, const float* dz, const float* z, const float* y, const float* mean,
                            const float* variance, const float* gamma, float* dy, float* dgamma, float* dbeta) {
  const int64_t M = s.rows, C = s.channels;
  const std::vector<double> sums = sumGradients(dz, z, y, M, C, mean, s.relu);
  std::vector<float> a(C), b(C), k(C);
  batchNormBackwardCoefficients(C, static_cast<double>(M), sums.data(), mean, variance, gamma, s.epsilon, a.data(), b.data(), k.data(),
                                dgamma, dbeta);
  applyGradient(dz, z, y, dy, M, C, a.data(), b.data(), k.data(), s.relu);
}

void batchNormBackwardCoefficients(int64_t C, double count, const double* sums, const float* mean, const float* variance,
                                   const float* gamma, float epsilon, float* A, float* B, float* K, float* dgamma, float* dbeta) {
  for (int64_t c = 0; c < C; c++) {
    const double istd = 1.0 / std::sqrt(static_cast<double>(variance[c]) + epsilon);
    const double sumG = sums[c];
    const double sumGXhat = sums[C + c] * istd;
    dbeta[c] = static_cast<float>(sumG);
    dgamma[c] = static_cast<float>(sumGXhat);
    const double scale = gamma[c] * istd;
    const double slope = scale * istd * sumGXhat / count;
    A[c] = static_cast<float>(scale);
    B[c] = static_cast<float>(-slope);
    K[c] = static_cast<float>(-scale * sumG / count + slope * mean[c]);
  }
}

void batchNormInferForward(const BatchNormShape& s, const float* y, const float* mean, const float* variance,
                           const float* gamma, const float* beta, float* z) {
  const int64_t M = s.rows, C = s.channels;
  std::vector<float> a(C), b(C);
  for (int64_t c = 0; c < C; c++) {
    // The stock formula, in float32 like tfjs: scale = γ·rsqrt(var + ε), shift = β − mean·scale.
    const float scale = gamma[c] * (1.0f / std::sqrt(variance[c] + s.epsilon));
    a[c] = scale;
    b[c] = beta[c] - mean[c] * scale;
  }
  applyScaleShift(y, z, M, C, a.data(), b.data(), s.relu);
}

void batchNormInferBackward(const BatchNormShape& s, const float* dz, const float* z, const float* y, const float* mean,
                            const float* variance, const float* gamma, float* dy, float* dgamma, float* dbeta) {
  const int64_t M = s.rows, C = s.channels;
  const std::vector<double> sums = sumGradients(dz, z, y, M, C, mean, s.relu);
  std::vector<float> a(C), zero(C, 0.0f);
  for (int64_t c = 0; c < C; c++) {
    const double istd = 1.0 / std::sqrt(static_cast<double>(variance[c]) + s.epsilon);
    dbeta[c] = static_cast<float>(sums[c]);
    dgamma[c] = static_cast<float>(sums[C + c] * istd);
    a[c] = static_cast<float>(gamma[c] * istd);
  }
  applyGradient(dz, z, y, dy, M, C, a.data(), zero.data(), zero.data(), s.relu);
}

}  // namespace cigl
