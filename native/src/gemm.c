/*
 * tagi_gemm: a tiny N-API add-on that runs OpenBLAS's sgemm directly on the wasm backend's heap.
 *
 * Why: tfjs-backend-wasm's GEMM is single-threaded XNNPACK for plain 2-D products and a scalar loop for
 * every transposed or batched product. The tensors already live in one linear memory (the wasm heap, a
 * SharedArrayBuffer when wasm threads are on), so the fastest path is to hand OpenBLAS pointers into that
 * memory: no copies, transposes folded into the BLAS call, batches as strided calls.
 *
 * All offsets and strides are in float elements from the start of the Float32Array passed as `heap`.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

/* OpenBLAS extensions (declared in its cblas.h on Debian, repeated here for other layouts). */
extern void openblas_set_num_threads(int num_threads);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error((env), NULL, "tagi_gemm: N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static int64_t get_i64(napi_env env, napi_value v, int *ok) {
  int64_t out = 0;
  if (napi_get_value_int64(env, v, &out) != napi_ok) *ok = 0;
  return out;
}

/* One strided batch of products, [b0, b1). */
typedef struct {
  float *heap;
  int64_t b0, b1, M, N, K, aOff, aStride, bOff, bStride, cOff, cStride;
  bool ta, tb;
} batch_job;

static void run_batch(const batch_job *j) {
  const int lda = j->ta ? (int)j->M : (int)j->K;
  const int ldb = j->tb ? (int)j->K : (int)j->N;
  for (int64_t b = j->b0; b < j->b1; b++) {
    float *C = j->heap + j->cOff + b * j->cStride;
    if (j->K == 0) {
      memset(C, 0, sizeof(float) * (size_t)(j->M * j->N));
      continue;
    }
    cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, (int)j->M,
                (int)j->N, (int)j->K, 1.0f, j->heap + j->aOff + b * j->aStride, lda, j->heap + j->bOff + b * j->bStride,
                ldb, 0.0f, C, (int)j->N);
  }
}

static void *run_batch_thread(void *arg) {
  run_batch((const batch_job *)arg);
  return NULL;
}

/*
 * Batches are split across threads, each product single-threaded: below this many multiply-adds per product
 * OpenBLAS's own threading costs more than it gains (attention's [128,64]x[64,128] products ran at ~13
 * GFLOP/s on 2 threads, ~35 split), and for large products it is as fast when the split is balanced.
 */
#define SMALL_PRODUCT_MACS (8LL << 20)
#define MAX_BATCH_THREADS 64

/*
 * sgemm(heap, batch, M, N, K, transA, transB, aOff, aStride, bOff, bStride, cOff, cStride)
 * For b in [0, batch): C_b[M,N] = op(A_b) · op(B_b), row-major, with op(A) = A^T when transA.
 * A stride of 0 broadcasts that operand over the batch.
 */
