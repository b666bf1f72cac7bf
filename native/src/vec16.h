// 16-float vectors in GCC's vector extension: one AVX-512 register in the AVX-512 clone of a
// CIGL_MULTIVERSION function, split into narrower registers in the others (same results).
#pragma once
#include <cstring>

namespace cigl {

typedef float v16 __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));

#define CIGL_INLINE inline __attribute__((always_inline))

CIGL_INLINE v16 load16(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

CIGL_INLINE void store16(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }

// Sum of the 16 lanes in a fixed order (results do not depend on the clone).
CIGL_INLINE float sum16(v16 v) {
  float s = 0;
  for (int i = 0; i < 16; i++) s += v[i];
  return s;
}

}  // namespace cigl
