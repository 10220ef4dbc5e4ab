/*
 * lorasmith_native: a BLAS sgemm on tfjs tensors' own memory.
 *
 * The JavaScript side passes Float32Array views: for the wasm backend, views on the WebAssembly.Memory buffer at
 * each tensor's heap offset; for the cpu backend, the tensors' own values arrays. Nothing is copied: the product
 * is written straight into the output tensor's memory.
 *
 * Exports:
 *   sgemm(transA, transB, batch, m, n, k, a, strideA, b, strideB, c, strideC)
 *     For each i in [0, batch): C_i[m, n] = op(A_i) · op(B_i), row-major, where op(X) is X or Xᵀ,
 *     A_i = a + i·strideA (A is [m, k], or [k, m] when transA), B_i = b + i·strideB (B is [k, n], or [n, k]),
 *     C_i = c + i·strideC. Strides are in elements; a stride of 0 broadcasts one matrix over the batch.
 *   setThreads(n), getThreads(), physicalCores(), info() -> { blas, config, threads }
 *
 * and the fused kernels of fused.h, each writing into output arrays the caller allocated:
 *   rotary(x, cos, sin, out, groups, t, d)
 *   swiglu(gate, up, out, n)                         swigluGrad(gate, up, dy, dgate, dup, n)
 *   rmsNorm(x, weight, eps, out, rows, cols)         rmsNormGrad(x, weight, dy, eps, dx, dweight, rows, cols)
 *   crossEntropy(logits, labels, nll, lse, rows, vocab) -> -1 or the first row with a label out of range
 *   crossEntropyGrad(logits, lse, labels, coef, dlogits, rows, vocab) -> likewise
 *   gather(x, indices, out, outer, axis, inner, n)  -> -1 or the first index out of range
 *   attention(q, k, v, out, probs, b, h, hkv, t, s, d, scale)
 *   attentionGrad(q, k, v, probs, dout, dq, dk, dv, b, h, hkv, t, s, d, scale)
 * Every array's length is checked against the sizes before any memory is touched.
 */
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cores.h"
#include "fused.h"
#include "weights.h"

#define THROW(env, code, ...)                                  \
  do {                                                         \
    char message_[256];                                        \
    snprintf(message_, sizeof message_, __VA_ARGS__);          \
    napi_throw_error((env), (code), message_);                 \
    return NULL;                                               \
  } while (0)

#define CHECK_NAPI(env, call)                                               \
  do {                                                                      \
    if ((call) != napi_ok) THROW((env), "NATIVE_NAPI", "N-API call failed: %s", #call); \
  } while (0)

static bool get_bool(napi_env env, napi_value value, bool *out) {
  return napi_get_value_bool(env, value, out) == napi_ok;
}

static bool get_count(napi_env env, napi_value value, int64_t *out) {
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= 2147483647.0) || d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}

/* A Float32Array argument: its data pointer (already past byteOffset) and its length in elements. */
static bool get_floats(napi_env env, napi_value value, float **data, size_t *length) {
  napi_typedarray_type type;
  void *raw;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, &type, length, &raw, &buffer, &offset) != napi_ok) return false;
  if (type != napi_float32_array) return false;
  *data = (float *)raw;
  return true;
}

/* Elements one operand must hold: the last batch item starts at (batch-1)*stride and spans rows*cols. */
static bool fits(size_t length, int64_t batch, int64_t stride, int64_t rows, int64_t cols) {
  if (batch == 0 || rows == 0 || cols == 0) return true;
  return (uint64_t)((batch - 1) * stride + rows * cols) <= (uint64_t)length;
}