static napi_value Sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value argv[13];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 13) {
    napi_throw_type_error(env, NULL, "tagi_gemm.sgemm expects 13 arguments");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  napi_value ab;
  size_t byte_offset = 0;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &byte_offset) != napi_ok ||
      type != napi_float32_array) {
    napi_throw_type_error(env, NULL, "tagi_gemm.sgemm: heap must be a Float32Array");
    return NULL;
  }
  int ok = 1;
  int64_t v[12];
  for (int i = 0; i < 12; i++) v[i] = get_i64(env, argv[i + 1], &ok);
  bool ta = false, tb = false;
  if (!ok) {
    napi_throw_type_error(env, NULL, "tagi_gemm.sgemm: numeric arguments expected");
    return NULL;
  }
  ta = v[4] != 0;
  tb = v[5] != 0;
  const int64_t batch = v[0], M = v[1], N = v[2], K = v[3];
  const int64_t aOff = v[6], aStride = v[7], bOff = v[8], bStride = v[9], cOff = v[10], cStride = v[11];
  if (batch < 0 || M < 0 || N < 0 || K < 0) {
    napi_throw_range_error(env, NULL, "tagi_gemm.sgemm: negative dimension");
    return NULL;
  }
  const int64_t len = (int64_t)length;
  const int64_t last = batch > 0 ? batch - 1 : 0;
  if (batch > 0 && M > 0 && N > 0 &&
      (aOff < 0 || bOff < 0 || cOff < 0 || aOff + last * aStride + M * K > len ||
       bOff + last * bStride + K * N > len || cOff + last * cStride + M * N > len)) {
    napi_throw_range_error(env, NULL, "tagi_gemm.sgemm: operand outside the heap");
    return NULL;
  }
  batch_job job = {(float *)data, 0, batch, M, N, K, aOff, aStride, bOff, bStride, cOff, cStride, ta, tb};
  const int threads = openblas_get_num_threads();
  /* Batch-parallel when it balances (or products are small); otherwise OpenBLAS threads each product. */
  const bool balanced = batch % threads == 0 || batch >= 4 * threads;
  if (threads >= 2 && batch * M * N * K < SMALL_PRODUCT_MACS) {
    /* Too small to share: one thread, so OpenBLAS's workers stay asleep (waking them costs more than the
       product, and while they spin they take the core the wasm kernels between products need). */
    openblas_set_num_threads(1);
    run_batch(&job);
    openblas_set_num_threads(threads);
    return NULL;
  }
  if (batch < 2 || threads < 2 || (M * N * K >= SMALL_PRODUCT_MACS && !balanced)) {
    run_batch(&job);
    return NULL;
  }
  int workers = threads < batch ? threads : (int)batch;
  if (workers > MAX_BATCH_THREADS) workers = MAX_BATCH_THREADS;
  batch_job jobs[MAX_BATCH_THREADS];
  pthread_t tids[MAX_BATCH_THREADS];
  bool started[MAX_BATCH_THREADS] = {false};
  openblas_set_num_threads(1);
  for (int w = 0; w < workers; w++) {
    jobs[w] = job;
    jobs[w].b0 = batch * w / workers;
    jobs[w].b1 = batch * (w + 1) / workers;
    /* worker 0 runs on this thread; the others on fresh pthreads */
    if (w > 0) started[w] = pthread_create(&tids[w], NULL, run_batch_thread, &jobs[w]) == 0;
  }
  run_batch(&jobs[0]);
  for (int w = 1; w < workers; w++) {
    if (started[w]) pthread_join(tids[w], NULL);
    else run_batch(&jobs[w]); /* could not start a thread: do its share here */
  }
  openblas_set_num_threads(threads);
  return NULL;
}

static napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t n = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) {
    napi_throw_range_error(env, NULL, "tagi_gemm.setThreads expects a positive integer");
    return NULL;
  }
  openblas_set_num_threads(n);
  return NULL;
}

static napi_value GetThreads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(env, napi_create_int32(env, openblas_get_num_threads(), &out));
  return out;
}

static napi_value Config(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  const char *c = openblas_get_config();
  CHECK(env, napi_create_string_utf8(env, c ? c : "unknown", NAPI_AUTO_LENGTH, &out));
  return out;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * peakGflops(n, reps): the machine's native fp32 GEMM rate, measured in C on n x n matrices (best of reps),
 * so the bench can state every tfjs figure as a fraction of what this machine's BLAS achieves.
 */
static napi_value PeakGflops(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t n = 1024, reps = 5;
  if (argc >= 1) napi_get_value_int32(env, argv[0], &n);
  if (argc >= 2) napi_get_value_int32(env, argv[1], &reps);
  if (n < 1 || reps < 1) {
    napi_throw_range_error(env, NULL, "tagi_gemm.peakGflops: n and reps must be positive");
    return NULL;
  }
  float *a = malloc(sizeof(float) * (size_t)n * n), *b = malloc(sizeof(float) * (size_t)n * n),
        *c = malloc(sizeof(float) * (size_t)n * n);
  if (!a || !b || !c) {
    free(a), free(b), free(c);
    napi_throw_error(env, NULL, "tagi_gemm.peakGflops: out of memory");
    return NULL;
  }
  for (int64_t i = 0; i < (int64_t)n * n; i++) {
    a[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
    b[i] = (float)((i * 5) % 11) / 11.0f - 0.5f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = now_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double dt = now_seconds() - t0;
    if (dt < best) best = dt;
  }
  free(a), free(b), free(c);
  napi_value out;
  CHECK(env, napi_create_double(env, 2.0 * n * (double)n * n / best / 1e9, &out));
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sgemm", NULL, Sgemm, NULL, NULL, NULL, napi_default, NULL},
      {"setThreads", NULL, SetThreads, NULL, NULL, NULL, napi_default, NULL},
      {"getThreads", NULL, GetThreads, NULL, NULL, NULL, napi_default, NULL},
      {"config", NULL, Config, NULL, NULL, NULL, napi_default, NULL},
      {"peakGflops", NULL, PeakGflops, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
