/*
 * tagi_tf_ops: two TensorFlow custom ops (TensorFlow's C kernel API) that compute the vocabulary-sized part of
 * L_ce and the cached top-k L_kl in one pass over the logits, and their gradient in one more.
 *
 * Why: at T5's 32,128-token vocabulary the logits are the largest tensors of a training step, and the composed
 * form (two log-softmaxes at temperatures 1 and T, their exps in the backward, a one-hot, a scatter) makes
 * ~20 passes over them: 0.32-0.41 s of a 1.6 s TAGI stage-2 step (tf.profile of bench/tagi-step.ts).
 * TensorFlow's op set has no fused form (its SparseSoftmaxCrossEntropyWithLogits was measured slower here than
 * the composed CE). These kernels read the logits once in the forward (max, then both exp-sums) and once in
 * the backward (writing the gradient), with both exps vectorised.
 *
 * The ops are registered in TensorFlow's global registries when this N-API module loads; tfjs-node, which
 * links the same libtensorflow_framework.so.2, then runs them by name (src/backend/fused-ce-kl.ts).
 *
 * Per row n of z = logits[N, V] (labels[n] = -100 means "ignored", as in HF), s = z / T:
 *   lse1 = logsumexp(z), lse2 = logsumexp(s), lseRest = logsumexp of s outside the teacher's top-k ids
 *   ce_n = lse1 - z[label]                       (0 for ignored rows)
 *   log q_i = s[id_i] - lse2; log q_rest = lseRest - lse2, clamped at log(1e-30)
 *   kl_n = sum_i p_i (log p_i - log q_i) + p_rest (log p_rest - log q_rest)
 * Backward, with per-row coefficients a_n (of ce_n) and c_n (of kl_n, already divided by T), P = sum_i p_i +
 * p_rest (1, or 0 on a padded position):
 *   dz_j = a_n (softmax(z)_j - [j = label]) + c_n (P q_j - [j in top] p_j - [j not in top] p_rest q_j / q_rest)
 * the gradient of the composed forms in src/tagi/teacher-logit-cache.ts and src/model/t5.ts. One difference,
 * on purpose: they take q_rest = 1 - sum_i q_i, which cancels catastrophically when the student puts nearly
 * all its mass on the teacher's top-k (q_rest at 1e-7 has no correct digit in float32, and their gradient is
 * then a difference of terms of size p_rest / q_rest); here q_rest is summed over the other ids directly and
 * the gradient has no term larger than 1. The tests (test/fused-ce-kl.test.ts) compare with the composed
 * forms on the cpu backend where both are well conditioned, and with a float64 evaluation where they are not.
 */
#define NAPI_VERSION 8
#include <float.h>
#include <math.h>
#include <node_api.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ops.h declares these as C++ structs; C needs the typedefs. */
typedef struct TF_DimensionHandle TF_DimensionHandle;
typedef struct TF_OpDefinitionBuilder TF_OpDefinitionBuilder;
typedef struct TF_ShapeHandle TF_ShapeHandle;
typedef struct TF_ShapeInferenceContext TF_ShapeInferenceContext;
#include "tensorflow/c/kernels.h"
#include "tensorflow/c/ops.h"
#include "tensorflow/c/tf_status.h"
#include "tensorflow/c/tf_tensor.h"

#define FWD "TagiCeKlForward"
#define BWD "TagiCeKlBackward"

static int g_threads = 1;

/* Columns of the forward's per-row output: lse1, lse2, ce_n, kl_n, lseRest. */
#define ROW 5

/* A per-thread mask over the vocabulary: 1 outside the row's top-k ids, 0 on them (set and reset per row). */
static float *new_keep(int64_t v) {
  float *keep = malloc(sizeof(float) * (size_t)v);
  if (keep)
    for (int64_t j = 0; j < v; j++) keep[j] = 1.f;
  return keep;
}

/*
 * Row statistics: lse1 = logsumexp(z), and with want2 lse2 = logsumexp(z/T) and lseRest = logsumexp of z/T
 * over the ids where keep[j] = 1 (those outside the teacher's top-k; -inf when that set has no mass).
 */
