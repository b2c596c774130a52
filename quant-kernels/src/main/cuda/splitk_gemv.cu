// Split-K GEMV for one-token decode (bf16 activations, fp32 arithmetic), over the checkpoint layout of
// qalora_kernels.cu (q [I*bits/32, O] uint32, fp32 scales and zeros [I/groupSize, O]).
//
// Why a second GEMV: the slice GEMV of qalora_kernels.cu gives each block 32 columns and all of I, so a 4096-wide
// product is 128 blocks of 1024 threads on 132 SMs (one block per SM, half-occupied) and an 11008-wide one is
// 344 blocks, 1.3 waves; each thread has one 32-bit word per load in flight. It streamed at 0.41-0.6 of the copy
// bandwidth on an H100 (docs/PERFORMANCE.md, "Batch-1 decode on the GPU"). Here:
// - a thread owns 4 adjacent output columns, so every code load is 16 bytes (a warp reads 512 contiguous bytes of a
//   word row) and the scale and zero loads are float4;
// - the input is cut into splits of KB chunks of 32 (KB fixed by the caller, a function of I only): the grid is
//   (column tiles of 128, splits), blocks of 8 warps, so every shape gives several blocks per SM;
// - a warp takes the split's chunks warp, warp + 8, ... through two register buffers, each refilled as soon as its
//   math is done, so the next chunk's loads are in flight while the warp computes;
// - codes become floats by OR-ing them into the mantissa of 2^23 and subtracting 2^23 (exact, full-rate FP32
//   instead of the quarter-rate integer-to-float conversion).
// Determinism: a column's sum is the chunks' terms in a fixed order (a thread's chunks in order, then warps 0..7,
// then splits 0..P-1), whatever the grid or the other weights of the launch; the splits meet in a workspace and the
// last block of a tile to finish (an atomic counter, reset by that block for the next launch) adds them in split
// order. So the fused launches (q/k/v in one grid, product + residual, gate/up + SwiGLU) write exactly the bits of
// the separate single-weight launch followed by the separate add or SwiGLU.
// Requirements (checked by the Java launcher, SplitKGemv): I % 32 == 0, groupSize % 32 == 0, O % 4 == 0, every
// pointer 16-byte aligned.
#include <stdint.h>
#include <cuda_bf16.h>
#include "layer_math.cuh"

#define SK_WARPS 8
#define SK_THREADS (SK_WARPS * 32)
#define SK_COLS 128  // a tile: 32 lanes x 4 adjacent columns
// Blocks an SM must hold at once: 3 (24 warps, at most 85 registers a thread) for the one-weight kernels up to 4 bits,
// which fit that without spilling; the 8-bit ones and the two-weight SwiGLU kernel need more registers and get 2.
#define SK_MIN_BLOCKS(BITS) ((BITS) <= 4 ? 3 : 1)
#define SK_BOUNDS(BITS) __launch_bounds__(SK_THREADS, SK_MIN_BLOCKS(BITS))

template <int BITS>
struct SkChunk {
    uint4 w[BITS];  // word b of the chunk for the thread's 4 columns
    float4 s, z;
};

__device__ __forceinline__ uint32_t sk_lane(const uint4& u, int v) { return v == 0 ? u.x : v == 1 ? u.y : v == 2 ? u.z : u.w; }
__device__ __forceinline__ float sk_lane(const float4& u, int v) { return v == 0 ? u.x : v == 1 ? u.y : v == 2 ? u.z : u.w; }

template <int BITS>
__device__ __forceinline__ void sk_load(SkChunk<BITS>& ch, const uint32_t* __restrict__ q,
                                        const float* __restrict__ sc, const float* __restrict__ ze, int O,
                                        int groupSize, int c, int o) {
#pragma unroll
    for (int b = 0; b < BITS; b++) ch.w[b] = __ldg(reinterpret_cast<const uint4*>(q + (size_t)(c * BITS + b) * O + o));
    size_t k = (size_t)(c * 32 / groupSize) * O + o;
    ch.s = __ldg(reinterpret_cast<const float4*>(sc + k));
    ch.z = __ldg(reinterpret_cast<const float4*>(ze + k));
}

