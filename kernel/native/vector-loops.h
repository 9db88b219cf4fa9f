// The loops behind cpu-vector.cc's exports (it says what each computes), in
// plain C++ that GCC vectorises: no library calls or branches in the bodies,
// masks as selects. Each is compiled three times (target_clones: AVX-512F,
// AVX2 and the baseline); the dynamic loader picks the widest the core has.
// Clones by instruction set, not by x86-64 level or CPU model, because GCC
// dispatches those only from GCC 12 (levels) or for the named model alone. Included by cpu-vector.cc and, for the causal
// softmax, cpu-attention.cc (each addon its own copy).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DISTLAB_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DISTLAB_VECTOR_CLONES
#endif

namespace distlab_vector {

// The bits of a float as an integer and back (memcpy: what std::bit_cast does, in C++17; compiled to a register move).
inline int32_t BitsOf(float value) {
  int32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

inline float FloatOf(int32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

// e^z for z in [-87, 87] (callers clamp), within about 1 ulp: Cephes's expf. z = n ln2 + r with
// n = round(z / ln2), |r| <= ln2 / 2; e^r by a degree-6 polynomial; 2^n built in the exponent
// bits. Written without library calls or branches so that the loops around it vectorise.
inline float ExpClamped(float z) {
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low mantissa bits
  const float shifted = z * 1.44269504088896341f + kRoundMagic;
  const float n = shifted - kRoundMagic;
  const int32_t exponent = BitsOf(shifted) - BitsOf(kRoundMagic);
  float r = z - n * 0.693359375f;  // ln2 in two parts: the first exact in float, so r loses nothing
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * (r * r) + r + 1.0f;
  return er * FloatOf((exponent + 127) << 23);
}

DISTLAB_VECTOR_CLONES
void GeluLoop(const float* __restrict x, float* __restrict y, float* __restrict s, int64_t count) {
  for (int64_t i = 0; i < count; i++) {
    const float v = x[i];
    // -2u, clamped so e^(-2u) neither overflows nor leaves the exponent range of ExpClamped;
    // at the clamps s is 0 or 1 to float precision anyway (|2u| >= 87).
    float minusTwoU = -2.0f * kSqrt2OverPi * (v + kCubic * v * v * v);
    minusTwoU = minusTwoU < -87.0f ? -87.0f : (minusTwoU > 87.0f ? 87.0f : minusTwoU);
    const float sigmoid = 1.0f / (1.0f + ExpClamped(minusTwoU));
    s[i] = sigmoid;
    y[i] = v * sigmoid;
  }
}

DISTLAB_VECTOR_CLONES
void GeluGradLoop(const float* __restrict dy, const float* __restrict x, const float* __restrict s, float* __restrict dx,
                  int64_t count) {
  for (int64_t i = 0; i < count; i++) {
    const float v = x[i], si = s[i];
    dx[i] = dy[i] * (si + 2.0f * kSqrt2OverPi * v * si * (1.0f - si) * (1.0f + 3.0f * kCubic * v * v));
  }
}

DISTLAB_VECTOR_CLONES
void AddLoop(const float* __restrict a, const float* __restrict b, float* __restrict out, int64_t count) {
  for (int64_t i = 0; i < count; i++) out[i] = a[i] + b[i];
}

// A bias added to every row of x [rows, columns] in place, then relu if asked (max(v, 0); NaN stays NaN).
DISTLAB_VECTOR_CLONES
void AddRowsLoop(float* __restrict x, const float* __restrict bias, int64_t rows, int64_t columns, bool relu) {
  for (int64_t r = 0; r < rows; r++) {
    float* row = x + r * columns;
    if (relu) {
      for (int64_t c = 0; c < columns; c++) {
        const float v = row[c] + bias[c];
        row[c] = v < 0.0f ? 0.0f : v;
      }
    } else {
      for (int64_t c = 0; c < columns; c++) row[c] += bias[c];
    }
  }
}

// Rows added in order into out (zeroed first): 16 or 8 columns a vector, down the rows.
DISTLAB_VECTOR_CLONES
void ColumnSumLoop(const float* __restrict x, float* __restrict out, int64_t rows, int64_t columns) {
  for (int64_t c = 0; c < columns; c++) out[c] = 0.0f;
  for (int64_t r = 0; r < rows; r++) {
    const float* row = x + r * columns;
    for (int64_t c = 0; c < columns; c++) out[c] += row[c];
  }
}

// relu's gradient and the bias gradient in one pass: dz = dy where y > 0 else 0, dbias[c] = sum over rows of dz[r, c].
DISTLAB_VECTOR_CLONES
void ReluGradSumLoop(const float* __restrict dy, const float* __restrict y, float* __restrict dz, float* __restrict dbias, int64_t rows,
                     int64_t columns) {
  for (int64_t c = 0; c < columns; c++) dbias[c] = 0.0f;
  for (int64_t r = 0; r < rows; r++) {
    const float* dyr = dy + r * columns;
    const float* yr = y + r * columns;
    float* dzr = dz + r * columns;
    for (int64_t c = 0; c < columns; c++) {
      const float d = yr[c] > 0.0f ? dyr[c] : 0.0f;
      dzr[c] = d;
      dbias[c] += d;
    }
  }
}

// Blocks of kBlock keys up to the last block holding key i, masking the keys after the query,
// rather than loops over keys 0..i: a fixed block compiles to whole vectors with no remainder or
// alignment peeling, whose per-row cost was larger than the masked keys' work at 64 keys; blocks
// past the query are only zeroed. Rows must be a multiple of kBlock.
constexpr int64_t kBlock = 16;

DISTLAB_VECTOR_CLONES
void CausalSoftmaxBlocks(const float* __restrict scores, float* __restrict y, int64_t rows, int64_t time, float scale) {
  for (int64_t r = 0; r < rows; r++) {
    const float* s = scores + r * time;
    float* out = y + r * time;
    const int32_t keys = static_cast<int32_t>(r % time) + 1;  // query i sees keys 0..i
    const int64_t used = (keys + kBlock - 1) / kBlock * kBlock;  // the blocks holding a key the query sees
    float lanes[kBlock];
    for (int64_t l = 0; l < kBlock; l++) lanes[l] = -3.0e38f;
    for (int64_t j0 = 0; j0 < used; j0 += kBlock) {
      for (int64_t l = 0; l < kBlock; l++) {
        const float v = static_cast<int32_t>(j0 + l) < keys ? scale * s[j0 + l] : -3.0e38f;
        lanes[l] = v > lanes[l] ? v : lanes[l];
      }
    }
    float max = lanes[0];
    for (int64_t l = 1; l < kBlock; l++) max = lanes[l] > max ? lanes[l] : max;
    for (int64_t l = 0; l < kBlock; l++) lanes[l] = 0.0f;
    for (int64_t j0 = 0; j0 < used; j0 += kBlock) {
      for (int64_t l = 0; l < kBlock; l++) {
        // scale s - max <= 0; below -87 the weight is under 1e-38 of the largest: clamped there
        float z = scale * s[j0 + l] - max;
        z = z < -87.0f ? -87.0f : (z > 0.0f ? 0.0f : z);
        const float exp = ExpClamped(z);  // computed for every key, then masked: a select, not a branch
        const float e = static_cast<int32_t>(j0 + l) < keys ? exp : 0.0f;
        out[j0 + l] = e;
        lanes[l] += e;
      }
    }
    float sum = 0.0f;
    for (int64_t l = 0; l < kBlock; l++) sum += lanes[l];
    const float inverse = 1.0f / sum;
    for (int64_t j = 0; j < used; j++) out[j] *= inverse;
    for (int64_t j = used; j < time; j++) out[j] = 0.0f;
  }
}

// Any row length: loops over keys 0..i.
DISTLAB_VECTOR_CLONES
void CausalSoftmaxRows(const float* __restrict scores, float* __restrict y, int64_t rows, int64_t time, float scale) {
  for (int64_t r = 0; r < rows; r++) {
    const float* s = scores + r * time;
    float* out = y + r * time;
    const int64_t keys = r % time + 1;
    float max = scale * s[0];
    for (int64_t j = 1; j < keys; j++) max = scale * s[j] > max ? scale * s[j] : max;
    float sum = 0.0f;
    for (int64_t j = 0; j < keys; j++) {
      float z = scale * s[j] - max;
      z = z < -87.0f ? -87.0f : z;
      out[j] = ExpClamped(z);
      sum += out[j];
    }
    const float inverse = 1.0f / sum;
    for (int64_t j = 0; j < keys; j++) out[j] *= inverse;
    for (int64_t j = keys; j < time; j++) out[j] = 0.0f;
  }
}

void CausalSoftmaxLoop(const float* scores, float* y, int64_t rows, int64_t time, float scale) {
  if (time % kBlock == 0) {
    CausalSoftmaxBlocks(scores, y, rows, time, scale);
  } else {
    CausalSoftmaxRows(scores, y, rows, time, scale);
  }
}

DISTLAB_VECTOR_CLONES
void CausalSoftmaxGradLoop(const float* __restrict y, const float* __restrict dy, float* __restrict ds, int64_t rows, int64_t time,
                           float scale) {
  for (int64_t r = 0; r < rows; r++) {
    const float* yr = y + r * time;
    const float* dyr = dy + r * time;
    float* out = ds + r * time;
    // up to the forward's last block holding key i: a masked key's y is 0, so it adds nothing to dot and gets 0
    const int64_t keys = r % time + 1;
    const int64_t used = time % kBlock == 0 ? (keys + kBlock - 1) / kBlock * kBlock : time;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < used; j++) dot += dyr[j] * yr[j];
    for (int64_t j = 0; j < used; j++) out[j] = scale * (yr[j] * (dyr[j] - dot));
    for (int64_t j = used; j < time; j++) out[j] = 0.0f;
  }
}

// Mean and 1 / sqrt(variance + epsilon) of one row (two passes: the variance of x - mean, not E[x^2] - mean^2).
// Inline and not cloned itself: it compiles into each clone of its callers, with no dispatch per row.
inline void RowStatistics(const float* __restrict x, int64_t width, float epsilon, float* mean, float* rstd) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < width; c++) sum += x[c];
  const float m = sum / static_cast<float>(width);
  float squares = 0.0f;
#pragma omp simd reduction(+ : squares)
  for (int64_t c = 0; c < width; c++) squares += (x[c] - m) * (x[c] - m);
  *mean = m;
  *rstd = 1.0f / __builtin_sqrtf(squares / static_cast<float>(width) + epsilon);
}

