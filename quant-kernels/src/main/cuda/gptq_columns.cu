// GPTQ's column-by-column quantization (GptqQuantizer's column stage) on the GPU, giving the bits of the CPU stage
// (CpuGptqColumns with VectorDenseKernels). Driven by CudaGptqColumns.java: per 128-column block, one launch of
// gptq_columns_block, then (unless the block is the last) one launch of gptq_lazy_update.
//
// Device layout (all row-major):
//   w        [O, I] fp32  the global W in processing order (dead inputs zeroed); receives the lazy updates
//   u        [I, I] fp32  the upper Cholesky factor of H^-1, processing order
//   group_of [I]    int   the group of each processing column (col / g, or perm[col] / g with static groups)
//   scales, zeros [G, O]  fp32: read (static groups) or written at group starts
//   codes    [O, I] u8    processing order
//   neg_err  [128, O] fp32  -Err1 of the current block, transposed so the lazy update loads it coalesced
//
// Why it gives the CPU's bits:
// - Every row o is independent: a column's code, its error e = (x - deq) / d and the in-block update
//   W1[o, j] -= e * U[col, i1 + j] only touch row o, and the lazy update's element (o, j) only reads row o of Err1.
//   So a row may be computed by any thread, in any order relative to other rows.
// - Within a row, every operation is the CPU's, in the CPU's order, with the same IEEE rounding: the explicit
//   __fadd_rn/__fsub_rn/__fmul_rn/__fdiv_rn keep nvcc from contracting a multiply and an add into an FMA (Java
//   never does), rintf is Math.rint (half to even), __float2half_rn is Float.floatToFloat16 (nearest even), and
//   java_min/java_max are Math.min/Math.max (NaN wins, -0 < +0).
// - Group parameters at a group start read the global W, which holds the earlier blocks' lazy updates and not the
//   current block's in-block ones (the reference quirk): W is only ever written by gptq_lazy_update, and the
//   launches run in stream order.
// - The lazy update W[o, i2 + j] += sum_k (-e[o, k]) U[i1 + k, i2 + j] is summed as Gemm.multiply sums it: an
//   accumulator from +0, acc = fma(-e_k, u_kj, acc) for k ascending (one KC = 256 slice: a block has at most 128
//   columns), then c = acc + c. One thread owns each element for the whole k loop; no split-k, no tensor cores.
#include <math.h>
#include <cuda_fp16.h>

#define GC_BLOCK 128               // GptqQuantizer.BLOCK_SIZE
#define GC_SLOTS (GC_BLOCK / 32)   // block columns per lane
#define GC_ROWS 8                  // rows (one warp each) per thread block of gptq_columns_block
#define FULL_MASK 0xffffffffu

// Math.min(float, float): a NaN argument wins; -0.0 is below +0.0.
__device__ __forceinline__ float java_min(float a, float b) {
    if (a != a) return a;
    if (a == 0.0f && b == 0.0f && __float_as_uint(b) == 0x80000000u) return b;
    return a <= b ? a : b;
}

// Math.max(float, float): a NaN argument wins; +0.0 is above -0.0.
__device__ __forceinline__ float java_max(float a, float b) {
    if (a != a) return a;
    if (a == 0.0f && b == 0.0f && __float_as_uint(a) == 0x80000000u) return b;
    return a >= b ? a : b;
}

// MinMaxParams.compute: the fp16-rounded scale and the integer zero of the range [xmin_in, xmax_in].
__device__ __forceinline__ void minmax_params(float xmin_in, float xmax_in, int maxq, int sym, float& s, float& z) {
    float xmin = java_min(xmin_in, 0.0f);
    float xmax = java_max(xmax_in, 0.0f);
    if (sym) {
        xmax = java_max(fabsf(xmin), xmax);
        if (xmin < 0.0f) xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
        xmin = -1.0f;
        xmax = 1.0f;
    }
    s = __half2float(__float2half_rn(__fdiv_rn(__fsub_rn(xmax, xmin), (float)maxq)));
    if (s == 0.0f) s = __half2float(__ushort_as_half((unsigned short)1));  // the smallest fp16 subnormal
    z = sym ? (float)((maxq + 1) / 2) : rintf(__fdiv_rn(-xmin, s));
}

// MinMaxParams.code: clamp(rint(x / s) + z, 0, maxq) with Java's min/max and (int) of NaN = 0.
__device__ __forceinline__ int java_code(float x, float s, float z, int maxq) {
    const float q = __fadd_rn(rintf(__fdiv_rn(x, s)), z);
    const float c = java_max(0.0f, java_min((float)maxq, q));
    return c != c ? 0 : (int)c;
}