// Input j of a chunk as a float (bf16 is the top half of a float).
__device__ __forceinline__ float sk_x(const uint32_t (&xp)[16], int j) {
    return __uint_as_float((j & 1) ? xp[j >> 1] & 0xffff0000u : xp[j >> 1] << 16);
}

// The 32 inputs of chunk c as 16 bf16 pairs (the lower address in the low half), and their sum in index order.
// Kept packed (16 registers, not 32) so that three blocks fit an SM.
__device__ __forceinline__ float sk_load_x(const __nv_bfloat16* __restrict__ x, int c, uint32_t (&xp)[16]) {
    const uint4* p = reinterpret_cast<const uint4*>(x + (size_t)c * 32);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        uint4 u = __ldg(p + k);
#pragma unroll
        for (int e = 0; e < 4; e++) xp[4 * k + e] = sk_lane(u, e);
    }
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < 32; j++) sum += sk_x(xp, j);
    return sum;
}

// Code j of a column's chunk as a float: the bits 0x4B000000 | v are the float 2^23 + v, so the subtraction is exact.
template <int BITS>
__device__ __forceinline__ float sk_code(const uint32_t (&w)[BITS], int j) {
    const int bit = j * BITS, wi = bit >> 5, sh = bit & 31;
    unsigned v = w[wi] >> sh;
    if (sh + BITS > 32) v |= w[wi + 1] << (32 - sh);
    v &= (1u << BITS) - 1u;
    return __uint_as_float(v | 0x4B000000u) - 8388608.f;
}

// acc[v] += s * (sum_j x_j q_j - z * sum_j x_j) for the thread's 4 columns (a chunk lies inside one group). Each
// column's dot product runs over j in order; j is the outer loop so that each input is unpacked once for 4 columns.
template <int BITS>
__device__ __forceinline__ void sk_accumulate(const SkChunk<BITS>& ch, const uint32_t (&xp)[16], float xsum,
                                              float (&acc)[4]) {
    uint32_t w[4][BITS];
#pragma unroll
    for (int v = 0; v < 4; v++) {
#pragma unroll
        for (int b = 0; b < BITS; b++) w[v][b] = sk_lane(ch.w[b], v);
    }
    float dot[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int j = 0; j < 32; j++) {
        const float xj = sk_x(xp, j);
#pragma unroll
        for (int v = 0; v < 4; v++) dot[v] = fmaf(xj, sk_code<BITS>(w[v], j), dot[v]);
    }
#pragma unroll
    for (int v = 0; v < 4; v++) acc[v] = fmaf(sk_lane(ch.s, v), dot[v] - sk_lane(ch.z, v) * xsum, acc[v]);
}

// The warp's chunks of [c0, c1) of one weight (c0 + warp, then every SK_WARPS-th), in order, through two register
// buffers: a buffer's next chunk is requested as soon as its math is done, so while the warp computes one chunk the
// next one's loads are in flight (with KB > 2 * SK_WARPS chunks a split; at 16 both chunks load before any math).
template <int BITS>
__device__ __forceinline__ void sk_warp_sum(const uint32_t* q, const float* sc, const float* ze, int O, int groupSize,
                                            const __nv_bfloat16* x, int o, int c0, int c1, float (&acc)[4]) {
    int c = c0 + (int)(threadIdx.x >> 5);
    if (c >= c1) return;
    SkChunk<BITS> a, b;
    bool more = c + SK_WARPS < c1;  // whether buffer b holds a chunk
    sk_load<BITS>(a, q, sc, ze, O, groupSize, c, o);
    if (more) sk_load<BITS>(b, q, sc, ze, O, groupSize, c + SK_WARPS, o);
    pdl_wait_previous();
    uint32_t xv[16];
    for (;;) {
        float xs = sk_load_x(x, c, xv);
        sk_accumulate<BITS>(a, xv, xs, acc);
        const bool nextA = c + 2 * SK_WARPS < c1;
        if (nextA) sk_load<BITS>(a, q, sc, ze, O, groupSize, c + 2 * SK_WARPS, o);
        if (!more) return;
        xs = sk_load_x(x, c + SK_WARPS, xv);
        sk_accumulate<BITS>(b, xv, xs, acc);
        more = c + 3 * SK_WARPS < c1;
        if (more) sk_load<BITS>(b, q, sc, ze, O, groupSize, c + 3 * SK_WARPS, o);
        if (!nextA) return;
        c += 2 * SK_WARPS;
    }
}