static void row_stats(const float *z, const float *keep, int64_t v, float inv_t, int want2, float *lse1, float *lse2,
                      float *lse_rest) {
  float m = -FLT_MAX; /* finite: the file builds with -ffast-math (glibc vectorises expf only then) */
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < v; j++) m = z[j] > m ? z[j] : m;
  float s1 = 0.f, s2 = 0.f, sr = 0.f;
  if (want2) {
#pragma omp simd reduction(+ : s1, s2, sr)
    for (int64_t j = 0; j < v; j++) {
      const float d = z[j] - m, e2 = expf(d * inv_t);
      s1 += expf(d);
      s2 += e2;
      sr += e2 * keep[j];
    }
  } else {
#pragma omp simd reduction(+ : s1)
    for (int64_t j = 0; j < v; j++) s1 += expf(z[j] - m);
  }
  *lse1 = m + logf(s1);
  *lse2 = want2 ? m * inv_t + logf(s2) : 0.f;
  *lse_rest = want2 && sr > 0.f ? m * inv_t + logf(sr) : -FLT_MAX;
}

/* log q_rest, clamped at log(1e-30) as the composed form's max(q_rest, 1e-30); *clamped says whether it was. */
static float log_q_rest(float lse2, float lse_rest, int *clamped) {
  const float lq = lse_rest - lse2, floor_ = -69.07755279f; /* log(1e-30) */
  *clamped = !(lq >= floor_);
  return *clamped ? floor_ : lq;
}

typedef struct {
  TF_Tensor *t;
  int64_t d0, d1;
} input_t;

/* Reads input i, checking dtype and rank; on failure sets the context's status and returns 0. */
static int get_input(TF_OpKernelContext *ctx, int i, TF_DataType dt, int rank, const char *name, input_t *out,
                     TF_Status *st) {
  TF_GetInput(ctx, i, &out->t, st);
  if (TF_GetCode(st) != TF_OK) return 0;
  char msg[200];
  if (TF_TensorType(out->t) != dt || TF_NumDims(out->t) != rank) {
    snprintf(msg, sizeof msg, "%s: input '%s' must be rank %d of dtype %d, got rank %d of dtype %d", FWD, name, rank,
             (int)dt, TF_NumDims(out->t), (int)TF_TensorType(out->t));
    TF_SetStatus(st, TF_INVALID_ARGUMENT, msg);
    return 0;
  }
  out->d0 = rank > 0 ? TF_Dim(out->t, 0) : 1;
  out->d1 = rank > 1 ? TF_Dim(out->t, 1) : 1;
  return 1;
}

/* Shared checks of both ops' first five inputs: logits [N,V], labels [N], ids [N,k], logp [N,k], logRest [N]. */
static int check_common(const input_t *in, TF_Status *st) {
  const int64_t n = in[0].d0, k = in[2].d1;
  if (in[1].d0 != n || in[2].d0 != n || in[3].d0 != n || in[3].d1 != k || in[4].d0 != n) {
    TF_SetStatus(st, TF_INVALID_ARGUMENT, "TagiCeKl: labels [N], ids [N,k], logp [N,k] and logRest [N] must match logits [N,V]");
    return 0;
  }
  const int64_t v = in[0].d1;
  const int32_t *labels = TF_TensorData(in[1].t), *ids = TF_TensorData(in[2].t);
  for (int64_t r = 0; r < n; r++)
    if (labels[r] >= v || (labels[r] < 0 && labels[r] != -100)) {
      TF_SetStatus(st, TF_INVALID_ARGUMENT, "TagiCeKl: a label is outside [0, vocabulary size) and not -100 (ignored)");
      return 0;
    }
  for (int64_t r = 0; r < n * k; r++)
    if (ids[r] < 0 || ids[r] >= v) {
      TF_SetStatus(st, TF_INVALID_ARGUMENT, "TagiCeKl: a cached teacher id is outside [0, vocabulary size)");
      return 0;
    }
  return 1;
}

/* The inputs of both ops, as pointers, and the output being written. */
typedef struct {
  int64_t n, v, k;
  const float *z, *logp, *log_rest, *rows, *a, *c; /* rows, a, c: the backward's */
  const int32_t *labels, *ids;
  float inv_t;
  float *out;
} op_args;

/* Forward, one row: rows[r] = lse1, lse2, ce_n, kl_n, lseRest. */
static void forward_row(const op_args *x, int64_t r, float *keep) {
  const int64_t v = x->v, k = x->k;
  const float *zr = x->z + r * v;
  const int32_t *idr = x->ids + r * k;
  for (int64_t i = 0; i < k; i++) keep[idr[i]] = 0.f;
  float lse1, lse2, lse_rest;
  row_stats(zr, keep, v, x->inv_t, k > 0, &lse1, &lse2, &lse_rest);
  for (int64_t i = 0; i < k; i++) keep[idr[i]] = 1.f;
  float kl = 0.f;
  if (k > 0) {
    float top = 0.f;
    for (int64_t i = 0; i < k; i++) {
      const float lp = x->logp[r * k + i];
      top += expf(lp) * (lp - (zr[idr[i]] * x->inv_t - lse2));
    }
    int clamped;
    const float lr = x->log_rest[r];
    kl = top + expf(lr) * (lr - log_q_rest(lse2, lse_rest, &clamped));
  }
  const int32_t label = x->labels[r];
  float *o = x->out + r * ROW;
  o[0] = lse1;
  o[1] = lse2;
  o[2] = label >= 0 ? lse1 - zr[label] : 0.f;
  o[3] = kl;
  o[4] = lse_rest;
}