static napi_value sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 12) THROW(env, "NATIVE_BAD_ARGUMENT", "sgemm takes 12 arguments, got %zu", argc);

  bool trans_a, trans_b;
  int64_t batch, m, n, k, stride_a, stride_b, stride_c;
  float *a, *b, *c;
  size_t len_a, len_b, len_c;
  if (!get_bool(env, argv[0], &trans_a) || !get_bool(env, argv[1], &trans_b))
    THROW(env, "NATIVE_BAD_ARGUMENT", "sgemm: transA and transB must be booleans");
  if (!get_count(env, argv[2], &batch) || !get_count(env, argv[3], &m) || !get_count(env, argv[4], &n) ||
      !get_count(env, argv[5], &k))
    THROW(env, "NATIVE_BAD_ARGUMENT", "sgemm: batch, m, n and k must be non-negative 32-bit integers");
  if (!get_floats(env, argv[6], &a, &len_a) || !get_floats(env, argv[8], &b, &len_b) ||
      !get_floats(env, argv[10], &c, &len_c))
    THROW(env, "NATIVE_BAD_ARGUMENT", "sgemm: a, b and c must be Float32Arrays");
  if (!get_count(env, argv[7], &stride_a) || !get_count(env, argv[9], &stride_b) ||
      !get_count(env, argv[11], &stride_c))
    THROW(env, "NATIVE_BAD_ARGUMENT", "sgemm: strides must be non-negative 32-bit integers");

  if (!fits(len_a, batch, stride_a, m, k))
    THROW(env, "NATIVE_OUT_OF_BOUNDS", "sgemm: a holds %zu floats, too few for batch %lld of %lldx%lld stride %lld",
          len_a, (long long)batch, (long long)m, (long long)k, (long long)stride_a);
  if (!fits(len_b, batch, stride_b, k, n))
    THROW(env, "NATIVE_OUT_OF_BOUNDS", "sgemm: b holds %zu floats, too few for batch %lld of %lldx%lld stride %lld",
          len_b, (long long)batch, (long long)k, (long long)n, (long long)stride_b);
  if (!fits(len_c, batch, stride_c, m, n) || (batch > 1 && stride_c < m * n))
    THROW(env, "NATIVE_OUT_OF_BOUNDS", "sgemm: c holds %zu floats with stride %lld, wrong for batch %lld of %lldx%lld",
          len_c, (long long)stride_c, (long long)batch, (long long)m, (long long)n);

  if (m == 0 || n == 0) return NULL;
  if (k == 0) {
    /* An empty inner dimension: the product of nothing is zero (BLAS would leave C untouched with beta 0 on some
     * implementations, so write it explicitly). */
    for (int64_t i = 0; i < batch; i++) memset(c + i * stride_c, 0, (size_t)(m * n) * sizeof(float));
    return NULL;
  }
  lorasmith_sgemm_batched(trans_a, trans_b, (int)batch, (int)m, (int)n, (int)k, a, stride_a, b, stride_b, c,
                          stride_c);
  return NULL;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t threads;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || !get_count(env, argv[0], &threads) || threads < 1 || threads > 1024)
    THROW(env, "NATIVE_BAD_ARGUMENT", "setThreads takes one integer from 1 to 1024");
  lorasmith_blas_set_threads((int)threads);
  return NULL;
}

static napi_value make_int64(napi_env env, int64_t value) {
  napi_value result;
  if (napi_create_int64(env, value, &result) != napi_ok) return NULL;
  return result;
}

static napi_value get_threads(napi_env env, napi_callback_info info) {
  (void)info;
  return make_int64(env, lorasmith_blas_get_threads());
}

static napi_value physical_cores(napi_env env, napi_callback_info info) {
  (void)info;
  return make_int64(env, lorasmith_physical_cores());
}

static napi_value describe(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result, blas, config, threads;
  CHECK_NAPI(env, napi_create_object(env, &result));
  CHECK_NAPI(env, napi_create_string_utf8(env, lorasmith_blas_name(), NAPI_AUTO_LENGTH, &blas));
  CHECK_NAPI(env, napi_create_string_utf8(env, lorasmith_blas_config(), NAPI_AUTO_LENGTH, &config));
  CHECK_NAPI(env, napi_create_int32(env, lorasmith_blas_get_threads(), &threads));
  CHECK_NAPI(env, napi_set_named_property(env, result, "blas", blas));
  CHECK_NAPI(env, napi_set_named_property(env, result, "config", config));
  CHECK_NAPI(env, napi_set_named_property(env, result, "threads", threads));
  return result;
}


/* ---- argument parsing by a spec string: F Float32Array, I Int32Array, A any typed array, n count, e number,
 *      b boolean, W a frozen weight (an external made by weightCreate, not yet freed) ---- */

#define MAX_ARGS 16

