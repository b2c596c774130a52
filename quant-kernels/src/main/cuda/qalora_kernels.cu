// Group-quantized (GPTQ layout) kernels for qalora-spark, loaded from Java through the CUDA driver API (FFM).
//
// Weight W[O, I] = scale[k, o] * (code[i, o] - zero[k, o]), k = i / groupSize (see QuantizedMatrix.java).
// The device keeps the checkpoint's own layout, uploaded unchanged:
//   q      [I*bits/32, O] uint32, packed along the input dimension. Every 32 consecutive inputs of one output
//          column form a little-endian bit stream of `bits` words (word rows c*bits .. c*bits+bits-1), code j of
//          the chunk at stream bit j*bits. That is exactly AutoGPTQ's 2/4/8-bit packing and its 3-bit 10-1-10-1-10
//          layout, so one formula reads all four widths.
//   scales [I/groupSize, O] float, zeros [I/groupSize, O] float (real-valued: a merged QA-LoRA model has them).
// Why this layout: consecutive output columns are consecutive words, so a warp walking 32 outputs reads 128
// contiguous bytes (coalesced) for every kernel below; no repacking pass is needed at load.
//
// Every kernel has a naive counterpart (the *_naive kernels, one thread per output element, no shared memory)
// that the Java self-check compares against, besides the CPU oracle ReferenceQuantKernels.
#include <stdint.h>
#include <cuda_bf16.h>

extern "C" {

// ---------------------------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------------------------

// The code of weight (o, i). A code may straddle two words only for 3 bits (codes 10 and 21 of a chunk).
__device__ __forceinline__ unsigned code_at(const uint32_t* __restrict__ q, int O, int bits, int o, int i) {
    int bit = (i & 31) * bits;
    size_t row = (size_t)(i >> 5) * bits + (bit >> 5);
    int shift = bit & 31;
    unsigned v = __ldg(q + row * O + o) >> shift;
    if (shift + bits > 32) {
        v |= __ldg(q + (row + 1) * O + o) << (32 - shift);
    }
    return v & ((1u << bits) - 1u);
}

// The dequantized weight (o, i), in float exactly as QuantizedMatrix.weight computes it: scale * (code - zero).
__device__ __forceinline__ float weight_at(const uint32_t* __restrict__ q, const float* __restrict__ scales,
                                           const float* __restrict__ zeros, int O, int bits, int groupSize,
                                           int o, int i) {
    size_t sk = (size_t)(i / groupSize) * O + o;
    float c = (float)code_at(q, O, bits, o, i);
    return __fmul_rn(__ldg(scales + sk), __fsub_rn(c, __ldg(zeros + sk)));
}

// ---------------------------------------------------------------------------------------------------------------
// Dequantize: out[O, I] row-major.
// Reads are coalesced along o (the packed layout), writes along i (the row-major output): a 32x32 tile is
// staged through shared memory so both sides stay contiguous. Block (32, 8), grid (ceil(I/32), ceil(O/32)).
// ---------------------------------------------------------------------------------------------------------------
// Fills tile[r][c] = W(o0 + c, i0 + r) of this block's 32 x 32 tile (reads coalesced along o), then syncs.
__device__ __forceinline__ void dequantize_tile(const uint32_t* __restrict__ q, const float* __restrict__ scales,
                                                const float* __restrict__ zeros, int O, int I, int bits,
                                                int groupSize, float (*tile)[33]) {
    int i0 = blockIdx.x * 32, o = blockIdx.y * 32 + threadIdx.x;
    for (int r = threadIdx.y; r < 32; r += 8) {
        int i = i0 + r;
        tile[r][threadIdx.x] = (o < O && i < I) ? weight_at(q, scales, zeros, O, bits, groupSize, o, i) : 0.f;
    }
    __syncthreads();
}

__global__ void dequantize(const uint32_t* __restrict__ q, const float* __restrict__ scales,
                           const float* __restrict__ zeros, int O, int I, int bits, int groupSize,
                           float* __restrict__ out) {
    __shared__ float tile[32][33];  // [i, o], +1 column so the transposed read has no bank conflicts
    dequantize_tile(q, scales, zeros, O, I, bits, groupSize, tile);
    int i0 = blockIdx.x * 32, o0 = blockIdx.y * 32;
    int i = i0 + threadIdx.x;
    for (int r = threadIdx.y; r < 32; r += 8) {
        int oo = o0 + r;
        if (oo < O && i < I) out[(size_t)oo * I + i] = tile[threadIdx.x][r];
    }
}

// The same tiles, rounded to bf16 (nearest even, as __float2bfloat16_rn) for the tensor-core products. Its
// reference is dequantize followed by f32_to_bf16: the tests require bit equality.
__global__ void dequantize_bf16(const uint32_t* __restrict__ q, const float* __restrict__ scales,
                                const float* __restrict__ zeros, int O, int I, int bits, int groupSize,
                                __nv_bfloat16* __restrict__ out) {
    __shared__ float tile[32][33];
    dequantize_tile(q, scales, zeros, O, I, bits, groupSize, tile);
    int i0 = blockIdx.x * 32, o0 = blockIdx.y * 32;
    int i = i0 + threadIdx.x;
    for (int r = threadIdx.y; r < 32; r += 8) {
        int oo = o0 + r;
        if (oo < O && i < I) out[(size_t)oo * I + i] = __float2bfloat16_rn(tile[threadIdx.x][r]);
    }
}

// Naive reference: one thread per element.
__global__ void dequantize_naive(const uint32_t* __restrict__ q, const float* __restrict__ scales,
                                 const float* __restrict__ zeros, int O, int I, int bits, int groupSize,
                                 float* __restrict__ out) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)O * I) return;
    int o = (int)(idx / I), i = (int)(idx % I);
    out[idx] = weight_at(q, scales, zeros, O, bits, groupSize, o, i);
}

