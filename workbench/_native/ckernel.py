"""A fused LSTM step for the CPU unroll: gate activations, cell and hidden in one pass.

Between two recurrent products the unroll used to run about ten element-wise PyTorch ops a
step (sigmoid, tanh, products, sums), each one a dispatch and a pass over the gates. This is
one small C function doing all of it in one pass, vectorised by the compiler, and sharing
PyTorch's OpenMP threads. It is compiled on first use with the system C compiler (about 0.3 s)
into ``~/.cache/workbench/kernels`` (or ``$WORKBENCH_CACHE/kernels``), keyed by its source, the
compiler flags and the CPU, and loaded with ctypes; nothing is downloaded. Without a compiler,
or with ``WORKBENCH_CKERNEL=0``, the unroll keeps its PyTorch ops (same results to float32
rounding). It is built for this CPU (``-march=native``) unless ``WORKBENCH_CKERNEL_MARCH``
names another target (``x86-64``: any x86-64 CPU).

The exponential is our own (Cody-Waite range reduction and a degree-6 polynomial), accurate to
about 1 ulp, so a sigmoid differs from ``torch.sigmoid`` by a few 1e-7 at most.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from workbench.config import configure, settings

_SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <omp.h>

static inline float wb_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  float k = rintf(x * 1.44269504088896341f);
  float r = x - k * 0.693359375f;
  r = r + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)k + 127) << 23;
  float s;
  memcpy(&s, &bits, 4);
  return p * s;
}

static inline float wb_sigmoid(float x) { return 1.0f / (1.0f + wb_exp(-x)); }

/* An LSTM step for one row. Gate columns are ordered (i, f, o, g) and the g columns hold
   twice their pre-activation, so tanh(z) = 2 sigmoid(2z) - 1. Every entry point below runs
   these same row functions, so a step split in stages (to apply edits between them) gives
   bit for bit the values of the fused step. */
static inline void gates_row(long H, const float *xr, const float *restrict hr, float *gr) {
#pragma GCC ivdep
  for (long j = 0; j < 3 * H; ++j) gr[j] = wb_sigmoid(xr[j] + hr[j]);
#pragma GCC ivdep
  for (long j = 3 * H; j < 4 * H; ++j) gr[j] = 2.0f * wb_sigmoid(xr[j] + hr[j]) - 1.0f;
}

static inline float hidden_of(float o, float c) { return o * (2.0f * wb_sigmoid(2.0f * c) - 1.0f); }

static inline void cell_row(long H, const float *gr, const float *restrict cpr,
                            float *restrict cr, float *restrict hor) {
#pragma GCC ivdep
  for (long j = 0; j < H; ++j) {
    float cc = gr[H + j] * cpr[j] + gr[j] * gr[3 * H + j];
    cr[j] = cc;
    hor[j] = hidden_of(gr[2 * H + j], cc);
  }
}

static inline void hidden_row(long H, const float *gr, const float *restrict cr,
                              float *restrict hor) {
#pragma GCC ivdep
  for (long j = 0; j < H; ++j) hor[j] = hidden_of(gr[2 * H + j], cr[j]);
}

/* Rows [0, n) of one step; each [n, k] argument comes with its row stride (in floats).
   gx [n, 4H] input projection + biases;  hh [n, 4H] recurrent product h_prev @ W_hh^T
   g  [n, 4H] activated gates (may be gx itself)
   cp [n, H] previous cell;  c [n, H] new cell;  h [n, H] new hidden (before projection) */
void wb_lstm_step(long n, long H, const float *gx, long gxs, const float *hh, long hs,
                  float *g, long gs, const float *cp, long cps, float *c, long cs, float *h,
                  long hos, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (long b = 0; b < n; ++b) {
    gates_row(H, gx + b * gxs, hh + b * hs, g + b * gs);
    cell_row(H, g + b * gs, cp + b * cps, c + b * cs, h + b * hos);
  }
}

/* A whole uniform sequence for a few rows, the recurrent product included, in one call: for
   small batches (a char LM reading one long document) a step's work is a few microseconds and
   calling into PyTorch for each product cost more than the product.

   The units go in blocks of 16; the recurrent weights come reordered block by block,
   wb[block][k][q * 16 + u] = W_hh[q * H + block * 16 + u][k] (gate q of unit u), so one block's
   product is 64 columns held in registers for up to 4 rows while k runs, and its gates, cells
   and hidden values follow at once. The OpenMP team splits the blocks (each thread reads only
   its share of the weights, which stays in its core's cache); one barrier a step publishes the
   hidden state for the next product.
   P [T, n, 4H] input projection + biases, gate columns as above (step, row strides pts, prs)
   h0, c0 [n, H];  G [T, n, 4H], C [T, n, H], Hh [T, n, H] outputs (step and row strides) */
#define ROWS 8
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));

static inline void block_product(const float *restrict wb, long K, const float *hp, long hps,
                                 int nr, float *restrict out) {
  /* enough independent sums for the FMA pipes (two a cycle, four cycles each): one or two rows
     keep all 64 columns and sum even and odd k apart, three or four rows go by halves of 32
     columns with even and odd k apart, more rows by halves with one sum each */
  if (nr <= 2) {
    v16 a[2][2][4];
    for (int r = 0; r < nr; ++r)
      for (int p = 0; p < 2; ++p)
        for (int i = 0; i < 4; ++i) a[r][p][i] = (v16){0};
    long k = 0;
    for (; k + 1 < K; k += 2) {
      const float *w = wb + k * 64;
      v16 x0 = *(const v16u *)w, x1 = *(const v16u *)(w + 16);
      v16 x2 = *(const v16u *)(w + 32), x3 = *(const v16u *)(w + 48);
      v16 y0 = *(const v16u *)(w + 64), y1 = *(const v16u *)(w + 80);
      v16 y2 = *(const v16u *)(w + 96), y3 = *(const v16u *)(w + 112);
      for (int r = 0; r < nr; ++r) {
        float h0 = hp[r * hps + k], h1 = hp[r * hps + k + 1];
        a[r][0][0] += h0 * x0;
        a[r][0][1] += h0 * x1;
        a[r][0][2] += h0 * x2;
        a[r][0][3] += h0 * x3;
        a[r][1][0] += h1 * y0;
        a[r][1][1] += h1 * y1;
        a[r][1][2] += h1 * y2;
        a[r][1][3] += h1 * y3;
      }
    }
    for (; k < K; ++k) {
      const float *w = wb + k * 64;
      for (int r = 0; r < nr; ++r)
        for (int i = 0; i < 4; ++i) a[r][0][i] += hp[r * hps + k] * *(const v16u *)(w + 16 * i);
    }
    for (int r = 0; r < nr; ++r)
      for (int i = 0; i < 4; ++i) *(v16u *)(out + r * 64 + i * 16) = a[r][0][i] + a[r][1][i];
    return;
  }
  if (nr <= 4) { /* by halves, even and odd k apart */
    for (int half = 0; half < 2; ++half) {
      v16 a[4][2][2];
      for (int r = 0; r < nr; ++r)
        for (int p = 0; p < 2; ++p) a[r][p][0] = a[r][p][1] = (v16){0};
      long k = 0;
      for (; k + 1 < K; k += 2) {
        const float *w = wb + k * 64 + half * 32;
        v16 x0 = *(const v16u *)w, x1 = *(const v16u *)(w + 16);
        v16 y0 = *(const v16u *)(w + 64), y1 = *(const v16u *)(w + 80);
        for (int r = 0; r < nr; ++r) {
          float h0 = hp[r * hps + k], h1 = hp[r * hps + k + 1];
          a[r][0][0] += h0 * x0;
          a[r][0][1] += h0 * x1;
          a[r][1][0] += h1 * y0;
          a[r][1][1] += h1 * y1;
        }
      }
      for (; k < K; ++k) {
        const float *w = wb + k * 64 + half * 32;
        for (int r = 0; r < nr; ++r) {
          a[r][0][0] += hp[r * hps + k] * *(const v16u *)w;
          a[r][0][1] += hp[r * hps + k] * *(const v16u *)(w + 16);
        }
      }
      for (int r = 0; r < nr; ++r) {
        *(v16u *)(out + r * 64 + half * 32) = a[r][0][0] + a[r][1][0];
        *(v16u *)(out + r * 64 + half * 32 + 16) = a[r][0][1] + a[r][1][1];
      }
    }
    return;
  }
  for (int half = 0; half < 2; ++half) { /* 32 columns x up to 8 rows in registers */
    v16 a[ROWS][2];
    for (int r = 0; r < nr; ++r) a[r][0] = a[r][1] = (v16){0};
    for (long k = 0; k < K; ++k) {
      const float *w = wb + k * 64 + half * 32;
      v16 w0 = *(const v16u *)w, w1 = *(const v16u *)(w + 16);
      for (int r = 0; r < nr; ++r) {
        float hk = hp[r * hps + k];
        a[r][0] += hk * w0;
        a[r][1] += hk * w1;
      }
    }
    for (int r = 0; r < nr; ++r) {
      *(v16u *)(out + r * 64 + half * 32) = a[r][0];
      *(v16u *)(out + r * 64 + half * 32 + 16) = a[r][1];
    }
  }
}

/* constant row counts, so the accumulators stay in registers */
static inline void product_rows(const float *wb, long K, const float *hp, long hps, int nr,
                                float *out) {
  switch (nr) {
    case 8: block_product(wb, K, hp, hps, 8, out); break;
    case 7: block_product(wb, K, hp, hps, 7, out); break;
    case 6: block_product(wb, K, hp, hps, 6, out); break;
    case 5: block_product(wb, K, hp, hps, 5, out); break;
    case 4: block_product(wb, K, hp, hps, 4, out); break;
    case 3: block_product(wb, K, hp, hps, 3, out); break;
    case 2: block_product(wb, K, hp, hps, 2, out); break;
    default: block_product(wb, K, hp, hps, 1, out); break;
  }
}

/* The recurrent product alone, out [n, 4H] = hp [n, K] @ W_hh^T in the plain gate layout,
   with the arithmetic of wb_lstm_seq: the step-by-step paths (edits, packed batches) of a
   batch small enough for wb_lstm_seq use it, so all of them agree bit for bit. */
void wb_lstm_product(long n, long H, long K, const float *wb, const float *hp, long hps,
                     float *out, int threads) {
  long nb = H / 16;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (long blk = 0; blk < nb; ++blk) {
    float tmp[ROWS * 64];
    for (long r0 = 0; r0 < n; r0 += ROWS) {
      int nr = n - r0 < ROWS ? (int)(n - r0) : ROWS;
      const float *hr = hp + r0 * hps, *w = wb + blk * K * 64;
      product_rows(w, K, hr, hps, nr, tmp);
      for (int r = 0; r < nr; ++r)
        for (int q = 0; q < 4; ++q)
          for (int j = 0; j < 16; ++j)
            out[(r0 + r) * 4 * H + q * H + blk * 16 + j] = tmp[r * 64 + q * 16 + j];
    }
  }
}

void wb_lstm_seq(long T, long n, long H, int reverse, const float *P, long pts, long prs,
                 const float *wb, const float *h0, long h0s, const float *c0, long c0s,
                 float *G, long gts, long grs, float *C, long cts, long crs, float *Hh,
                 long hts, long hrs, void *half, int threads) {
  /* half (optional, where the compiler has _Float16): three float16 copies of what is
     recorded, gates [T, n, 4H] (G's strides; G itself may then be NULL), cell and hidden
     [T, n, H] (C's strides), for a float16 store that then copies half the bytes */
#ifdef __FLT16_MAX__
  _Float16 *G16 = half ? ((_Float16 **)half)[0] : 0, *C16 = half ? ((_Float16 **)half)[1] : 0;
  _Float16 *H16 = half ? ((_Float16 **)half)[2] : 0;
#endif
  long nb = H / 16;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    int nt = omp_get_num_threads(), id = omp_get_thread_num();
    long b0 = nb * id / nt, b1 = nb * (id + 1) / nt;
    float out[ROWS * 64];
    for (long s = 0; s < T; ++s) {
      long t = reverse ? T - 1 - s : s, tp = reverse ? t + 1 : t - 1;
      const float *hp = s == 0 ? h0 : Hh + tp * hts, *cp = s == 0 ? c0 : C + tp * cts;
      long hps = s == 0 ? h0s : hrs, cps = s == 0 ? c0s : crs;
      for (long blk = b0; blk < b1; ++blk) {
        long u = blk * 16;
        for (long r0 = 0; r0 < n; r0 += ROWS) {
          int nr = n - r0 < ROWS ? (int)(n - r0) : ROWS;
          const float *hr = hp + r0 * hps;
          product_rows(wb + blk * H * 64, H, hr, hps, nr, out);
          for (int r = 0; r < nr; ++r) {
            long b = r0 + r;
            const float *x = P + t * pts + b * prs, *a = out + r * 64, *cpr = cp + b * cps;
            float *c = C + t * cts + b * crs, *h = Hh + t * hts + b * hrs;
            /* into local arrays first: nothing can alias them, so every loop vectorises */
            float gl[64], cl[16], hl[16];
            for (int q = 0; q < 3; ++q)
              for (int j = 0; j < 16; ++j)
                gl[q * 16 + j] = wb_sigmoid(x[q * H + u + j] + a[q * 16 + j]);
            for (int j = 0; j < 16; ++j)
              gl[48 + j] = 2.0f * wb_sigmoid(x[3 * H + u + j] + a[48 + j]) - 1.0f;
            for (int j = 0; j < 16; ++j) {
              float cc = gl[16 + j] * cpr[u + j] + gl[j] * gl[48 + j];
              cl[j] = cc;
              hl[j] = hidden_of(gl[32 + j], cc);
            }
            if (G) {
              float *g = G + t * gts + b * grs;
              for (int q = 0; q < 4; ++q)
                for (int j = 0; j < 16; ++j) g[q * H + u + j] = gl[q * 16 + j];
            }
            for (int j = 0; j < 16; ++j) {
              c[u + j] = cl[j];
              h[u + j] = hl[j];
            }
#ifdef __FLT16_MAX__
            if (G16) {
              _Float16 *g16 = G16 + t * gts + b * grs, *c16 = C16 + t * cts + b * crs;
              _Float16 *h16 = H16 + t * cts + b * crs;
              for (int q = 0; q < 4; ++q)
                for (int j = 0; j < 16; ++j) g16[q * H + u + j] = (_Float16)gl[q * 16 + j];
              for (int j = 0; j < 16; ++j) {
                c16[u + j] = (_Float16)cl[j];
                h16[u + j] = (_Float16)hl[j];
              }
            }
#endif
          }
        }
      }
#pragma omp barrier
    }
  }
}

/* dst[u * ds + r] = (T) src[r * ss + u] for r < rows, u < units: a recorded window's
   [time, units] float32 rows into a state store's unit-major chunk, in 32 x 32 tiles
   (a transposing copy with a cast, the store build's only per-value work). */
#define WB_PUT(NAME, S, T)                                                                 \
  void NAME(const S *src, long rows, long units, long ss, T *dst, long ds, int threads) {     \
    _Pragma("omp parallel for schedule(static) num_threads(threads) if (threads > 1)")       \
    for (long u0 = 0; u0 < units; u0 += 32) {                                              \
      long u1 = u0 + 32 < units ? u0 + 32 : units;                                         \
      for (long r0 = 0; r0 < rows; r0 += 32) {                                             \
        long r1 = r0 + 32 < rows ? r0 + 32 : rows;                                         \
        for (long u = u0; u < u1; ++u)                                                     \
          _Pragma("GCC ivdep")                                                             \
          for (long r = r0; r < r1; ++r) dst[u * ds + r] = (T)src[r * ss + u];             \
      }                                                                                    \
    }                                                                                      \
  }

WB_PUT(wb_put_f32, float, float)
#ifdef __FLT16_MAX__ /* compilers without _Float16 build the rest */
WB_PUT(wb_put_f16, float, _Float16)
#ifdef __AVX512BW__
#include <immintrin.h>
/* Eight rows of 32 16-bit values, transposed as four 8 x 8 tiles at once (one per 128-bit
   lane: three rounds of interleaving 16-, 32- and 64-bit pieces), into d[u * ds + i] for
   u < 32, i < 8. */
static inline void wb_tile8x32(const unsigned short *s, long ss, unsigned short *d, long ds) {
  __m512i a[8], b[8], c[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm512_loadu_si512((const void *)(s + i * ss));
  for (int i = 0; i < 4; ++i) {
    b[i] = _mm512_unpacklo_epi16(a[2 * i], a[2 * i + 1]);
    b[i + 4] = _mm512_unpackhi_epi16(a[2 * i], a[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i)
    for (int h = 0; h < 2; ++h) {
      c[4 * h + 2 * i] = _mm512_unpacklo_epi32(b[4 * h + 2 * i], b[4 * h + 2 * i + 1]);
      c[4 * h + 2 * i + 1] = _mm512_unpackhi_epi32(b[4 * h + 2 * i], b[4 * h + 2 * i + 1]);
    }
  for (int j = 0; j < 4; ++j) { /* columns 2j, 2j + 1 of each lane's tile */
    int lo = (j & 1) + 4 * (j >> 1);
    __m512i z[2] = {_mm512_unpacklo_epi64(c[lo], c[lo + 2]),
                    _mm512_unpackhi_epi64(c[lo], c[lo + 2])};
    for (int k = 0; k < 2; ++k) {
      unsigned short *o = d + (2 * j + k) * ds;
      _mm_storeu_si128((__m128i *)o, _mm512_castsi512_si128(z[k]));
      _mm_storeu_si128((__m128i *)(o + 8 * ds), _mm512_extracti32x4_epi32(z[k], 1));
      _mm_storeu_si128((__m128i *)(o + 16 * ds), _mm512_extracti32x4_epi32(z[k], 2));
      _mm_storeu_si128((__m128i *)(o + 24 * ds), _mm512_extracti32x4_epi32(z[k], 3));
    }
  }
}

/* Units [u0, u0 + 32) of a float16 -> float16 transposing copy (bits only), a 32 x 32 tile
   at a time: transposed in registers into a 2 KB buffer, then written as whole 64-byte unit
   rows. The chunk's 16 KB unit stride puts every row in the same cache sets, and 16-byte
   pieces written straight there ran slower than the plain loop. Twice the plain loop's
   speed on a window read from memory (17.6 against 36 us per 256 x 256 window, one thread). */
static void wb_put_h16_block(const unsigned short *src, long rows, long units, long ss,
                             unsigned short *dst, long ds, long u0) {
  unsigned short tmp[32 * 32] __attribute__((aligned(64)));
  long u1 = u0 + 32 < units ? u0 + 32 : units, r1 = u0 + 32 <= units ? rows / 32 * 32 : 0;
  for (long r0 = 0; r0 < r1; r0 += 32) {
    for (int g = 0; g < 4; ++g) wb_tile8x32(src + (r0 + 8 * g) * ss + u0, ss, tmp + 8 * g, 32);
    for (int u = 0; u < 32; ++u)
      _mm512_storeu_si512((void *)(dst + (u0 + u) * ds + r0),
                          _mm512_load_si512((const void *)(tmp + 32 * u)));
  }
  for (long u = u0; u < u1; ++u)
    for (long r = r1; r < rows; ++r) dst[u * ds + r] = src[r * ss + u];
}
#else
static void wb_put_h16_block(const unsigned short *src, long rows, long units, long ss,
                             unsigned short *dst, long ds, long u0) {
  long u1 = u0 + 32 < units ? u0 + 32 : units;
  for (long r0 = 0; r0 < rows; r0 += 32) {
    long r1 = r0 + 32 < rows ? r0 + 32 : rows;
    for (long u = u0; u < u1; ++u)
#pragma GCC ivdep
      for (long r = r0; r < r1; ++r) dst[u * ds + r] = src[r * ss + u];
  }
}
#endif

void wb_put_h16(const _Float16 *src, long rows, long units, long ss, _Float16 *dst, long ds,
                int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (long u0 = 0; u0 < units; u0 += 32)
    wb_put_h16_block((const unsigned short *)src, rows, units, ss, (unsigned short *)dst, ds, u0);
}

/* Many float16 copies in one call (a window's pieces: every name, every row), shared out
   between the threads: a[6 i ..] = src, rows, units, src row stride, dst, dst unit stride
   (pointers as integers, strides in values). One call instead of one per piece saves the
   per-call overhead of a few hundred calls a window. */
void wb_put_many_h16(long n, const long *a, int threads) {
#pragma omp parallel for schedule(dynamic, 2) num_threads(threads) if (threads > 1)
  for (long i = 0; i < n; ++i) {
    const long *p = a + 6 * i;
    for (long u0 = 0; u0 < p[2]; u0 += 32)
      wb_put_h16_block((const unsigned short *)p[0], p[1], p[2], p[3], (unsigned short *)p[4],
                       p[5], u0);
  }
}
#endif

/* The same step in stages: gates, then cell and hidden, then (after a cell edit) hidden. */
void wb_lstm_gates(long n, long H, const float *gx, long gxs, const float *hh, long hs,
                   float *g, long gs, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (long b = 0; b < n; ++b) gates_row(H, gx + b * gxs, hh + b * hs, g + b * gs);
}

void wb_lstm_cell(long n, long H, const float *g, long gs, const float *cp, long cps,
                  float *c, long cs, float *h, long hos, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (long b = 0; b < n; ++b) cell_row(H, g + b * gs, cp + b * cps, c + b * cs, h + b * hos);
}

void wb_lstm_hidden(long n, long H, const float *g, long gs, const float *c, long cs,
                    float *h, long hos, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (long b = 0; b < n; ++b) hidden_row(H, g + b * gs, c + b * cs, h + b * hos);
}
"""