// MinMaxParams.dequantize: s * (c - z).
__device__ __forceinline__ float dequantize_code(int c, float s, float z) {
    return __fmul_rn(s, __fsub_rn((float)c, z));
}

// One 128-column block [i1, i1 + count) of every row: a warp per row, lane l holding the block's columns
// j = l + 32 t (t < GC_SLOTS) of W1 in registers. Per column i (in order): the group parameters when a group starts
// there, the code and error of W1[o, i] (broadcast from its lane; every lane computes the same e), and the in-block
// update of the row's later block columns. Codes and -e are written once at the end, coalesced.
extern "C" __global__ void __launch_bounds__(GC_ROWS * 32)
gptq_columns_block(const float* __restrict__ w, const float* __restrict__ u, const int* __restrict__ group_of,
                   float* __restrict__ scales, float* __restrict__ zeros, unsigned char* __restrict__ codes,
                   float* __restrict__ neg_err, int out, int in, int i1, int count, int g, int maxq, int sym,
                   int static_groups) {
    const int o = blockIdx.x * GC_ROWS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (o >= out) return;  // a whole warp: the shuffles below see all 32 lanes
    const float* row = w + (size_t)o * in;
    float blk[GC_SLOTS], held_e[GC_SLOTS];
    int held_c[GC_SLOTS];
#pragma unroll
    for (int t = 0; t < GC_SLOTS; t++) {
        const int j = lane + 32 * t;
        blk[t] = j < count ? row[i1 + j] : 0.0f;
        held_e[t] = 0.0f;
        held_c[t] = 0;
    }
    float s = 0.0f, z = 0.0f;
    for (int i = 0; i < count; i++) {
        const int col = i1 + i;
        const int k = group_of[col];
        if (static_groups || (i == 0 && col % g != 0)) {
            // Static: computed up front on the host. Dynamic, a group begun in an earlier block: written by the
            // launch of that block.
            s = scales[(size_t)k * out + o];
            z = zeros[(size_t)k * out + o];
        } else if (col % g == 0) {
            // A group starts: min and max of W[o, col .. col + g) from the global W. Any order gives the same
            // result: Math.min/max with -0 < +0 are order-free on finite values (GptqQuantizer refuses others).
            float mn = INFINITY, mx = -INFINITY;
            for (int c = lane; c < g; c += 32) {
                const float v = row[col + c];
                mn = java_min(mn, v);
                mx = java_max(mx, v);
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) {
                mn = java_min(mn, __shfl_xor_sync(FULL_MASK, mn, off));
                mx = java_max(mx, __shfl_xor_sync(FULL_MASK, mx, off));
            }
            minmax_params(mn, mx, maxq, sym, s, z);
            if (lane == 0) {
                scales[(size_t)k * out + o] = s;
                zeros[(size_t)k * out + o] = z;
            }
        }
        const int slot = i >> 5;
        float mine = blk[0];
#pragma unroll
        for (int t = 1; t < GC_SLOTS; t++) {
            if (slot == t) mine = blk[t];
        }
        const float x = __shfl_sync(FULL_MASK, mine, i & 31);
        const int c = java_code(x, s, z, maxq);
        const float* urow = u + (size_t)col * in;
        const float e = __fdiv_rn(__fsub_rn(x, dequantize_code(c, s, z)), __ldg(urow + col));
#pragma unroll
        for (int t = 0; t < GC_SLOTS; t++) {
            const int j = lane + 32 * t;
            if (j == i) {
                held_e[t] = e;
                held_c[t] = c;
            } else if (j > i && j < count) {
                // The CPU's block[o, j] -= e * u[col, i1 + j]: a rounded product, then a rounded difference.
                // (It also updates j == i, which is never read again.)
                blk[t] = __fsub_rn(blk[t], __fmul_rn(e, __ldg(urow + i1 + j)));
            }
        }
    }
#pragma unroll
    for (int t = 0; t < GC_SLOTS; t++) {
        const int j = lane + 32 * t;
        if (j < count) {
            codes[(size_t)o * in + i1 + j] = (unsigned char)held_c[t];
            neg_err[(size_t)j * out + o] = -held_e[t];  // the CPU negates Err1 before its product: exact
        }
    }
}

#define LU_BM 128   // rows of W per thread block
#define LU_BN 128   // columns of W per thread block
#define LU_BK 16    // k per shared-memory stage
#define LU_THREADS 256
#define LU_LOADS (LU_BK * LU_BM / LU_THREADS)  // elements of A (and of B) each thread stages per k step