// ---------------------------------------------------------------------------------------------------------------
// Tiled products. Both use one shape of block: 256 threads compute a 128 (tokens) x 128 (outputs) tile of the
// result, 8 x 8 per thread in registers (see tile_row for which 8), stepping through the reduction 32 at a time. Per step the block stages
//   As[32][128 + 4]: the activation slice, transposed so a thread reads its 8 tokens as two float4;
//   Bs[32][128 + 4]: the weight slice, DEQUANTIZED ONCE here and then reused by all 128 tokens of the tile.
// The +4 padding keeps float4 alignment and spreads rows over banks. 128 x 128 x 32 gives 64 FMAs per shared
// load pair per thread; a slice of 32 inputs is exactly one packed chunk, so each column's codes come from
// `bits` consecutive word rows.
// ---------------------------------------------------------------------------------------------------------------
#define TM 128
#define TN 128
#define TK 32
#define PAD 4

// Each thread owns rows {ty*4 .. ty*4+3, 64+ty*4 .. 64+ty*4+3} and the same split of columns by tx. Splitting
// the 8 into two groups of 4, 64 apart, keeps a quarter-warp's float4 reads of one shared row on distinct banks
// (8 contiguous floats per thread would put threads 0 and 4 on the same bank). Shared by both products.
__device__ __forceinline__ int tile_row(int t, int m) { return (m < 4 ? 0 : 64) + t * 4 + (m & 3); }

__device__ __forceinline__ void tile_fma(const float (*As)[TM + PAD], const float (*Bs)[TN + PAD], int ty, int tx,
                                         float acc[8][8]) {
#pragma unroll
    for (int kk = 0; kk < TK; kk++) {
        float4 a0 = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);
        float4 a1 = *reinterpret_cast<const float4*>(&As[kk][64 + ty * 4]);
        float4 b0 = *reinterpret_cast<const float4*>(&Bs[kk][tx * 4]);
        float4 b1 = *reinterpret_cast<const float4*>(&Bs[kk][64 + tx * 4]);
        float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int m = 0; m < 8; m++) {
#pragma unroll
            for (int n = 0; n < 8; n++) acc[m][n] = fmaf(a[m], b[n], acc[m][n]);
        }
    }
}