_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-shared", "-fPIC"]
_STATE: dict = {"lib": None, "tried": False, "error": None}


def _flags() -> list[str]:
    """Compiler flags: ``_FLAGS`` with ``-march=$WORKBENCH_CKERNEL_MARCH`` (``native``).

    ``WORKBENCH_CKERNEL_MARCH=x86-64`` builds for any x86-64 CPU (SSE2, no FMA or AVX-512),
    as the CI does to test the kernels without this CPU's extensions.
    """
    march = settings().ckernel_march
    if not re.fullmatch(r"[A-Za-z0-9_.+-]{1,40}", march):
        raise RuntimeError(f"WORKBENCH_CKERNEL_MARCH={march!r} is not a -march value")
    return [_FLAGS[0], f"-march={march}", *_FLAGS[1:]]


def _cpu_key() -> str:
    """The CPU's model and flags: ``-march=native`` code runs only where it was built."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def _cache_dir() -> Path:
    from workbench._cache import cache_root

    return cache_root() / "kernels"


def _compile(target: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc/gcc) on PATH")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "wb_lstm.c"
        src.write_text(_SOURCE)
        out = Path(tmp) / target.name
        # about 2 s of CPU for -march=native, 11 s for x86-64 (512-bit vectors made of SSE
        # ones); minutes of wall time where many processes share two cores
        proc = subprocess.run(
            [cc, *_flags(), "-o", str(out), str(src)], capture_output=True, text=True, timeout=300
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} failed: {proc.stderr.strip()[:500]}")
        os.replace(out, target)  # atomic: a reader never loads a half-written library
    builds = sorted(target.parent.glob("wb_lstm_*.so"), key=lambda f: f.stat().st_mtime)
    for old in builds[:-4]:  # earlier versions of the source (or other CPUs sharing a home)
        old.unlink(missing_ok=True)


def _check_owned(target: Path) -> None:
    """Refuse a library (or folder) someone else could have written: it is code we run."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    for p in (target, target.parent):
        st = p.stat()
        if (uid is not None and st.st_uid != uid) or st.st_mode & 0o022:
            raise RuntimeError(
                f"{p} is writable by others or not owned by this user; not loading it "
                f"(remove {target.parent} and it is rebuilt privately)"
            )