// The same over two weights of one input (gate and up): a chunk of each in flight, both loaded before any math. Not
// double-buffered like the one-weight sum: that needs 120 registers a thread here, which leaves 2 blocks an SM where
// this takes 3, and measured slower on an H100 (docs/PERFORMANCE.md, "Batch-1 decode on the GPU").
template <int BITS>
__device__ __forceinline__ void sk_warp_sum2(const uint32_t* qa, const float* sa, const float* za, const uint32_t* qb,
                                             const float* sb, const float* zb, int O, int groupSize,
                                             const __nv_bfloat16* x, int o, int c0, int c1, float (&accA)[4],
                                             float (&accB)[4]) {
    for (int c = c0 + (int)(threadIdx.x >> 5); c < c1; c += SK_WARPS) {
        SkChunk<BITS> a, b;
        sk_load<BITS>(a, qa, sa, za, O, groupSize, c, o);
        sk_load<BITS>(b, qb, sb, zb, O, groupSize, c, o);
        pdl_wait_previous();
        uint32_t xv[16];
        const float xs = sk_load_x(x, c, xv);
        sk_accumulate<BITS>(a, xv, xs, accA);
        sk_accumulate<BITS>(b, xv, xs, accB);
    }
}

// The block's sum over its warps, in warp order; meaningful in warp 0.
__device__ __forceinline__ float4 sk_block_sum(const float (&acc)[4], float4* red /* [SK_THREADS] */) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    red[threadIdx.x] = make_float4(acc[0], acc[1], acc[2], acc[3]);
    __syncthreads();
    float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
    if (warp == 0) {
        for (int w = 0; w < SK_WARPS; w++) {
            float4 r = red[w * 32 + lane];
            s.x += r.x; s.y += r.y; s.z += r.z; s.w += r.w;
        }
    }
    return s;
}

// Warp 0 of every block: adds the splits (blockIdx.y of gridDim.y) of its NP partial sums. Returns true in the
// tile's last block to finish, with v[k] = the sum over splits 0..P-1 in order; the others return false. Partial k of
// split p lives at ws[(p * NP + k) * stride + col]; counters[tile] counts the tile's finished splits and is left 0.
template <int NP>
__device__ __forceinline__ bool sk_split_sum(float4 (&v)[NP], float* ws, unsigned* counters, int tile,
                                             size_t stride, size_t col) {
    const int P = gridDim.y, split = blockIdx.y;
    if (P == 1) return true;
#pragma unroll
    for (int k = 0; k < NP; k++) __stcg(reinterpret_cast<float4*>(ws + ((size_t)split * NP + k) * stride + col), v[k]);
    __threadfence();  // the partials are visible device-wide before the count says so
    __syncwarp();
    unsigned prev = 0;
    if ((threadIdx.x & 31) == 0) prev = atomicAdd(counters + tile, 1u);
    prev = __shfl_sync(0xffffffffu, prev, 0);
    if (prev != (unsigned)P - 1) return false;
    __threadfence();
#pragma unroll
    for (int k = 0; k < NP; k++) {
        float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int p0 = 0; p0 < P; p0 += 8) {  // 8 loads in flight, then their sums in split order
            float4 r[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int p = p0 + u;
                r[u] = p >= P || p == split
                           ? v[k]
                           : __ldcg(reinterpret_cast<const float4*>(ws + ((size_t)p * NP + k) * stride + col));
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
                if (p0 + u < P) { s.x += r[u].x; s.y += r[u].y; s.z += r[u].z; s.w += r[u].w; }
            }
        }
        v[k] = s;
    }
    if ((threadIdx.x & 31) == 0) counters[tile] = 0;  // ready for the next launch (launches on a device are ordered)
    return true;
}