// Y[T, O] = X[T, I] . W^T. Grid (ceil(O/128), ceil(T/128)), block 256. I is a multiple of 32 (GPTQ packing).
__global__ void __launch_bounds__(256) qmatmul(const uint32_t* __restrict__ q, const float* __restrict__ scales,
                                               const float* __restrict__ zeros, int O, int I, int bits,
                                               int groupSize, const float* __restrict__ X, int T,
                                               float* __restrict__ Y) {
    __shared__ __align__(16) float As[TK][TM + PAD];  // [k, t]
    __shared__ __align__(16) float Bs[TK][TN + PAD];  // [k, o]
    int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    int o0 = blockIdx.x * TN, t0 = blockIdx.y * TM;
    float acc[8][8] = {};
    for (int k0 = 0; k0 < I; k0 += TK) {
        // X slice [128 tokens, 32 inputs]: consecutive threads read consecutive inputs of one token (coalesced).
        for (int idx = tid; idx < TM * TK; idx += 256) {
            int t = idx / TK, kk = idx % TK;
            As[kk][t] = (t0 + t < T) ? __ldg(X + (size_t)(t0 + t) * I + k0 + kk) : 0.f;
        }
        // W slice [32 inputs, 128 outputs]: consecutive threads take consecutive outputs (coalesced words).
        for (int idx = tid; idx < TN * TK; idx += 256) {
            int n = idx % TN, kk = idx / TN;
            int o = o0 + n;
            Bs[kk][n] = (o < O) ? weight_at(q, scales, zeros, O, bits, groupSize, o, k0 + kk) : 0.f;
        }
        __syncthreads();
        tile_fma(As, Bs, ty, tx, acc);
        __syncthreads();
    }
#pragma unroll
    for (int m = 0; m < 8; m++) {
        int t = t0 + tile_row(ty, m);
        if (t >= T) continue;
#pragma unroll
        for (int n = 0; n < 8; n++) {
            int o = o0 + tile_row(tx, n);
            if (o < O) Y[(size_t)t * O + o] = acc[m][n];
        }
    }
}

// dX[T, I] (+)= dY[T, O] . W: the same tiling with the roles swapped (outputs are inputs i, the reduction runs
// over o, whose count O need not be a multiple of 32). Grid (ceil(I/128), ceil(T/128)), block 256.
__global__ void __launch_bounds__(256) qmatmul_t(const uint32_t* __restrict__ q, const float* __restrict__ scales,
                                                 const float* __restrict__ zeros, int O, int I, int bits,
                                                 int groupSize, const float* __restrict__ dY, int T,
                                                 float* __restrict__ dX, int accumulate) {
    __shared__ __align__(16) float As[TK][TM + PAD];  // [o, t]
    __shared__ __align__(16) float Bs[TK][TN + PAD];  // [o, i]
    int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    int i0 = blockIdx.x * TN, t0 = blockIdx.y * TM;
    float acc[8][8] = {};
    for (int k0 = 0; k0 < O; k0 += TK) {
        for (int idx = tid; idx < TM * TK; idx += 256) {
            int t = idx / TK, kk = idx % TK;
            As[kk][t] = (t0 + t < T && k0 + kk < O) ? __ldg(dY + (size_t)(t0 + t) * O + k0 + kk) : 0.f;
        }
        // Consecutive threads take consecutive o (the reduction index) so the packed words are read coalesced.
        for (int idx = tid; idx < TN * TK; idx += 256) {
            int kk = idx % TK, n = idx / TK;
            int o = k0 + kk, i = i0 + n;
            Bs[kk][n] = (o < O && i < I) ? weight_at(q, scales, zeros, O, bits, groupSize, o, i) : 0.f;
        }
        __syncthreads();
        tile_fma(As, Bs, ty, tx, acc);
        __syncthreads();
    }
#pragma unroll
    for (int m = 0; m < 8; m++) {
        int t = t0 + tile_row(ty, m);
        if (t >= T) continue;
#pragma unroll
        for (int n = 0; n < 8; n++) {
            int i = i0 + tile_row(tx, n);
            if (i < I) {
                size_t at = (size_t)t * I + i;
                dX[at] = accumulate ? dX[at] + acc[m][n] : acc[m][n];
            }
        }
    }
}

// Naive references: one thread per output element, weights dequantized on the fly.
__global__ void qmatmul_naive(const uint32_t* __restrict__ q, const float* __restrict__ scales,
                              const float* __restrict__ zeros, int O, int I, int bits, int groupSize,
                              const float* __restrict__ X, int T, float* __restrict__ Y) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)T * O) return;
    int t = (int)(idx / O), o = (int)(idx % O);
    float sum = 0.f;
    for (int i = 0; i < I; i++) sum += X[(size_t)t * I + i] * weight_at(q, scales, zeros, O, bits, groupSize, o, i);
    Y[idx] = sum;
}