/* Backward, one row of dz (the formula in the file's comment). */
static void backward_row(const op_args *x, int64_t r, float *keep) {
  const int64_t v = x->v, k = x->k;
  const float *zr = x->z + r * v, *o = x->rows + r * ROW;
  const int32_t *idr = x->ids + r * k;
  float *dr = x->out + r * v;
  const float ar = x->a[r], cr = k > 0 ? x->c[r] : 0.f, lse1 = o[0], lse2 = o[1], inv_t = x->inv_t;
  if (ar == 0.f && cr == 0.f) {
    memset(dr, 0, sizeof(float) * v);
    return;
  }
  if (cr == 0.f) {
#pragma omp simd
    for (int64_t j = 0; j < v; j++) dr[j] = ar * expf(zr[j] - lse1);
  } else {
    /* dz_j = a p1_j + c (P q_j - [j in top] p_j - [j not in top] p_rest q_j / q_rest): with P the teacher's
       total mass (1, or 0 on a padded position) and q_j / q_rest = exp(s_j - lseRest) <= 1, so no large terms
       cancel however small q_rest is. */
    float big_p = expf(x->log_rest[r]);
    for (int64_t i = 0; i < k; i++) big_p += expf(x->logp[r * k + i]);
    int clamped;
    log_q_rest(lse2, o[4], &clamped);
    /* clamped: the rest term is constant (max's gradient is 0); lse2 keeps the exp below finite */
    const float rest = clamped ? 0.f : cr * expf(x->log_rest[r]), cp = cr * big_p, lse_rest = clamped ? lse2 : o[4];
    for (int64_t i = 0; i < k; i++) keep[idr[i]] = 0.f;
#pragma omp simd
    for (int64_t j = 0; j < v; j++) {
      const float s = zr[j] * inv_t;
      dr[j] = ar * expf(zr[j] - lse1) + cp * expf(s - lse2) - rest * keep[j] * expf(s - lse_rest);
    }
    for (int64_t i = 0; i < k; i++) {
      keep[idr[i]] = 1.f;
      dr[idr[i]] -= cr * expf(x->logp[r * k + i]);
    }
  }
  if (x->labels[r] >= 0) dr[x->labels[r]] -= ar;
}

/* Runs `row` over every row on g_threads threads, each with its own mask; 0 when a mask could not be allocated. */
static int for_each_row(const op_args *x, void (*row)(const op_args *, int64_t, float *)) {
  int oom = 0;
#pragma omp parallel num_threads(g_threads)
  {
    float *keep = new_keep(x->v);
    if (!keep) {
#pragma omp atomic write
      oom = 1;
    }
#pragma omp for schedule(static)
    for (int64_t r = 0; r < x->n; r++)
      if (keep) row(x, r, keep);
    free(keep);
  }
  return !oom;
}

/*
 * Both ops. Forward inputs: logits, labels, ids, logp, logRest, invT (scalar); output rows [N, 5].
 * Backward: the same, then rows [N, 5] (the forward's), a [N], c [N]; output dz [N, V].
 */