typedef struct {
  float *f;
  int32_t *i;
  void *raw;
  size_t length; /* elements, for arrays */
  size_t bytes;  /* for A */
  int64_t count;
  double number;
  bool flag;
  ls_weight **weight; /* the holder inside the external: NULL once freed */
} Arg;

static bool parse_args(napi_env env, napi_callback_info info, const char *name, const char *spec, Arg *args) {
  size_t argc = MAX_ARGS;
  napi_value argv[MAX_ARGS];
  const size_t expected = strlen(spec);
  char message[160];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != expected) {
    snprintf(message, sizeof message, "%s takes %zu arguments, got %zu", name, expected, argc);
    napi_throw_error(env, "NATIVE_BAD_ARGUMENT", message);
    return false;
  }
  for (size_t a = 0; a < expected; a++) {
    bool ok = false;
    napi_typedarray_type type;
    void *raw;
    napi_value buffer;
    size_t offset;
    switch (spec[a]) {
      case 'F':
      case 'I':
        ok = napi_get_typedarray_info(env, argv[a], &type, &args[a].length, &raw, &buffer, &offset) == napi_ok &&
             type == (spec[a] == 'F' ? napi_float32_array : napi_int32_array);
        args[a].f = (float *)raw;
        args[a].i = (int32_t *)raw;
        break;
      case 'A':
        ok = napi_get_typedarray_info(env, argv[a], &type, &args[a].length, &raw, &buffer, &offset) == napi_ok;
        args[a].raw = raw;
        if (ok) {
          const size_t size = type == napi_int8_array || type == napi_uint8_array || type == napi_uint8_clamped_array ? 1
                              : type == napi_int16_array || type == napi_uint16_array                          ? 2
                              : type == napi_float64_array || type == napi_bigint64_array ||
                                      type == napi_biguint64_array
                                  ? 8
                                  : 4;
          args[a].bytes = args[a].length * size;
        }
        break;
      case 'W': {
        void *holder = NULL;
        napi_valuetype kind;
        ok = napi_typeof(env, argv[a], &kind) == napi_ok && kind == napi_external &&
             napi_get_value_external(env, argv[a], &holder) == napi_ok && holder != NULL;
        args[a].weight = (ls_weight **)holder;
        if (ok && *args[a].weight == NULL) {
          snprintf(message, sizeof message, "%s: the weight was already freed", name);
          napi_throw_error(env, "NATIVE_WEIGHT_FREED", message);
          return false;
        }
        break;
      }
      case 'b':
        ok = get_bool(env, argv[a], &args[a].flag);
        break;
      case 'n':
        ok = get_count(env, argv[a], &args[a].count);
        break;
      case 'e':
        ok = napi_get_value_double(env, argv[a], &args[a].number) == napi_ok;
        break;
    }
    if (!ok) {
      const char *what = spec[a] == 'F' ? "a Float32Array" : spec[a] == 'I' ? "an Int32Array"
                         : spec[a] == 'A' ? "a typed array" : spec[a] == 'W' ? "a frozen weight"
                         : spec[a] == 'b' ? "a boolean" : spec[a] == 'n' ? "a non-negative 32-bit integer" : "a number";
      snprintf(message, sizeof message, "%s: argument %zu must be %s", name, a + 1, what);
      napi_throw_error(env, "NATIVE_BAD_ARGUMENT", message);
      return false;
    }
  }
  return true;
}

/* True when argument `a` holds at least `need` elements; otherwise throws. */
static bool holds(napi_env env, const char *name, const Arg *args, int a, int64_t need) {
  if ((uint64_t)need <= (uint64_t)args[a].length) return true;
  char message[160];
  snprintf(message, sizeof message, "%s: argument %d holds %zu elements, the sizes need %lld", name, a + 1,
           args[a].length, (long long)need);
  napi_throw_error(env, "NATIVE_OUT_OF_BOUNDS", message);
  return false;
}

/* Rows [row0, row0 + rows) of a weight lie inside it; else throws NATIVE_OUT_OF_BOUNDS naming the call. */
static bool rows_in_bounds(napi_env env, const char *name, const ls_weight *w, int64_t row0, int64_t rows) {
  if (row0 + rows <= w->rows) return true;
  char message[160];
  snprintf(message, sizeof message, "%s: rows %lld..%lld outside the weight's %lld", name, (long long)row0,
           (long long)(row0 + rows), (long long)w->rows);
  napi_throw_error(env, "NATIVE_OUT_OF_BOUNDS", message);
  return false;
}