def load():
    """The compiled library, or None where it cannot be built (then the caller's ops run)."""
    if not settings().ckernel:
        return None
    if _STATE["tried"]:
        return _STATE["lib"]
    _STATE["tried"] = True
    if platform.system() != "Linux":
        return None
    import torch  # noqa: F401  (its OpenMP runtime must be loaded first: we share it)

    try:
        key = hashlib.sha256("\0".join([_SOURCE, *_flags(), _cpu_key()]).encode()).hexdigest()
        target = _cache_dir() / f"wb_lstm_{key[:16]}.so"
        if not target.exists():
            _compile(target)
        _check_owned(target)
        lib = ctypes.CDLL(str(target))
        ptr, i64, i32 = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        for name, pairs in (("step", 6), ("gates", 3), ("cell", 4), ("hidden", 3)):
            fn = getattr(lib, f"wb_lstm_{name}")
            fn.argtypes = [i64, i64] + [ptr, i64] * pairs + [i32]
            fn.restype = None
        lib.wb_lstm_seq.argtypes = [i64, i64, i64, i32, ptr, i64, i64, ptr] + [ptr, i64] * 2
        lib.wb_lstm_seq.argtypes += [ptr, i64, i64] * 3 + [ptr, i32]
        lib.wb_lstm_seq.restype = None
        lib.wb_lstm_product.argtypes = [i64, i64, i64, ptr, ptr, i64, ptr, i32]
        lib.wb_lstm_product.restype = None
        for name in ("wb_put_f16", "wb_put_f32", "wb_put_h16"):
            if hasattr(lib, name):
                getattr(lib, name).argtypes = [ptr, i64, i64, i64, ptr, i64, i32]
                getattr(lib, name).restype = None
        if hasattr(lib, "wb_put_many_h16"):
            lib.wb_put_many_h16.argtypes = [i64, ptr, i32]
            lib.wb_put_many_h16.restype = None
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        _STATE["error"] = str(exc)
        return None
    _STATE["lib"] = lib
    return lib


