/*
 * Number formats of the frozen weights: scalar conversions, and the row kernels that convert while they read
 * (to float32, and dot products against float32 rows), in AVX2/FMA/F16C where the CPU has them (chosen at run
 * time) and in portable C otherwise.
 */
#ifndef LORASMITH_CONVERT_H
#define LORASMITH_CONVERT_H

#include <stdint.h>
#include <string.h>

#include "weights.h"

/* IEEE half -> float (exact). */
static inline float ls_half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    const float magnitude = (float)mant * (1.0f / 16777216.0f); /* subnormal: mant · 2^-24 */
    memcpy(&bits, &magnitude, sizeof bits);
    bits |= sign;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float out;
  memcpy(&out, &bits, sizeof out);
  return out;
}

/* float -> IEEE half, round to nearest even; overflow to ±Inf, NaN stays NaN. */
static inline uint16_t ls_float_to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int32_t exp = (int32_t)((x >> 23) & 0xff);
  uint32_t mant = x & 0x7fffff;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
  const int32_t e = exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000;
    const int shift = 14 - e;
    uint32_t h = mant >> shift;
    const uint32_t rest = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = sign | ((uint32_t)e << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++; /* a carry into the exponent is the right rounding */
  return (uint16_t)h;
}

static inline float ls_bf16_to_float(uint16_t b) {
  const uint32_t bits = (uint32_t)b << 16;
  float out;
  memcpy(&out, &bits, sizeof out);
  return out;
}

/* float -> bfloat16, round to nearest even; NaN stays NaN. */
static inline uint16_t ls_float_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

void ls_bf16_to_f32(const uint16_t *src, float *out, int64_t n);
void ls_f16_to_f32(const uint16_t *src, float *out, int64_t n);
/* Columns [col0, col0 + n) of one Q8_0 row (q: the row's int8 values, scales: its block scales). */
void ls_q8_to_f32(const int8_t *q, const uint16_t *scales, int64_t col0, int64_t n, float *out);
/* Columns [col0, col0 + n) of one Q4_0 row (blocks: the row's 18-byte blocks). */
void ls_q4_to_f32(const uint8_t *blocks, int64_t col0, int64_t n, float *out);
/* result[i] = W[r, :] · xs[i] for i < nx (nx ≤ 4). */
void ls_dot_row(const ls_weight *w, int64_t r, const float *const *xs, int nx, float *result);

#endif