static napi_value rotary(napi_env env, napi_callback_info info) {
  Arg a[7];
  if (!parse_args(env, info, "rotary", "FFFFnnn", a)) return NULL;
  const int64_t groups = a[4].count, t = a[5].count, d = a[6].count;
  if (d % 2 != 0) THROW(env, "NATIVE_BAD_ARGUMENT", "rotary: head dim %lld is odd", (long long)d);
  if (!holds(env, "rotary", a, 0, groups * t * d) || !holds(env, "rotary", a, 1, t * d) ||
      !holds(env, "rotary", a, 2, t * d) || !holds(env, "rotary", a, 3, groups * t * d))
    return NULL;
  lorasmith_rotary(a[0].f, a[1].f, a[2].f, a[3].f, groups, t, d);
  return NULL;
}

static napi_value swiglu(napi_env env, napi_callback_info info) {
  Arg a[4];
  if (!parse_args(env, info, "swiglu", "FFFn", a)) return NULL;
  const int64_t n = a[3].count;
  for (int i = 0; i < 3; i++)
    if (!holds(env, "swiglu", a, i, n)) return NULL;
  lorasmith_swiglu(a[0].f, a[1].f, a[2].f, n);
  return NULL;
}

static napi_value swiglu_grad(napi_env env, napi_callback_info info) {
  Arg a[6];
  if (!parse_args(env, info, "swigluGrad", "FFFFFn", a)) return NULL;
  const int64_t n = a[5].count;
  for (int i = 0; i < 5; i++)
    if (!holds(env, "swigluGrad", a, i, n)) return NULL;
  lorasmith_swiglu_grad(a[0].f, a[1].f, a[2].f, a[3].f, a[4].f, n);
  return NULL;
}

static napi_value rms_norm(napi_env env, napi_callback_info info) {
  Arg a[6];
  if (!parse_args(env, info, "rmsNorm", "FFeFnn", a)) return NULL;
  const int64_t rows = a[4].count, cols = a[5].count;
  if (!holds(env, "rmsNorm", a, 0, rows * cols) || !holds(env, "rmsNorm", a, 1, cols) ||
      !holds(env, "rmsNorm", a, 3, rows * cols))
    return NULL;
  lorasmith_rms_norm(a[0].f, a[1].f, (float)a[2].number, a[3].f, rows, cols);
  return NULL;
}

static napi_value rms_norm_grad(napi_env env, napi_callback_info info) {
  Arg a[8];
  if (!parse_args(env, info, "rmsNormGrad", "FFFeFFnn", a)) return NULL;
  const int64_t rows = a[6].count, cols = a[7].count;
  if (!holds(env, "rmsNormGrad", a, 0, rows * cols) || !holds(env, "rmsNormGrad", a, 1, cols) ||
      !holds(env, "rmsNormGrad", a, 2, rows * cols) || !holds(env, "rmsNormGrad", a, 4, rows * cols) ||
      !holds(env, "rmsNormGrad", a, 5, cols))
    return NULL;
  if (!lorasmith_rms_norm_grad(a[0].f, a[1].f, a[2].f, (float)a[3].number, a[4].f, a[5].f, rows, cols))
    THROW(env, "NATIVE_OUT_OF_MEMORY", "rmsNormGrad: no memory for %lld row norms", (long long)rows);
  return NULL;
}

static napi_value cross_entropy(napi_env env, napi_callback_info info) {
  Arg a[6];
  if (!parse_args(env, info, "crossEntropy", "FIFFnn", a)) return NULL;
  const int64_t rows = a[4].count, vocab = a[5].count;
  if (vocab < 1) THROW(env, "NATIVE_BAD_ARGUMENT", "crossEntropy: vocabulary size must be at least 1");
  if (!holds(env, "crossEntropy", a, 0, rows * vocab) || !holds(env, "crossEntropy", a, 1, rows) ||
      !holds(env, "crossEntropy", a, 2, rows) || !holds(env, "crossEntropy", a, 3, rows))
    return NULL;
  return make_int64(env, lorasmith_cross_entropy(a[0].f, a[1].i, a[2].f, a[3].f, rows, vocab));
}