__global__ void qmatmul_t_naive(const uint32_t* __restrict__ q, const float* __restrict__ scales,
                                const float* __restrict__ zeros, int O, int I, int bits, int groupSize,
                                const float* __restrict__ dY, int T, float* __restrict__ dX, int accumulate) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)T * I) return;
    int t = (int)(idx / I), i = (int)(idx % I);
    float sum = accumulate ? dX[idx] : 0.f;
    for (int o = 0; o < O; o++) sum += dY[(size_t)t * O + o] * weight_at(q, scales, zeros, O, bits, groupSize, o, i);
    dX[idx] = sum;
}

// ---------------------------------------------------------------------------------------------------------------
// GEMV y[O] = W . x (one-token decode), memory-bound: every packed word is read exactly once.
// Block (C, S), C = 32 columns and S <= 32 slices, or C = 16 and S <= 64: threadIdx.x picks the output column (C
// columns = 4C contiguous bytes per word row), threadIdx.y one of S interleaved slices of the 32-input chunks; the S
// partial sums meet in shared memory.
// More slices put more loads in flight (the GEMV is latency-bound at 1 token); the launcher picks S. The bit width is
// a template parameter so the chunk's `bits` words live in registers and the 32 shifts are constants.
// When the group size is a multiple of 32 a chunk has one scale and zero, and the chunk's sum is
// s * (sum_j x_j q_j - z * sum_j x_j): one multiply per code instead of three.
// ---------------------------------------------------------------------------------------------------------------
}  // extern "C": the template below needs C++ linkage

// Activation element types of the GEMV: fp32, or bf16 (decode under mixed precision reads and writes bf16, so no
// conversion launches surround the product). Arithmetic is fp32 either way.
__device__ __forceinline__ float gemv_in(const float* x, int i) { return __ldg(x + i); }
__device__ __forceinline__ float gemv_in(const __nv_bfloat16* x, int i) { return __bfloat162float(x[i]); }
__device__ __forceinline__ void gemv_out(float* y, int o, float v) { y[o] = v; }
__device__ __forceinline__ void gemv_out(__nv_bfloat16* y, int o, float v) { y[o] = __float2bfloat16_rn(v); }

// Block (C, S): C = 32 or 16 output columns (blockDim.x; 16 columns still read whole 64-byte segments) times S input
// slices (blockDim.y, up to 64 with 16 columns); the launcher picks them.
#define GEMV_MAX_SLICES 64

// One thread's share of output column o (o < O): the chunks threadIdx.y, threadIdx.y + blockDim.y, ... in order.
template <int BITS, typename T>
__device__ __forceinline__ float gemv_slice(const uint32_t* __restrict__ q, const float* __restrict__ scales,
                                            const float* __restrict__ zeros, int O, int I, int groupSize,
                                            const T* __restrict__ x, int o) {
    float acc = 0.f;
    int chunks = I / 32;
    bool aligned = groupSize % 32 == 0;
    for (int c = threadIdx.y; c < chunks; c += blockDim.y) {
        uint32_t w[BITS];
#pragma unroll
        for (int b = 0; b < BITS; b++) w[b] = __ldg(q + (size_t)(c * BITS + b) * O + o);
        const T* xc = x + c * 32;
        if (aligned) {
            size_t sk = (size_t)(c * 32 / groupSize) * O + o;
            float dot = 0.f, xsum = 0.f;
#pragma unroll
            for (int j = 0; j < 32; j++) {
                const int bit = j * BITS, wi = bit >> 5, sh = bit & 31;
                unsigned v = w[wi] >> sh;
                if (sh + BITS > 32) v |= w[wi + 1] << (32 - sh);
                v &= (1u << BITS) - 1u;
                float xv = gemv_in(xc, j);
                dot = fmaf(xv, (float)v, dot);
                xsum += xv;
            }
            acc = fmaf(__ldg(scales + sk), dot - __ldg(zeros + sk) * xsum, acc);
        } else {
#pragma unroll
            for (int j = 0; j < 32; j++) {
                const int bit = j * BITS, wi = bit >> 5, sh = bit & 31;
                unsigned v = w[wi] >> sh;
                if (sh + BITS > 32) v |= w[wi + 1] << (32 - sh);
                v &= (1u << BITS) - 1u;
                size_t sk = (size_t)((c * 32 + j) / groupSize) * O + o;
                acc = fmaf(gemv_in(xc, j), __ldg(scales + sk) * ((float)v - __ldg(zeros + sk)), acc);
            }
        }
    }
    return acc;
}