DISTLAB_VECTOR_CLONES
void LayerNormLoop(const float* __restrict x, const float* __restrict gain, const float* __restrict bias, float* __restrict y,
                   int64_t rows, int64_t width, float epsilon) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * width;
    float* yr = y + r * width;
    float mean, rstd;
    RowStatistics(xr, width, epsilon, &mean, &rstd);
    for (int64_t c = 0; c < width; c++) yr[c] = (xr[c] - mean) * rstd * gain[c] + bias[c];
  }
}

DISTLAB_VECTOR_CLONES
void LayerNormGradLoop(const float* __restrict dy, const float* __restrict x, const float* __restrict gain, float* __restrict dx,
                       float* __restrict dgain, float* __restrict dbias, int64_t rows, int64_t width, float epsilon) {
  for (int64_t c = 0; c < width; c++) dgain[c] = dbias[c] = 0.0f;
  const float inverseWidth = 1.0f / static_cast<float>(width);
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * width;
    const float* dyr = dy + r * width;
    float* dxr = dx + r * width;
    float mean, rstd;
    RowStatistics(xr, width, epsilon, &mean, &rstd);
    float sumG = 0.0f, sumGX = 0.0f;
#pragma omp simd reduction(+ : sumG, sumGX)
    for (int64_t c = 0; c < width; c++) {
      const float xhat = (xr[c] - mean) * rstd, g = dyr[c] * gain[c];
      sumG += g;
      sumGX += g * xhat;
      dgain[c] += dyr[c] * xhat;
      dbias[c] += dyr[c];
    }
    const float meanG = sumG * inverseWidth, meanGX = sumGX * inverseWidth;
    for (int64_t c = 0; c < width; c++) dxr[c] = rstd * (dyr[c] * gain[c] - meanG - (xr[c] - mean) * rstd * meanGX);
  }
}

}  // namespace distlab_vector