static napi_value cross_entropy_grad(napi_env env, napi_callback_info info) {
  Arg a[7];
  if (!parse_args(env, info, "crossEntropyGrad", "FFIFFnn", a)) return NULL;
  const int64_t rows = a[5].count, vocab = a[6].count;
  if (vocab < 1) THROW(env, "NATIVE_BAD_ARGUMENT", "crossEntropyGrad: vocabulary size must be at least 1");
  if (!holds(env, "crossEntropyGrad", a, 0, rows * vocab) || !holds(env, "crossEntropyGrad", a, 1, rows) ||
      !holds(env, "crossEntropyGrad", a, 2, rows) || !holds(env, "crossEntropyGrad", a, 3, rows) ||
      !holds(env, "crossEntropyGrad", a, 4, rows * vocab))
    return NULL;
  return make_int64(env, lorasmith_cross_entropy_grad(a[0].f, a[1].f, a[2].i, a[3].f, a[4].f, rows, vocab));
}

static napi_value gather(napi_env env, napi_callback_info info) {
  Arg a[7];
  if (!parse_args(env, info, "gather", "FIFnnnn", a)) return NULL;
  const int64_t outer = a[3].count, axis = a[4].count, inner = a[5].count, n = a[6].count;
  if (!holds(env, "gather", a, 0, outer * axis * inner) || !holds(env, "gather", a, 1, n) ||
      !holds(env, "gather", a, 2, outer * n * inner))
    return NULL;
  return make_int64(env, lorasmith_gather(a[0].f, a[1].i, a[2].f, outer, axis, inner, n));
}

/* Shape checks shared by attention and its gradient: heads divide evenly, the new positions fit in the keys. */
static bool attention_shape(napi_env env, const char *name, int64_t h, int64_t hkv, int64_t t, int64_t s) {
  char message[160];
  if (hkv < 1 || h % hkv != 0) {
    snprintf(message, sizeof message, "%s: %lld query heads do not group over %lld kv heads", name, (long long)h, (long long)hkv);
  } else if (t > s) {
    snprintf(message, sizeof message, "%s: %lld new positions but only %lld keys", name, (long long)t, (long long)s);
  } else {
    return true;
  }
  napi_throw_error(env, "NATIVE_BAD_ARGUMENT", message);
  return false;
}

static napi_value attention(napi_env env, napi_callback_info info) {
  Arg a[12];
  if (!parse_args(env, info, "attention", "FFFFFnnnnnne", a)) return NULL;
  const int64_t b = a[5].count, h = a[6].count, hkv = a[7].count, t = a[8].count, s = a[9].count, d = a[10].count;
  if (!attention_shape(env, "attention", h, hkv, t, s)) return NULL;
  if (!holds(env, "attention", a, 0, b * h * t * d) || !holds(env, "attention", a, 1, b * hkv * s * d) ||
      !holds(env, "attention", a, 2, b * hkv * s * d) || !holds(env, "attention", a, 3, b * t * h * d) ||
      !holds(env, "attention", a, 4, b * h * t * s))
    return NULL;
  lorasmith_attention(a[0].f, a[1].f, a[2].f, a[3].f, a[4].f, b, h, hkv, t, s, d, (float)a[11].number);
  return NULL;
}

static napi_value attention_grad(napi_env env, napi_callback_info info) {
  Arg a[15];
  if (!parse_args(env, info, "attentionGrad", "FFFFFFFFnnnnnne", a)) return NULL;
  const int64_t b = a[8].count, h = a[9].count, hkv = a[10].count, t = a[11].count, s = a[12].count, d = a[13].count;
  if (!attention_shape(env, "attentionGrad", h, hkv, t, s)) return NULL;
  const int64_t qn = b * h * t * d, kvn = b * hkv * s * d;
  if (!holds(env, "attentionGrad", a, 0, qn) || !holds(env, "attentionGrad", a, 1, kvn) ||
      !holds(env, "attentionGrad", a, 2, kvn) || !holds(env, "attentionGrad", a, 3, b * h * t * s) ||
      !holds(env, "attentionGrad", a, 4, qn) || !holds(env, "attentionGrad", a, 5, qn) ||
      !holds(env, "attentionGrad", a, 6, kvn) || !holds(env, "attentionGrad", a, 7, kvn))
    return NULL;
  if (!lorasmith_attention_grad(a[0].f, a[1].f, a[2].f, a[3].f, a[4].f, a[5].f, a[6].f, a[7].f, b, h, hkv, t, s, d,
                                (float)a[14].number))
    THROW(env, "NATIVE_OUT_OF_MEMORY", "attentionGrad: no memory for a %lldx%lld scratch matrix", (long long)t, (long long)s);
  return NULL;
}