// W[o, i2 + j] = acc + W[o, i2 + j] with acc = fma chain over k ascending of neg_err[k, o] * U[i1 + k, i2 + j]
// (count k's, n = I - i2 columns). A thread owns an 8 x 8 tile of elements (rows ty*4 + {0..3} and
// 64 + ty*4 + {0..3}, columns likewise with tx), so each element's sum is one thread's, in k order. The next k step's
// operands are loaded into registers while the current step computes. Out-of-range rows and columns are computed on
// zeros and not stored; k past count is never summed (a zero term would turn an accumulator of -0 into +0).
extern "C" __global__ void __launch_bounds__(LU_THREADS, 2)
gptq_lazy_update(float* __restrict__ w, const float* __restrict__ u, const float* __restrict__ neg_err, int out,
                 int in, int i1, int count, int i2) {
    __shared__ __align__(16) float as[LU_BK][LU_BM];
    __shared__ __align__(16) float bs[LU_BK][LU_BN];
    const int tid = threadIdx.x;
    const int tx = tid & 15, ty = tid >> 4;
    const int row0 = blockIdx.y * LU_BM;
    const int col0 = blockIdx.x * LU_BN;  // relative to i2
    const int n = in - i2;

    float acc[8][8];
#pragma unroll
    for (int r = 0; r < 8; r++) {
#pragma unroll
        for (int c = 0; c < 8; c++) acc[r][c] = 0.0f;
    }
    float ra[LU_LOADS], rb[LU_LOADS];
    // Stage element p of this thread: k = idx / 128, m = idx % 128 (consecutive threads, consecutive rows or columns).
    auto load = [&](int k0) {
#pragma unroll
        for (int p = 0; p < LU_LOADS; p++) {
            const int idx = tid + LU_THREADS * p;
            const int kk = idx >> 7, m = idx & 127;
            const bool kin = k0 + kk < count;
            const int r = row0 + m, c = col0 + m;
            ra[p] = kin && r < out ? neg_err[(size_t)(k0 + kk) * out + r] : 0.0f;
            rb[p] = kin && c < n ? __ldg(u + (size_t)(i1 + k0 + kk) * in + i2 + c) : 0.0f;
        }
    };
    load(0);
    for (int k0 = 0; k0 < count; k0 += LU_BK) {
#pragma unroll
        for (int p = 0; p < LU_LOADS; p++) {
            const int idx = tid + LU_THREADS * p;
            as[idx >> 7][idx & 127] = ra[p];
            bs[idx >> 7][idx & 127] = rb[p];
        }
        __syncthreads();
        if (k0 + LU_BK < count) load(k0 + LU_BK);
        const int kmax = min(LU_BK, count - k0);
        if (kmax == LU_BK) {
#pragma unroll
            for (int kk = 0; kk < LU_BK; kk++) {
                const float4 a0 = *reinterpret_cast<const float4*>(&as[kk][ty * 4]);
                const float4 a1 = *reinterpret_cast<const float4*>(&as[kk][64 + ty * 4]);
                const float4 b0 = *reinterpret_cast<const float4*>(&bs[kk][tx * 4]);
                const float4 b1 = *reinterpret_cast<const float4*>(&bs[kk][64 + tx * 4]);
                const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
                const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
                for (int r = 0; r < 8; r++) {
#pragma unroll
                    for (int c = 0; c < 8; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
                }
            }
        } else {
            for (int kk = 0; kk < kmax; kk++) {
                float a[8], b[8];
#pragma unroll
                for (int q = 0; q < 4; q++) {
                    a[q] = as[kk][ty * 4 + q];
                    a[4 + q] = as[kk][64 + ty * 4 + q];
                    b[q] = bs[kk][tx * 4 + q];
                    b[4 + q] = bs[kk][64 + tx * 4 + q];
                }
#pragma unroll
                for (int r = 0; r < 8; r++) {
#pragma unroll
                    for (int c = 0; c < 8; c++) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 8; r++) {
        const int row = row0 + (r < 4 ? ty * 4 + r : 64 + ty * 4 + (r - 4));
        if (row >= out) continue;
        float* wrow = w + (size_t)row * in + i2;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            const int col = col0 + (c < 4 ? tx * 4 + c : 64 + tx * 4 + (c - 4));
            if (col < n) wrow[col] = __fadd_rn(acc[r][c], wrow[col]);
        }
    }
}