def disabled():
    """Within the block the unroll uses PyTorch's ops: ``configure(ckernel=False)``."""
    return configure(ckernel=False)


def put_rows(dst, src) -> bool:
    """``dst[:] = src.T`` in one compiled call, or False where that does not apply.

    ``dst`` is a numpy ``[units, rows]`` float16/float32 view whose unit rows are contiguous,
    ``src`` a float32 (or, into float16, a float16) CPU tensor ``[rows, units]``; elsewhere
    the caller copies.
    """
    import numpy as np
    import torch

    lib = load()
    if lib is None or src.device.type != "cpu" or src.dim() != 2:
        return False
    kind = {
        (torch.float32, np.dtype(np.float16)): "wb_put_f16",
        (torch.float32, np.dtype(np.float32)): "wb_put_f32",
        (torch.float16, np.dtype(np.float16)): "wb_put_h16",
    }
    fn = kind.get((src.dtype, dst.dtype.newbyteorder("="))) if dst.dtype.isnative else None
    fn = fn if fn is not None and hasattr(lib, fn) else None
    if fn is None or dst.ndim != 2 or (dst.shape[1] > 1 and dst.strides[1] != dst.itemsize):
        return False
    rows, units = src.shape
    if dst.shape != (units, rows) or (units > 1 and src.stride(1) != 1) or src.requires_grad:
        return False
    if rows and units:
        threads = _threads(torch.get_num_threads() if rows * units >= 65536 else 1)
        getattr(lib, fn)(
            src.data_ptr(), rows, units, src.stride(0), dst.ctypes.data,
            dst.strides[0] // dst.itemsize, threads,
        )  # fmt: skip
    return True