/* ---- frozen weights (weights.h): an external holding a pointer to the weight, NULL once freed ---- */

static const char *const FORMAT_NAMES[] = {"F32", "BF16", "F16", "Q8_0", "Q4_0"};

static void finalize_weight(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  ls_weight **holder = (ls_weight **)data;
  ls_weight_free(*holder);
  free(holder);
}

static bool get_format(napi_env env, const char *name, int64_t value, ls_format *out) {
  if (value > LS_Q4_0) {
    char message[160];
    snprintf(message, sizeof message, "%s: format %lld is not one of 0 F32, 1 BF16, 2 F16, 3 Q8_0, 4 Q4_0", name, (long long)value);
    napi_throw_error(env, "NATIVE_BAD_ARGUMENT", message);
    return false;
  }
  *out = (ls_format)value;
  return true;
}

static napi_value weight_create(napi_env env, napi_callback_info info) {
  Arg a[3];
  ls_format format;
  if (!parse_args(env, info, "weightCreate", "nnn", a) || !get_format(env, "weightCreate", a[0].count, &format)) return NULL;
  ls_weight **holder = (ls_weight **)malloc(sizeof *holder);
  if (holder == NULL) THROW(env, "NATIVE_OUT_OF_MEMORY", "weightCreate: no memory");
  *holder = ls_weight_create(format, a[1].count, a[2].count);
  if (*holder == NULL) {
    free(holder);
    THROW(env, "NATIVE_OUT_OF_MEMORY", "weightCreate: no memory for a %lldx%lld %s weight", (long long)a[1].count,
          (long long)a[2].count, FORMAT_NAMES[format]);
  }
  napi_value result;
  if (napi_create_external(env, holder, finalize_weight, NULL, &result) != napi_ok) {
    ls_weight_free(*holder);
    free(holder);
    THROW(env, "NATIVE_NAPI", "weightCreate: could not wrap the weight");
  }
  return result;
}

/* weightFill(weight, row0, rows, source, sourceFormat): source holds rows × cols values in F32, BF16 or F16, or
 * (into a Q4_0 weight only) rows of Q4_0 blocks. */
static napi_value weight_fill(napi_env env, napi_callback_info info) {
  Arg a[5];
  ls_format source_format;
  if (!parse_args(env, info, "weightFill", "WnnAn", a) || !get_format(env, "weightFill", a[4].count, &source_format)) return NULL;
  const ls_weight *w = *a[0].weight;
  const int64_t row0 = a[1].count, rows = a[2].count;
  if (source_format == LS_Q8_0) THROW(env, "NATIVE_BAD_ARGUMENT", "weightFill: the source must be F32, BF16, F16 or Q4_0 blocks");
  if (source_format == LS_Q4_0 && w->format != LS_Q4_0)
    THROW(env, "NATIVE_BAD_ARGUMENT", "weightFill: Q4_0 blocks fill a Q4_0 weight only, not %s", FORMAT_NAMES[w->format]);
  if (!rows_in_bounds(env, "weightFill", w, row0, rows)) return NULL;
  const uint64_t need = source_format == LS_Q4_0 ? (uint64_t)(rows * ls_weight_row_bytes(w))
                                                 : (uint64_t)(rows * w->cols) * (source_format == LS_F32 ? 4u : 2u);
  if (need > a[3].bytes)
    THROW(env, "NATIVE_OUT_OF_BOUNDS", "weightFill: the source holds %zu bytes, %lld rows of %lld %s need %llu", a[3].bytes,
          (long long)rows, (long long)w->cols, FORMAT_NAMES[source_format], (unsigned long long)need);
  ls_weight_fill(*a[0].weight, row0, rows, a[3].raw, source_format);
  return NULL;
}