static void compute(TF_OpKernelContext *ctx, int backward) {
  const char *op = backward ? BWD : FWD;
  TF_Status *st = TF_NewStatus();
  input_t in[9] = {0};
  const char *names[] = {"logits", "labels", "ids", "logp", "logRest", "invT", "rows", "a", "c"};
  const int ranks[] = {2, 1, 2, 2, 1, 0, 2, 1, 1};
  const TF_DataType types[] = {TF_FLOAT, TF_INT32, TF_INT32, TF_FLOAT, TF_FLOAT, TF_FLOAT, TF_FLOAT, TF_FLOAT, TF_FLOAT};
  const int n_in = backward ? 9 : 6;
  TF_Tensor *out = NULL;
  for (int i = 0; i < n_in; i++)
    if (!get_input(ctx, i, types[i], ranks[i], names[i], &in[i], st)) goto done;
  if (!check_common(in, st)) goto done;
  op_args x = {.n = in[0].d0, .v = in[0].d1, .k = in[2].d1};
  if (backward && (in[6].d0 != x.n || in[6].d1 != ROW || in[7].d0 != x.n || in[8].d0 != x.n)) {
    TF_SetStatus(st, TF_INVALID_ARGUMENT, BWD ": rows [N,5], a [N] and c [N] must match logits [N,V]");
    goto done;
  }
  x.z = TF_TensorData(in[0].t);
  x.labels = TF_TensorData(in[1].t);
  x.ids = TF_TensorData(in[2].t);
  x.logp = TF_TensorData(in[3].t);
  x.log_rest = TF_TensorData(in[4].t);
  x.inv_t = *(const float *)TF_TensorData(in[5].t);
  if (backward) {
    x.rows = TF_TensorData(in[6].t);
    x.a = TF_TensorData(in[7].t);
    x.c = TF_TensorData(in[8].t);
  }
  const int64_t dims[2] = {x.n, backward ? x.v : ROW};
  out = TF_AllocateOutput(ctx, 0, TF_FLOAT, dims, 2, sizeof(float) * (size_t)(dims[0] * dims[1]), st);
  if (TF_GetCode(st) != TF_OK) goto done;
  x.out = TF_TensorData(out);
  if (!for_each_row(&x, backward ? backward_row : forward_row)) {
    char msg[120];
    snprintf(msg, sizeof msg, "%s: out of memory for a row mask", op);
    TF_SetStatus(st, TF_RESOURCE_EXHAUSTED, msg);
  }
done:
  if (TF_GetCode(st) != TF_OK) TF_OpKernelContext_Failure(ctx, st);
  for (int i = 0; i < n_in; i++)
    if (in[i].t) TF_DeleteTensor(in[i].t);
  if (out) TF_DeleteTensor(out);
  TF_DeleteStatus(st);
}

static void forward_compute(void *kernel, TF_OpKernelContext *ctx) {
  (void)kernel;
  compute(ctx, 0);
}

static void backward_compute(void *kernel, TF_OpKernelContext *ctx) {
  (void)kernel;
  compute(ctx, 1);
}

static void unknown_shape(TF_ShapeInferenceContext *ctx, TF_Status *st) { TF_ShapeInferenceContextSetUnknownShape(ctx, st); }

/* Registers one op and its CPU kernel; "already registered" (a second load in one process) counts as done. */
static const char *register_op(const char *name, const char *const *inputs, int n_in, const char *output,
                               void (*compute)(void *, TF_OpKernelContext *), char *err, size_t err_len) {
  TF_Status *st = TF_NewStatus();
  TF_OpDefinitionBuilder *b = TF_NewOpDefinitionBuilder(name);
  for (int i = 0; i < n_in; i++) TF_OpDefinitionBuilderAddInput(b, inputs[i]);
  TF_OpDefinitionBuilderAddOutput(b, output);
  TF_OpDefinitionBuilderSetShapeInferenceFunction(b, unknown_shape);
  TF_RegisterOpDefinition(b, st);
  const char *result = NULL;
  if (TF_GetCode(st) == TF_ALREADY_EXISTS) goto out;
  if (TF_GetCode(st) != TF_OK) {
    snprintf(err, err_len, "registering op %s: %s", name, TF_Message(st));
    result = err;
    goto out;
  }
  TF_KernelBuilder *kb = TF_NewKernelBuilder(name, "CPU", NULL, compute, NULL);
  TF_RegisterKernelBuilder(name, kb, st);
  if (TF_GetCode(st) != TF_OK) {
    snprintf(err, err_len, "registering the CPU kernel of %s: %s", name, TF_Message(st));
    result = err;
  }
out:
  TF_DeleteStatus(st);
  return result;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t n = 1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) {
    napi_throw_error(env, NULL, "tagi_tf_ops.setThreads(n): n must be an integer >= 1");
    return NULL;
  }
  g_threads = n;
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  static const char *const fwd_in[] = {"logits: float", "labels: int32", "ids: int32", "logp: float", "log_rest: float", "inv_t: float"};
  static const char *const bwd_in[] = {"logits: float", "labels: int32", "ids: int32", "logp: float", "log_rest: float",
                                       "inv_t: float", "rows: float", "a: float", "c: float"};
  char err[512];
  const char *e = register_op(FWD, fwd_in, 6, "rows: float", forward_compute, err, sizeof err);
  if (!e) e = register_op(BWD, bwd_in, 9, "dz: float", backward_compute, err, sizeof err);
  if (e) {
    napi_throw_error(env, NULL, e);
    return NULL;
  }
  napi_value fn;
  if (napi_create_function(env, "setThreads", NAPI_AUTO_LENGTH, set_threads, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "setThreads", fn) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