def put_many_h16(pieces, threads: int) -> bool:
    """Run float16 transposing copies described by ``pieces``; False where not compiled.

    ``pieces`` is an int64 ``[n, 6]`` array, one row a copy: source address, rows, units,
    source row stride, destination address, destination unit stride (strides in values), as
    :func:`put_rows` would do ``dst[:] = src.T`` for each. The caller keeps both alive.
    """
    import numpy as np

    lib = load()
    if lib is None or not hasattr(lib, "wb_put_many_h16"):
        return False
    pieces = np.ascontiguousarray(pieces, dtype=np.int64)
    if pieces.ndim != 2 or pieces.shape[1] != 6:
        raise ValueError(f"pieces must be [n, 6], got {pieces.shape}")
    if len(pieces):
        lib.wb_put_many_h16(len(pieces), pieces.ctypes.data, _threads(int(threads)))
    return True


def _threads(n: int) -> int:
    """``n`` on the main thread (at most the cores free now), else 1.

    An OpenMP parallel region opened from another thread gets a thread team of its own that
    lives as long as that thread; once the process holds more OpenMP threads than cores,
    libgomp stops spinning at barriers and sleeps instead, and every parallel loop after it
    (the recorder's kernels, oneDNN's) ran 3-5x slower here. Copies on I/O or writer
    threads therefore run on one thread; on the main thread a team larger than the cores
    other processes leave free waits at every barrier (see :mod:`workbench._native.load`).
    """
    import threading

    if threading.current_thread() is not threading.main_thread() or n <= 1:
        return 1
    from workbench._native.load import free_cores

    return max(1, min(n, free_cores()))


def has_half() -> bool:
    """Whether the compiled library handles float16 (the compiler had ``_Float16``)."""
    return hasattr(load(), "wb_put_h16")


def lstm_step_fn():
    """The compiled library (``wb_lstm_step`` and its stages, see the C source) or None."""
    return load()