/* weightMatmul(weight, x, out, n, gemv): out [n, rows] = x [n, cols] · Wᵀ. */
static napi_value weight_matmul(napi_env env, napi_callback_info info) {
  Arg a[5];
  if (!parse_args(env, info, "weightMatmul", "WFFnb", a)) return NULL;
  const ls_weight *w = *a[0].weight;
  const int64_t n = a[3].count;
  if (!holds(env, "weightMatmul", a, 1, n * w->cols) || !holds(env, "weightMatmul", a, 2, n * w->rows)) return NULL;
  if (!ls_weight_matmul(w, a[1].f, a[2].f, n, a[4].flag, lorasmith_blas_get_threads()))
    THROW(env, "NATIVE_OUT_OF_MEMORY", "weightMatmul: no memory for the tile buffers");
  return NULL;
}

/* weightMatmulT(weight, dy, dx, n): dx [n, cols] = dy [n, rows] · W. */
static napi_value weight_matmul_t(napi_env env, napi_callback_info info) {
  Arg a[4];
  if (!parse_args(env, info, "weightMatmulT", "WFFn", a)) return NULL;
  const ls_weight *w = *a[0].weight;
  const int64_t n = a[3].count;
  if (!holds(env, "weightMatmulT", a, 1, n * w->rows) || !holds(env, "weightMatmulT", a, 2, n * w->cols)) return NULL;
  if (!ls_weight_matmul_t(w, a[1].f, a[2].f, n, lorasmith_blas_get_threads()))
    THROW(env, "NATIVE_OUT_OF_MEMORY", "weightMatmulT: no memory for the tile buffers");
  return NULL;
}

/* weightGather(weight, ids, out, n) -> -1 or the first position whose id is outside [0, rows). */
static napi_value weight_gather(napi_env env, napi_callback_info info) {
  Arg a[4];
  if (!parse_args(env, info, "weightGather", "WIFn", a)) return NULL;
  const ls_weight *w = *a[0].weight;
  const int64_t n = a[3].count;
  if (!holds(env, "weightGather", a, 1, n) || !holds(env, "weightGather", a, 2, n * w->cols)) return NULL;
  return make_int64(env, ls_weight_gather(w, a[1].i, a[2].f, n));
}

/* weightDequantize(weight, row0, rows, out): rows [row0, row0 + rows) as float32. */
static napi_value weight_dequantize(napi_env env, napi_callback_info info) {
  Arg a[4];
  if (!parse_args(env, info, "weightDequantize", "WnnF", a)) return NULL;
  const ls_weight *w = *a[0].weight;
  const int64_t row0 = a[1].count, rows = a[2].count;
  if (!rows_in_bounds(env, "weightDequantize", w, row0, rows)) return NULL;
  if (!holds(env, "weightDequantize", a, 3, rows * w->cols)) return NULL;
  ls_weight_dequantize(w, row0, rows, 0, w->cols, a[3].f, w->cols);
  return NULL;
}

/* weightRead(weight, row0, rows, out): rows [row0, row0 + rows) as GGUF lays out the weight's format (bytes). */
static napi_value weight_read(napi_env env, napi_callback_info info) {
  Arg a[4];
  if (!parse_args(env, info, "weightRead", "WnnA", a)) return NULL;
  const ls_weight *w = *a[0].weight;
  const int64_t row0 = a[1].count, rows = a[2].count;
  if (!rows_in_bounds(env, "weightRead", w, row0, rows)) return NULL;
  const uint64_t need = (uint64_t)(rows * ls_weight_row_bytes(w));
  if (need > a[3].bytes)
    THROW(env, "NATIVE_OUT_OF_BOUNDS", "weightRead: the output holds %zu bytes, %lld rows of %s need %llu", a[3].bytes,
          (long long)rows, FORMAT_NAMES[w->format], (unsigned long long)need);
  ls_weight_read(w, row0, rows, (uint8_t *)a[3].raw);
  return NULL;
}

static napi_value weight_free(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *holder = NULL;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype kind;
  if (argc != 1 || napi_typeof(env, argv[0], &kind) != napi_ok || kind != napi_external ||
      napi_get_value_external(env, argv[0], &holder) != napi_ok || holder == NULL)
    THROW(env, "NATIVE_BAD_ARGUMENT", "weightFree takes one frozen weight");
  ls_weight **w = (ls_weight **)holder;
  ls_weight_free(*w); /* freeing twice is harmless: the second finds NULL */
  *w = NULL;
  return NULL;
}

