/* GEMM throughput on the model's own shapes, one thread: OpenBLAS sgemm (what
 * the model uses now) against oneDNN's matmul in fp32 and in bf16 (bf16
 * inputs, fp32 accumulation and output; AVX512-BF16 where the CPU has it).
 * It measures how far the one-core forward target (150 k points/s at
 * 0.847 MFLOP/point = 127 GFLOP/s) is from each kernel, and prints the
 * forward rate the linear layers alone would allow.
 *   OMP_NUM_THREADS=1 gemm_dnnl [reps]
 * oneDNN is optional: without it (libdnnl-dev) this benchmark is not built. */
#include <cblas.h>
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define CHECK(x)                                                                   \
  do {                                                                             \
    dnnl_status_t st_ = (x);                                                       \
    if (st_ != dnnl_success) {                                                     \
      fprintf(stderr, "gemm_dnnl: %s failed (oneDNN status %d)\n", #x, (int)st_); \
      exit(1);                                                                     \
    }                                                                              \
  } while (0)

typedef struct shape {
  const char *what;
  int m, k, n;
} shape;

/* GFLOP/s of C(m,n) = A(m,k) B(k,n) with oneDNN, weights in its preferred layout. */
static double dnnl_rate(dnnl_engine_t eng, dnnl_stream_t strm, const shape *s, dnnl_data_type_t dt, int reps,
                        const char **impl) {
  dnnl_memory_desc_t a, b, c;
  dnnl_dims_t da = {s->m, s->k}, db = {s->k, s->n}, dc = {s->m, s->n};
  CHECK(dnnl_memory_desc_init_by_tag(&a, 2, da, dt, dnnl_ab));
  CHECK(dnnl_memory_desc_init_by_tag(&b, 2, db, dt, dnnl_format_tag_any));
  CHECK(dnnl_memory_desc_init_by_tag(&c, 2, dc, dnnl_f32, dnnl_ab));
  dnnl_matmul_desc_t md;
  CHECK(dnnl_matmul_desc_init(&md, &a, &b, NULL, &c));
  dnnl_primitive_desc_t pd;
  CHECK(dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL));
  CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, impl));
  dnnl_primitive_t p;
  CHECK(dnnl_primitive_create(&p, pd));
  dnnl_memory_t ma, mb, mc;
  CHECK(dnnl_memory_create(&ma, &a, eng, DNNL_MEMORY_ALLOCATE));
  CHECK(dnnl_memory_create(&mb, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), eng,
                           DNNL_MEMORY_ALLOCATE));
  CHECK(dnnl_memory_create(&mc, &c, eng, DNNL_MEMORY_ALLOCATE));
  /* Inputs of the model's magnitude (bf16 of 0.0 would run the same, but
   * denormal-free data is what the model sees). */
  size_t esz = dt == dnnl_bf16 ? 2 : 4;
  void *ha, *hb;
  CHECK(dnnl_memory_get_data_handle(ma, &ha));
  CHECK(dnnl_memory_get_data_handle(mb, &hb));
  memset(ha, 0x3c, (size_t)s->m * s->k * esz);
  memset(hb, 0x3c, dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)));
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
  for (int i = 0; i < 10; i++) CHECK(dnnl_primitive_execute(p, strm, 3, args));
  CHECK(dnnl_stream_wait(strm));
  double best = 1e30;
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    for (int i = 0; i < reps; i++) CHECK(dnnl_primitive_execute(p, strm, 3, args));
    CHECK(dnnl_stream_wait(strm));
    double t = now() - t0;
    best = t < best ? t : best;
  }
  dnnl_memory_destroy(ma);
  dnnl_memory_destroy(mb);
  dnnl_memory_destroy(mc);
  dnnl_primitive_destroy(p);
  dnnl_primitive_desc_destroy(pd);
  return 2.0 * s->m * s->k * s->n * reps / best / 1e9;
}

static double blas_rate(const shape *s, int reps) {
  float *a = malloc((size_t)s->m * s->k * sizeof *a), *b = malloc((size_t)s->k * s->n * sizeof *b),
        *c = malloc((size_t)s->m * s->n * sizeof *c);
  if (!a || !b || !c) {
    fprintf(stderr, "gemm_dnnl: out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < (size_t)s->m * s->k; i++) a[i] = 0.01f * (float)(i % 97);
  for (size_t i = 0; i < (size_t)s->k * s->n; i++) b[i] = 0.01f * (float)(i % 89);
  double best = 1e30;
  for (int r = 0; r < 6; r++) {
    double t0 = now();
    for (int i = 0; i < reps; i++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->m, s->n, s->k, 1.0f, a, s->k, b, s->n, 0.0f, c, s->n);
    double t = now() - t0;
    if (r > 0) best = t < best ? t : best; /* first pass warms up */
  }
  free(a), free(b), free(c);
  return 2.0 * s->m * s->k * s->n * reps / best / 1e9;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 200;
  if (reps < 1) {
    fprintf(stderr, "usage: gemm_dnnl [reps >= 1]\n");
    return 2;
  }
  openblas_set_num_threads(1);
  dnnl_engine_t eng;
  dnnl_stream_t strm;
  CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
  CHECK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
  /* 64 windows x 50 rows; d = M = 138 (the reference size). */
  const shape sh[] = {{"QKV 138->414", 3200, 138, 414},
                      {"proj/expert/embed 138->138", 3200, 138, 138},
                      {"1024^3", 1024, 1024, 1024}};
  double lin_f32 = 0, lin_bf16 = 0, lin_blas = 0;
  printf("%-28s %12s %12s %12s  %s\n", "shape (one thread)", "OpenBLAS", "oneDNN f32", "oneDNN bf16", "oneDNN kernels");
  for (size_t i = 0; i < sizeof sh / sizeof *sh; i++) {
    const char *i32 = "", *i16 = "";
    int r = sh[i].m == 1024 ? reps / 20 + 1 : reps;
    double gb = blas_rate(&sh[i], r), g32 = dnnl_rate(eng, strm, &sh[i], dnnl_f32, r, &i32),
           g16 = dnnl_rate(eng, strm, &sh[i], dnnl_bf16, r, &i16);
    printf("%-28s %8.1f GF/s %8.1f GF/s %8.1f GF/s  %s / %s\n", sh[i].what, gb, g32, g16, i32, i16);
    if (i == 0) lin_blas = gb, lin_f32 = g32, lin_bf16 = g16;
  }
  /* Linear layers per point: 3 x (QKV 114 k + projection 38 k + expert 76 k)
   * + embedding and decoder 76 k = 0.760 MFLOP; the whole forward 0.847. */
  const double lin = 0.760e6;
  printf("linear layers alone would allow: OpenBLAS %.0f k, oneDNN f32 %.0f k, oneDNN bf16 %.0f k points/s "
         "(target 150 k for the whole forward)\n",
         lin_blas * 1e9 / lin / 1e3, lin_f32 * 1e9 / lin / 1e3, lin_bf16 * 1e9 / lin / 1e3);
  dnnl_stream_destroy(strm);
  dnnl_engine_destroy(eng);
  return 0;
}