// The slices' partial sums of each column, added in slice order; the result is meaningful in threadIdx.y == 0.
__device__ __forceinline__ float gemv_reduce(float (*partial)[33], float acc) {  // partial[GEMV_MAX_SLICES][33]
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    float sum = 0.f;
    if (threadIdx.y == 0) {
        for (int s = 0; s < blockDim.y; s++) sum += partial[s][threadIdx.x];
    }
    return sum;
}

template <int BITS, typename T>
__device__ __forceinline__ void gemv_body(const uint32_t* __restrict__ q, const float* __restrict__ scales,
                                          const float* __restrict__ zeros, int O, int I, int groupSize,
                                          const T* __restrict__ x, T* __restrict__ y) {
    __shared__ float partial[GEMV_MAX_SLICES][33];
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    float sum = gemv_reduce(partial, o < O ? gemv_slice<BITS, T>(q, scales, zeros, O, I, groupSize, x, o) : 0.f);
    if (threadIdx.y == 0 && o < O) gemv_out(y, o, sum);
}

// Fused decode products (bf16 activations), each computing exactly what its unfused sequence computes (the same
// per-column sums, the same roundings), in fewer launches: a decode step is hundreds of small kernels, and on an
// H100 the launches of the 4096-wide products cost as much as their bytes.
// - gemv3: up to three products of one input (q, k and v): the grid is the three column ranges one after another,
//   each block working on one weight (a weight with O = 0 is absent).
// - gemv_residual: out = residual + W x, with W x rounded as the separate product's output (linear, then add).
// - gemv_swiglu: out = silu(Wg x) * (Wu x), each product rounded to bf16 first (linear, linear, then swiglu); a
//   block reads both weights' columns, twice the loads in flight.
template <int BITS>
__device__ __forceinline__ void gemv3_body(const uint32_t* q0, const float* s0, const float* z0, int O0,
                                           __nv_bfloat16* y0, const uint32_t* q1, const float* s1, const float* z1,
                                           int O1, __nv_bfloat16* y1, const uint32_t* q2, const float* s2,
                                           const float* z2, int O2, __nv_bfloat16* y2, int I, int groupSize,
                                           const __nv_bfloat16* __restrict__ x) {
    __shared__ float partial[GEMV_MAX_SLICES][33];
    int b = blockIdx.x;
    const int cols = blockDim.x, nb0 = (O0 + cols - 1) / cols, nb1 = (O1 + cols - 1) / cols;
    const uint32_t* q = q0; const float* sc = s0; const float* ze = z0; int O = O0; __nv_bfloat16* y = y0;
    if (b >= nb0 + nb1) { b -= nb0 + nb1; q = q2; sc = s2; ze = z2; O = O2; y = y2; }
    else if (b >= nb0) { b -= nb0; q = q1; sc = s1; ze = z1; O = O1; y = y1; }
    int o = b * blockDim.x + threadIdx.x;
    float sum = gemv_reduce(partial, o < O ? gemv_slice<BITS, __nv_bfloat16>(q, sc, ze, O, I, groupSize, x, o) : 0.f);
    if (threadIdx.y == 0 && o < O) gemv_out(y, o, sum);
}