static napi_value weight_info(napi_env env, napi_callback_info info) {
  Arg a[1];
  if (!parse_args(env, info, "weightInfo", "W", a)) return NULL;
  const ls_weight *w = *a[0].weight;
  napi_value result, format, rows, cols, bytes;
  CHECK_NAPI(env, napi_create_object(env, &result));
  CHECK_NAPI(env, napi_create_string_utf8(env, FORMAT_NAMES[w->format], NAPI_AUTO_LENGTH, &format));
  CHECK_NAPI(env, napi_create_int64(env, w->rows, &rows));
  CHECK_NAPI(env, napi_create_int64(env, w->cols, &cols));
  CHECK_NAPI(env, napi_create_int64(env, (int64_t)w->bytes, &bytes));
  CHECK_NAPI(env, napi_set_named_property(env, result, "format", format));
  CHECK_NAPI(env, napi_set_named_property(env, result, "rows", rows));
  CHECK_NAPI(env, napi_set_named_property(env, result, "cols", cols));
  CHECK_NAPI(env, napi_set_named_property(env, result, "bytes", bytes));
  return result;
}

static napi_value weight_live_bytes(napi_env env, napi_callback_info info) {
  (void)info;
  return make_int64(env, ls_weight_live_bytes());
}

static napi_value weight_kernels(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  CHECK_NAPI(env, napi_create_string_utf8(env, ls_weight_kernels(), NAPI_AUTO_LENGTH, &result));
  return result;
}

/* weightForcePortable(on) -> the previous setting: tests run the portable kernels beside the AVX2 ones. */
static napi_value weight_force_portable(napi_env env, napi_callback_info info) {
  Arg a[1];
  if (!parse_args(env, info, "weightForcePortable", "b", a)) return NULL;
  napi_value result;
  CHECK_NAPI(env, napi_get_boolean(env, ls_weight_force_portable(a[0].flag) != 0, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"sgemm", NULL, sgemm, NULL, NULL, NULL, napi_default_method, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_default_method, NULL},
      {"getThreads", NULL, get_threads, NULL, NULL, NULL, napi_default_method, NULL},
      {"physicalCores", NULL, physical_cores, NULL, NULL, NULL, napi_default_method, NULL},
      {"info", NULL, describe, NULL, NULL, NULL, napi_default_method, NULL},
      {"rotary", NULL, rotary, NULL, NULL, NULL, napi_default_method, NULL},
      {"swiglu", NULL, swiglu, NULL, NULL, NULL, napi_default_method, NULL},
      {"swigluGrad", NULL, swiglu_grad, NULL, NULL, NULL, napi_default_method, NULL},
      {"rmsNorm", NULL, rms_norm, NULL, NULL, NULL, napi_default_method, NULL},
      {"rmsNormGrad", NULL, rms_norm_grad, NULL, NULL, NULL, napi_default_method, NULL},
      {"crossEntropy", NULL, cross_entropy, NULL, NULL, NULL, napi_default_method, NULL},
      {"crossEntropyGrad", NULL, cross_entropy_grad, NULL, NULL, NULL, napi_default_method, NULL},
      {"gather", NULL, gather, NULL, NULL, NULL, napi_default_method, NULL},
      {"attention", NULL, attention, NULL, NULL, NULL, napi_default_method, NULL},
      {"attentionGrad", NULL, attention_grad, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightCreate", NULL, weight_create, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightFill", NULL, weight_fill, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightMatmul", NULL, weight_matmul, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightMatmulT", NULL, weight_matmul_t, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightGather", NULL, weight_gather, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightDequantize", NULL, weight_dequantize, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightRead", NULL, weight_read, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightFree", NULL, weight_free, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightInfo", NULL, weight_info, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightLiveBytes", NULL, weight_live_bytes, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightKernels", NULL, weight_kernels, NULL, NULL, NULL, napi_default_method, NULL},
      {"weightForcePortable", NULL, weight_force_portable, NULL, NULL, NULL, napi_default_method, NULL},
  };
  ls_weight_kernels(); /* detects the CPU's features once, before any worker thread asks */
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