__device__ __forceinline__ float sk_bf16_round(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// ---- the three launches -------------------------------------------------------------------------------------------

// Where a decode step's q/k/v launch also rotates q and k and writes k and v into the KV cache (rope_cache_write of
// training_kernels.cu, for one row): cos and sin the row's table row [d/2], the cache row info[0] * capacity + info[1].
struct SkRope {
    const float* cos;
    const float* sin;
    void* kCache;
    void* vCache;
    int cacheBf;
    const int* info;
    int capacity;
    int d;
};

// The finished tile's values p of weight `which` (0 q, 1 k, 2 v) at columns o..o+3, with RoPE and the cache write of
// rope_cache_write: the product as stored in bf16, rotated in fp32 with its partner half (lanes d/8 apart; every lane
// of warp 0 calls this), stored back in bf16, and k's and v's stored values copied into the cache.
__device__ __forceinline__ void sk_rope_store(const SkRope& r, int which, float (&p)[4], __nv_bfloat16* y, int o,
                                              int O) {
    float b[4];
#pragma unroll
    for (int e = 0; e < 4; e++) b[e] = sk_bf16_round(p[e]);
    if (which < 2) {
        const int half = r.d / 2, c = o % r.d, first = c < half, i0 = first ? c : c - half;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float partner = __shfl_xor_sync(0xffffffffu, b[e], r.d / 8);
            const float cv = r.cos[i0 + e], sv = r.sin[i0 + e];
            b[e] = sk_bf16_round(first ? rope_first(b[e], partner, cv, sv) : rope_second(partner, b[e], cv, sv));
        }
    }
    if (o >= O) return;
    const size_t to = ((size_t)r.info[0] * r.capacity + r.info[1]) * O;
#pragma unroll
    for (int e = 0; e < 4; e++) {
        y[o + e] = __float2bfloat16_rn(b[e]);
        if (which > 0) st(which == 1 ? r.kCache : r.vCache, r.cacheBf, to + o + e, b[e]);
    }
}

// y[k] = W[k] x for up to three weights of one input (a weight with O = 0 is absent); grid (sum of tiles, P). With
// rope (q, k, v of one row), also rope_cache_write's rotation and cache write.
template <int BITS>
__device__ __forceinline__ void sk_gemv3(const uint32_t* q0, const float* s0, const float* z0, int O0,
                                         __nv_bfloat16* y0, const uint32_t* q1, const float* s1, const float* z1,
                                         int O1, __nv_bfloat16* y1, const uint32_t* q2, const float* s2,
                                         const float* z2, int O2, __nv_bfloat16* y2, int I, int groupSize,
                                         const __nv_bfloat16* x, int kb, float* ws, unsigned* counters,
                                         const SkRope* rope) {
    __shared__ float4 red[SK_THREADS];
    pdl_allow_next();
    const int t0 = (O0 + SK_COLS - 1) / SK_COLS, t1 = (O1 + SK_COLS - 1) / SK_COLS;
    int t = blockIdx.x, which = 0;
    const uint32_t* q = q0; const float* sc = s0; const float* ze = z0; int O = O0; __nv_bfloat16* y = y0;
    if (t >= t0 + t1) { t -= t0 + t1; which = 2; q = q2; sc = s2; ze = z2; O = O2; y = y2; }
    else if (t >= t0) { t -= t0; which = 1; q = q1; sc = s1; ze = z1; O = O1; y = y1; }
    const int lane = threadIdx.x & 31, o = t * SK_COLS + lane * 4;
    const int c0 = blockIdx.y * kb, c1 = min(c0 + kb, I / 32);
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    if (o < O) sk_warp_sum<BITS>(q, sc, ze, O, groupSize, x, o, c0, c1, acc);
    pdl_wait_previous();  // threads without chunks too: everything below writes
    float4 v[1] = {sk_block_sum(acc, red)};
    if (threadIdx.x >= 32) return;
    if (!sk_split_sum<1>(v, ws, counters, blockIdx.x, (size_t)gridDim.x * SK_COLS,
                         (size_t)blockIdx.x * SK_COLS + lane * 4)) return;
    float p[4] = {v[0].x, v[0].y, v[0].z, v[0].w};
    if (rope != nullptr) {
        sk_rope_store(*rope, which, p, y, o, O);
        return;
    }
    if (o >= O) return;
#pragma unroll
    for (int e = 0; e < 4; e++) y[o + e] = __float2bfloat16_rn(p[e]);
}