__device__ __forceinline__ float bf16_round(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// residual and out are fp32 (rBf/oBf 0) or bf16 (1): the residual stream of a decode is fp32 under mixed precision.
// The product is rounded as the separate product's output would be (pBf), then added in fp32 and stored in out's type.
template <int BITS>
__device__ __forceinline__ void gemv_residual_body(const uint32_t* q, const float* sc, const float* ze, int O, int I,
                                                   int groupSize, const __nv_bfloat16* __restrict__ x, int pBf,
                                                   const void* residual, int rBf, void* out, int oBf) {
    __shared__ float partial[GEMV_MAX_SLICES][33];
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    float sum = gemv_reduce(partial, o < O ? gemv_slice<BITS, __nv_bfloat16>(q, sc, ze, O, I, groupSize, x, o) : 0.f);
    if (threadIdx.y == 0 && o < O) {
        float r = rBf ? __bfloat162float(((const __nv_bfloat16*)residual)[o]) : ((const float*)residual)[o];
        float v = r + (pBf ? bf16_round(sum) : sum);
        if (oBf) ((__nv_bfloat16*)out)[o] = __float2bfloat16_rn(v);
        else ((float*)out)[o] = v;
    }
}

template <int BITS>
__device__ __forceinline__ void gemv_swiglu_body(const uint32_t* qg, const float* sg, const float* zg,
                                                 const uint32_t* qu, const float* su, const float* zu, int O, int I,
                                                 int groupSize, const __nv_bfloat16* __restrict__ x,
                                                 __nv_bfloat16* __restrict__ out) {
    __shared__ float partialGate[GEMV_MAX_SLICES][33];
    __shared__ float partialUp[GEMV_MAX_SLICES][33];
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    float g = 0.f, u = 0.f;
    if (o < O) {
        g = gemv_slice<BITS, __nv_bfloat16>(qg, sg, zg, O, I, groupSize, x, o);
        u = gemv_slice<BITS, __nv_bfloat16>(qu, su, zu, O, I, groupSize, x, o);
    }
    float z = bf16_round(gemv_reduce(partialGate, g));
    float up = bf16_round(gemv_reduce(partialUp, u));
    if (threadIdx.y == 0 && o < O) out[o] = __float2bfloat16_rn(z / (1.f + expf(-z)) * up);
}

extern "C" {

#define GEMV(BITS)                                                                                              \
    __global__ void __launch_bounds__(1024) qgemv_b##BITS(const uint32_t* __restrict__ q,                        \
                                                         const float* __restrict__ scales,                      \
                                                         const float* __restrict__ zeros, int O, int I,         \
                                                         int groupSize, const float* __restrict__ x,            \
                                                         float* __restrict__ y) {                               \
        gemv_body<BITS, float>(q, scales, zeros, O, I, groupSize, x, y);                                        \
    }                                                                                                           \
    __global__ void __launch_bounds__(1024) qgemv_bf16_b##BITS(const uint32_t* __restrict__ q,                   \
                                                              const float* __restrict__ scales,                 \
                                                              const float* __restrict__ zeros, int O, int I,    \
                                                              int groupSize, const __nv_bfloat16* __restrict__ x,\
                                                              __nv_bfloat16* __restrict__ y) {                  \
        gemv_body<BITS, __nv_bfloat16>(q, scales, zeros, O, I, groupSize, x, y);                                \
    }                                                                                                           \
    __global__ void __launch_bounds__(1024) qgemv3_bf16_b##BITS(                                                 \
            const uint32_t* q0, const float* s0, const float* z0, int O0, __nv_bfloat16* y0,                    \
            const uint32_t* q1, const float* s1, const float* z1, int O1, __nv_bfloat16* y1,                    \
            const uint32_t* q2, const float* s2, const float* z2, int O2, __nv_bfloat16* y2,                    \
            int I, int groupSize, const __nv_bfloat16* x) {                                                     \
        gemv3_body<BITS>(q0, s0, z0, O0, y0, q1, s1, z1, O1, y1, q2, s2, z2, O2, y2, I, groupSize, x);          \
    }                                                                                                           \
    __global__ void __launch_bounds__(1024) qgemv_residual_bf16_b##BITS(                                         \
            const uint32_t* q, const float* s, const float* z, int O, int I, int groupSize,                     \
            const __nv_bfloat16* x, int pBf, const void* residual, int rBf, void* out, int oBf) {               \
        gemv_residual_body<BITS>(q, s, z, O, I, groupSize, x, pBf, residual, rBf, out, oBf);                    \
    }                                                                                                           \
    __global__ void __launch_bounds__(1024) qgemv_swiglu_bf16_b##BITS(                                           \
            const uint32_t* qg, const float* sg, const float* zg, const uint32_t* qu, const float* su,          \
            const float* zu, int O, int I, int groupSize, const __nv_bfloat16* x, __nv_bfloat16* out) {         \
        gemv_swiglu_body<BITS>(qg, sg, zg, qu, su, zu, O, I, groupSize, x, out);                                \
    }
GEMV(2)
GEMV(3)
GEMV(4)
GEMV(8)

// ---------------------------------------------------------------------------------------------------------------
// Dense helpers for the cuBLAS comparisons: float -> bf16 (round to nearest even, as __float2bfloat16_rn).
// ---------------------------------------------------------------------------------------------------------------
__global__ void f32_to_bf16(const float* __restrict__ in, uint16_t* __restrict__ out, size_t n) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= n) return;
    uint32_t u = __float_as_uint(in[idx]);
    u += 0x7FFFu + ((u >> 16) & 1u);  // NaN inputs do not occur here (activations and dequantized weights)
    out[idx] = (uint16_t)(u >> 16);
}

}  // extern "C"