// out = residual + W x, the product rounded to bf16 first when pBf (as the separate product into a bf16 buffer),
// added in fp32 and stored in out's type; residual and out fp32 (0) or bf16 (1). With a norm weight nw (else null),
// then normed = rmsnorm(out) and *rstd, by the last tile to finish (rowCounter counts finished tiles, left 0).
template <int BITS>
__device__ __forceinline__ void sk_gemv_residual(const uint32_t* q, const float* sc, const float* ze, int O, int I,
                                                 int groupSize, const __nv_bfloat16* x, int pBf,
                                                 const void* residual, int rBf, void* out, int oBf, int kb,
                                                 float* ws, unsigned* counters, const float* nw, float eps,
                                                 void* normed, int nBf, float* rstd, unsigned* rowCounter) {
    __shared__ float4 red[SK_THREADS];
    __shared__ double redNorm[SK_THREADS];
    __shared__ int lastTile;
    pdl_allow_next();
    const int lane = threadIdx.x & 31, o = blockIdx.x * SK_COLS + lane * 4;
    const int c0 = blockIdx.y * kb, c1 = min(c0 + kb, I / 32);
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    if (o < O) sk_warp_sum<BITS>(q, sc, ze, O, groupSize, x, o, c0, c1, acc);
    pdl_wait_previous();  // threads without chunks too: everything below writes
    float4 v[1] = {sk_block_sum(acc, red)};
    bool finished = false;
    if (threadIdx.x < 32) {
        finished = sk_split_sum<1>(v, ws, counters, blockIdx.x, (size_t)gridDim.x * SK_COLS,
                                   (size_t)blockIdx.x * SK_COLS + lane * 4);
        if (finished && o < O) {
            float p[4] = {v[0].x, v[0].y, v[0].z, v[0].w};
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float r = rBf ? __bfloat162float(((const __nv_bfloat16*)residual)[o + e])
                              : ((const float*)residual)[o + e];
                st(out, oBf, o + e, r + (pBf ? sk_bf16_round(p[e]) : p[e]));
            }
        }
    }
    if (nw == nullptr) return;  // uniform over the grid
    if (threadIdx.x < 32) {
        __threadfence();  // this tile's outputs are visible device-wide before the count says so
        __syncwarp();
        if (threadIdx.x == 0) lastTile = finished && atomicAdd(rowCounter, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!lastTile) return;
    __threadfence();
    rmsnorm_row<true>(out, oBf, nw, eps, normed, nBf, rstd, O, redNorm);
    if (threadIdx.x == 0) *rowCounter = 0;  // ready for the next launch
}

// out = silu(Wg x) * (Wu x), bf16, each product rounded to bf16 first (two products, then the SwiGLU kernel).
template <int BITS>
__device__ __forceinline__ void sk_gemv_swiglu(const uint32_t* qg, const float* sg, const float* zg,
                                               const uint32_t* qu, const float* su, const float* zu, int O, int I,
                                               int groupSize, const __nv_bfloat16* x, __nv_bfloat16* out, int kb,
                                               float* ws, unsigned* counters) {
    __shared__ float4 redGate[SK_THREADS];
    __shared__ float4 redUp[SK_THREADS];
    pdl_allow_next();
    const int lane = threadIdx.x & 31, o = blockIdx.x * SK_COLS + lane * 4;
    const int c0 = blockIdx.y * kb, c1 = min(c0 + kb, I / 32);
    float g[4] = {0.f, 0.f, 0.f, 0.f}, u[4] = {0.f, 0.f, 0.f, 0.f};
    if (o < O) sk_warp_sum2<BITS>(qg, sg, zg, qu, su, zu, O, groupSize, x, o, c0, c1, g, u);
    pdl_wait_previous();
    float4 v[2] = {sk_block_sum(g, redGate), sk_block_sum(u, redUp)};
    if (threadIdx.x >= 32) return;
    if (!sk_split_sum<2>(v, ws, counters, blockIdx.x, (size_t)gridDim.x * SK_COLS,
                         (size_t)blockIdx.x * SK_COLS + lane * 4) || o >= O) return;
    float gs[4] = {v[0].x, v[0].y, v[0].z, v[0].w}, us[4] = {v[1].x, v[1].y, v[1].z, v[1].w};
#pragma unroll
    for (int e = 0; e < 4; e++) {
        float z = sk_bf16_round(gs[e]), up = sk_bf16_round(us[e]);
        out[o + e] = __float2bfloat16_rn(z / (1.f + expf(-z)) * up);
    }
}

extern "C" {

#define SPLITK_GEMV(BITS)                                                                                           \
    __global__ void SK_BOUNDS(BITS) sk_gemv_bf16_b##BITS(                                                           \
            const uint32_t* q0, const float* s0, const float* z0, int O0, __nv_bfloat16* y0,                        \
            const uint32_t* q1, const float* s1, const float* z1, int O1, __nv_bfloat16* y1,                        \
            const uint32_t* q2, const float* s2, const float* z2, int O2, __nv_bfloat16* y2,                        \
            int I, int groupSize, const __nv_bfloat16* x, int kb, float* ws, unsigned* counters) {                  \
        sk_gemv3<BITS>(q0, s0, z0, O0, y0, q1, s1, z1, O1, y1, q2, s2, z2, O2, y2, I, groupSize, x, kb, ws,         \
                       counters, nullptr);                                                                          \
    }                                                                                                               \
    __global__ void SK_BOUNDS(BITS) sk_gemv_rope_bf16_b##BITS(                                                      \
            const uint32_t* q0, const float* s0, const float* z0, int O0, __nv_bfloat16* y0,                        \
            const uint32_t* q1, const float* s1, const float* z1, int O1, __nv_bfloat16* y1,                        \
            const uint32_t* q2, const float* s2, const float* z2, int O2, __nv_bfloat16* y2,                        \
            int I, int groupSize, const __nv_bfloat16* x, int kb, float* ws, unsigned* counters,                    \
            const float* cos, const float* sin, void* kCache, void* vCache, int cacheBf, const int* info,           \
            int capacity, int d) {                                                                                  \
        const SkRope rope = {cos, sin, kCache, vCache, cacheBf, info, capacity, d};                                 \
        sk_gemv3<BITS>(q0, s0, z0, O0, y0, q1, s1, z1, O1, y1, q2, s2, z2, O2, y2, I, groupSize, x, kb, ws,         \
                       counters, &rope);                                                                            \
    }                                                                                                               \
    __global__ void SK_BOUNDS(BITS) sk_gemv_residual_bf16_b##BITS(                                                  \
            const uint32_t* q, const float* s, const float* z, int O, int I, int groupSize,                         \
            const __nv_bfloat16* x, int pBf, const void* residual, int rBf, void* out, int oBf, int kb,             \
            float* ws, unsigned* counters) {                                                                        \
        sk_gemv_residual<BITS>(q, s, z, O, I, groupSize, x, pBf, residual, rBf, out, oBf, kb, ws, counters,         \
                               nullptr, 0.f, nullptr, 0, nullptr, nullptr);                                         \
    }                                                                                                               \
    __global__ void SK_BOUNDS(BITS) sk_gemv_residual_norm_bf16_b##BITS(                                             \
            const uint32_t* q, const float* s, const float* z, int O, int I, int groupSize,                         \
            const __nv_bfloat16* x, int pBf, const void* residual, int rBf, void* out, int oBf, int kb,             \
            float* ws, unsigned* counters, const float* nw, float eps, void* normed, int nBf, float* rstd,          \
            unsigned* rowCounter) {                                                                                 \
        sk_gemv_residual<BITS>(q, s, z, O, I, groupSize, x, pBf, residual, rBf, out, oBf, kb, ws, counters,         \
                               nw, eps, normed, nBf, rstd, rowCounter);                                             \
    }                                                                                                               \
    __global__ void __launch_bounds__(SK_THREADS) sk_gemv_swiglu_bf16_b##BITS(                                      \
            const uint32_t* qg, const float* sg, const float* zg, const uint32_t* qu, const float* su,              \
            const float* zu, int O, int I, int groupSize, const __nv_bfloat16* x, __nv_bfloat16* out, int kb,       \
            float* ws, unsigned* counters) {                                                                        \
        sk_gemv_swiglu<BITS>(qg, sg, zg, qu, su, zu, O, I, groupSize, x, out, kb, ws, counters);                    \
    }
SPLITK_GEMV(2)
SPLITK_GEMV(3)
SPLITK_GEMV(4)
SPLITK_GEMV(8)

}  // extern "C"
