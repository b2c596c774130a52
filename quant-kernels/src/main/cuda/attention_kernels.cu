// Fused causal attention for bf16 training (org.qalora.worker.backend.cuda.FlashAttention): the flash-attention
// algorithm (Dao 2022/2023) on mma.sync bf16 tensor cores, so no T x T score matrix ever reaches global memory.
//
//   forward   O = softmax(scale Q K^T, causal) V, and lse = the row log-sum-exp, from one pass over the key tiles
//             with an online softmax (running max and sum per row, rescaling O as the max grows);
//   backward  D = rowsum(dO * O) (flash_attention_dot), then two kernels that each recompute P = exp(scale S - lse):
//             flash_attention_dkdv (one block per key tile: dV = P^T dO, dK = dS^T Q over all query tiles and all
//             query heads of the kv group) and flash_attention_dq (one block per query tile: dQ = dS K over the
//             key tiles), with dS = P (dP - D), dP = dO V^T.
//
// Determinism: no atomics. Every output element is written once by one thread, after sums in a fixed order (key
// tiles, query tiles and query heads in index order; mma k-steps in order), so results are bit-identical from run
// to run. Splitting dQ from dK/dV (instead of FA2's atomic dQ) costs one recomputation of S and dP.
//
// Layout (as the worker's other attention paths): q and o [B*T, H*D], k and v [B*T, KV*D], query head h reads kv
// head h / (H / KV); lse and D are [B, H, T] fp32. q, k, v, dO and the saved O are bf16; o, dq, dk, dv are bf16 or
// fp32 (the flag next to the pointer). D (head dim) is 16, 32, 64 or 128 (template instances below).
//
// Tiles: 64 rows per block, 4 warps of 16 rows; mma m16n8k16 (bf16 in, fp32 accumulate). Fragment layouts are
// PTX ISA's: for lane l, g = l / 4 and c = l % 4; an accumulator holds (row g, cols 2c, 2c+1) and (row g+8, same
// cols). Shared tiles have rows of D + 8 elements so that ldmatrix's eight 16-byte rows fall in distinct banks.
#include <stdint.h>
#include <cuda_bf16.h>

typedef __nv_bfloat16 bf16;

#define FA_ROWS 64
#define FA_THREADS 128
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

__device__ __forceinline__ uint32_t fa_pack(float lo, float hi) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           ((uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}

__device__ __forceinline__ uint32_t smem_address(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 2^x with the SFU's approximation (2 ulp; exp2(-inf) = 0), as flash attention does: the probabilities are rounded to
// bf16 before they are used, so the last bits of fp32 exp never matter.
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// 16 bytes global -> shared without passing through registers; zero-filled when !valid (src-size 0).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :: "r"(smem_address(dst)), "l"(src), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }

// Waits until at most `pending` of this thread's committed groups are still in flight.
template <int pending>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(pending)); }

// Four 8x8 bf16 matrices from shared memory; lane l gives the address of row (l % 8) of matrix l / 8.
__device__ __forceinline__ void ldsm4(uint32_t* r, const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_address(p)));
}

// The same, each matrix transposed on the way (for a B operand stored [k][n]).
__device__ __forceinline__ void ldsm4t(uint32_t* r, const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_address(p)));
}

// c (16x8 fp32) += a (16x16 bf16, row) * b (16x8 bf16, col).
__device__ __forceinline__ void mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9},"
                 " {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// A operand (16 rows x 16 columns at col0) of a row-major shared tile, rows row0.. (x4: the four 8x8 quarters in
// the order a0..a3 wants: rows 0-7 / 8-15 of columns 0-7, then of columns 8-15).
template <int D>
__device__ __forceinline__ void load_a(uint32_t* a, const bf16* tile, int row0, int col0, int lane) {
    ldsm4(a, tile + (row0 + (lane & 15)) * (D + 8) + col0 + (lane >> 4) * 8);
}

// B operands of two n-tiles (rows n0..n0+15 of a tile stored [n][k], k = col0..col0+15): b[0..1] for rows
// n0..n0+7, b[2..3] for rows n0+8..n0+15. Used for Q K^T (K stored [key][dim]) and dO V^T.
template <int D>
__device__ __forceinline__ void load_b_nk(uint32_t* b, const bf16* tile, int n0, int col0, int lane) {
    ldsm4(b, tile + (n0 + (lane & 7) + ((lane >> 4) << 3)) * (D + 8) + col0 + ((lane >> 3) & 1) * 8);
}

// B operands of two n-tiles from a tile stored [k][n] (k = rows k0..k0+15, n = cols n0..n0+15): b[0..1] for cols
// n0..n0+7, b[2..3] for n0+8..n0+15. Used for P V (V stored [key][dim]), dS K, P^T dO, dS^T Q.
template <int D>
__device__ __forceinline__ void load_b_kn(uint32_t* b, const bf16* tile, int k0, int n0, int lane) {
    ldsm4t(b, tile + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * (D + 8) + n0 + (lane >> 4) * 8);
}

// An A operand (16 x 16) from two accumulator n-tiles (16 x 8 each): the accumulator layout of columns 2c, 2c+1
// is the A layout of the same columns, so a product's result feeds the next product without shared memory.
__device__ __forceinline__ void acc_to_a(uint32_t* a, const float* lo, const float* hi) {
    a[0] = fa_pack(lo[0], lo[1]);
    a[1] = fa_pack(lo[2], lo[3]);
    a[2] = fa_pack(hi[0], hi[1]);
    a[3] = fa_pack(hi[2], hi[3]);
}

// Starts copying 64 rows (valid: the first `rows`, the rest zero-filled) of D bf16 columns at g (row stride `stride`
// elements) into a shared tile, 16 bytes per thread and step. The caller commits, waits and synchronizes.
template <int D>
__device__ __forceinline__ void load_tile(bf16* tile, const bf16* g, size_t stride, int rows) {
    constexpr int CHUNKS = D / 8;
    for (int i = threadIdx.x; i < FA_ROWS * CHUNKS; i += FA_THREADS) {
        int r = i / CHUNKS, c = i % CHUNKS;
        cp_async16(tile + r * (D + 8) + c * 8, r < rows ? g + r * stride + c * 8 : g, r < rows);
    }
}

#define TILE(D) (FA_ROWS * ((D) + 8))

// Two consecutive output columns of a row (bf16 or fp32 by flag).
__device__ __forceinline__ void store2(void* out, int bf, size_t i, float a, float b) {
    if (bf) *reinterpret_cast<uint32_t*>(reinterpret_cast<bf16*>(out) + i) = fa_pack(a, b);
    else *reinterpret_cast<float2*>(reinterpret_cast<float*>(out) + i) = make_float2(a, b);
}

template <int D>
__device__ __forceinline__ void store_rows(void* out, int bf, size_t rowStride, size_t col0, int rowA, int T,
                                           int lane, const float (*acc)[4], float sA, float sB) {
    int c2 = 2 * (lane & 3);
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        if (rowA < T) store2(out, bf, rowA * rowStride + col0 + 8 * j + c2, acc[j][0] * sA, acc[j][1] * sA);
        if (rowA + 8 < T) store2(out, bf, (rowA + 8) * rowStride + col0 + 8 * j + c2, acc[j][2] * sB, acc[j][3] * sB);
    }
}

// ---- forward ------------------------------------------------------------------------------------------------------

// Grid (ceil(T / 64), H, B), 128 threads, 2 tiles of shared memory. The last query tiles (the most keys) start first.
template <int D>
__device__ void attention_forward(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                  const bf16* __restrict__ v, void* out, int oBf, bf16* __restrict__ saved,
                                  float* __restrict__ lse, int T, int H, int KV, float scale) {
    extern __shared__ uint4 smem[];
    bf16* tiles = reinterpret_cast<bf16*>(smem);  // K and V of buffer 0, then of buffer 1
    const int q0 = (gridDim.x - 1 - blockIdx.x) * FA_ROWS, h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const size_t qw = (size_t)H * D, kw = (size_t)KV * D;
    const int rowA = q0 + warp * 16 + (lane >> 2), rowB = rowA + 8;
    const float c = scale * LOG2E;
    auto loadKeys = [&](int k0, int buffer) {
        const size_t kvOff = ((size_t)b * T + k0) * kw + (size_t)kvh * D;
        load_tile<D>(tiles + 2 * buffer * TILE(D), k + kvOff, kw, min(FA_ROWS, T - k0));
        load_tile<D>(tiles + (2 * buffer + 1) * TILE(D), v + kvOff, kw, min(FA_ROWS, T - k0));
        cp_async_commit();
    };

    // Q's fragments stay in registers for the whole pass (staged through buffer 1, while buffer 0 fills).
    load_tile<D>(tiles + 2 * TILE(D), q + ((size_t)b * T + q0) * qw + (size_t)h * D, qw, min(FA_ROWS, T - q0));
    cp_async_commit();
    loadKeys(0, 0);
    cp_async_wait<1>();
    __syncthreads();
    uint32_t qa[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) load_a<D>(qa[kk], tiles + 2 * TILE(D), warp * 16, kk * 16, lane);
    __syncthreads();

    float o[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    const int lastKey = min(q0 + FA_ROWS - 1, T - 1);
    for (int it = 0, k0 = 0; k0 <= lastKey; it++, k0 += FA_ROWS) {
        // The next tile streams into the other buffer while this one is used (double buffering).
        if (k0 + FA_ROWS <= lastKey) {
            loadKeys(k0 + FA_ROWS, (it + 1) & 1);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16* sK = tiles + 2 * (it & 1) * TILE(D);
        const bf16* sV = sK + TILE(D);

        float s[8][4];
#pragma unroll
        for (int j = 0; j < 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int jp = 0; jp < 4; jp++) {
                uint32_t kb[4];
                load_b_nk<D>(kb, sK, jp * 16, kk * 16, lane);
                mma(s[2 * jp], qa[kk], kb[0], kb[1]);
                mma(s[2 * jp + 1], qa[kk], kb[2], kb[3]);
            }
        }
        // Online softmax in the exp2 domain. Every row sees key k0 (k0 <= q0), so the new max is finite.
        const bool diagonal = k0 + FA_ROWS > q0;
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int j = 0; j < 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = k0 + 8 * j + 2 * (lane & 3) + (e & 1), row = e < 2 ? rowA : rowB;
                float x = s[j][e] * c;
                if (diagonal && key > row) x = -INFINITY;
                s[j][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
        }
        float alpha[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            alpha[r] = fast_exp2(m[r] - mx[r]);
            m[r] = mx[r];
            l[r] *= alpha[r];
        }
#pragma unroll
        for (int j = 0; j < 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = fast_exp2(s[j][e] - m[e >> 1]);
                s[j][e] = p;
                l[e >> 1] += p;
            }
        }
#pragma unroll
        for (int j = 0; j < D / 8; j++) {
            o[j][0] *= alpha[0]; o[j][1] *= alpha[0];
            o[j][2] *= alpha[1]; o[j][3] *= alpha[1];
        }
        // O += P V (P rounded to bf16, as the unfused bf16 path rounds it).
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t pa[4];
            acc_to_a(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
            for (int jp = 0; jp < D / 16; jp++) {
                uint32_t vb[4];
                load_b_kn<D>(vb, sV, kk * 16, jp * 16, lane);
                mma(o[2 * jp], pa, vb[0], vb[1]);
                mma(o[2 * jp + 1], pa, vb[2], vb[3]);
            }
        }
        __syncthreads();  // every warp is done with this buffer before the next iteration refills it
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    const size_t rowBase = (size_t)b * T, col0 = (size_t)h * D;
    store_rows<D>(reinterpret_cast<char*>(out) + rowBase * qw * (oBf ? 2 : 4), oBf, qw, col0, rowA - 0, T, lane, o,
                  1.f / l[0], 1.f / l[1]);
    store_rows<D>(saved + rowBase * qw, 1, qw, col0, rowA, T, lane, o, 1.f / l[0], 1.f / l[1]);
    if ((lane & 3) == 0) {
        size_t base = ((size_t)b * H + h) * T;
        if (rowA < T) lse[base + rowA] = (m[0] + log2f(l[0])) * LN2;
        if (rowB < T) lse[base + rowB] = (m[1] + log2f(l[1])) * LN2;
    }
}

// ---- backward -----------------------------------------------------------------------------------------------------

// D[b, h, t] = sum over the head's columns of dO * O (O as saved by the forward, bf16). D / 8 lanes per (token, head)
// row, each multiplying one 16-byte chunk of both, then a fixed xor-shuffle tree inside the row's lanes (so loads
// are coalesced and the sum order is fixed). Grid-stride over the B*T*H rows by warps.
extern "C" __global__ void flash_attention_dot(const bf16* __restrict__ dO, const bf16* __restrict__ saved,
                                               float* __restrict__ dot, int T, int H, int D, long long rows) {
    const int lanesPerRow = D / 8, rowsPerWarp = 32 / lanesPerRow, lane = threadIdx.x & 31;
    const int sub = lane % lanesPerRow;
    const long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const long long warps = ((long long)gridDim.x * blockDim.x) >> 5;
    for (long long first = warp * rowsPerWarp; first < rows; first += warps * rowsPerWarp) {
        const long long i = first + lane / lanesPerRow;  // row = token * H + head: its columns start at i * D
        float sum = 0.f;
        if (i < rows) {
            const uint4 a = *reinterpret_cast<const uint4*>(dO + i * D + sub * 8);
            const uint4 o = *reinterpret_cast<const uint4*>(saved + i * D + sub * 8);
            const uint32_t wa[4] = {a.x, a.y, a.z, a.w}, wo[4] = {o.x, o.y, o.z, o.w};
#pragma unroll
            for (int e = 0; e < 4; e++) {
                sum += __uint_as_float(wa[e] << 16) * __uint_as_float(wo[e] << 16);
                sum += __uint_as_float(wa[e] & 0xffff0000u) * __uint_as_float(wo[e] & 0xffff0000u);
            }
        }
        for (int offset = lanesPerRow / 2; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
        if (sub == 0 && i < rows) {
            const long long token = i / H, b = token / T, t = token % T;
            dot[(b * H + i % H) * T + t] = sum;
        }
    }
}

// dQ for one query tile of one head. Grid (ceil(T / 64), H, B), 128 threads, 4 tiles of shared memory.
template <int D>
__device__ void attention_dq(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                             const bf16* __restrict__ dO, const float* __restrict__ lse,
                             const float* __restrict__ dot, void* dq, int dqBf, int T, int H, int KV, float scale) {
    extern __shared__ uint4 smem[];
    bf16* sQ = reinterpret_cast<bf16*>(smem);
    bf16* sO = sQ + TILE(D);
    bf16* keyTiles = sO + TILE(D);  // K and V of buffer 0, then of buffer 1
    const int q0 = (gridDim.x - 1 - blockIdx.x) * FA_ROWS, h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const size_t qw = (size_t)H * D, kw = (size_t)KV * D;
    const int rowA = q0 + warp * 16 + (lane >> 2), rowB = rowA + 8;
    const float c = scale * LOG2E;
    const size_t stat = ((size_t)b * H + h) * T;
    const float lseA = rowA < T ? lse[stat + rowA] * LOG2E : 0.f, lseB = rowB < T ? lse[stat + rowB] * LOG2E : 0.f;
    const float dotA = rowA < T ? dot[stat + rowA] : 0.f, dotB = rowB < T ? dot[stat + rowB] : 0.f;
    auto loadKeys = [&](int k0, int buffer) {
        const size_t kvOff = ((size_t)b * T + k0) * kw + (size_t)kvh * D;
        load_tile<D>(keyTiles + 2 * buffer * TILE(D), k + kvOff, kw, min(FA_ROWS, T - k0));
        load_tile<D>(keyTiles + (2 * buffer + 1) * TILE(D), v + kvOff, kw, min(FA_ROWS, T - k0));
        cp_async_commit();
    };

    const size_t qOff = ((size_t)b * T + q0) * qw + (size_t)h * D;
    load_tile<D>(sQ, q + qOff, qw, min(FA_ROWS, T - q0));
    load_tile<D>(sO, dO + qOff, qw, min(FA_ROWS, T - q0));
    loadKeys(0, 0);  // one group with Q and dO
    float acc[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    const int lastKey = min(q0 + FA_ROWS - 1, T - 1);
    for (int it = 0, k0 = 0; k0 <= lastKey; it++, k0 += FA_ROWS) {
        if (k0 + FA_ROWS <= lastKey) {
            loadKeys(k0 + FA_ROWS, (it + 1) & 1);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16* sK = keyTiles + 2 * (it & 1) * TILE(D);
        const bf16* sV = sK + TILE(D);

        float s[8][4], dp[8][4];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
            dp[j][0] = dp[j][1] = dp[j][2] = dp[j][3] = 0.f;
        }
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qa[4], oa[4];
            load_a<D>(qa, sQ, warp * 16, kk * 16, lane);
            load_a<D>(oa, sO, warp * 16, kk * 16, lane);
#pragma unroll
            for (int jp = 0; jp < 4; jp++) {
                uint32_t kb[4], vb[4];
                load_b_nk<D>(kb, sK, jp * 16, kk * 16, lane);
                load_b_nk<D>(vb, sV, jp * 16, kk * 16, lane);
                mma(s[2 * jp], qa, kb[0], kb[1]);
                mma(s[2 * jp + 1], qa, kb[2], kb[3]);
                mma(dp[2 * jp], oa, vb[0], vb[1]);
                mma(dp[2 * jp + 1], oa, vb[2], vb[3]);
            }
        }
        const bool diagonal = k0 + FA_ROWS > q0;
#pragma unroll
        for (int j = 0; j < 8; j++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = k0 + 8 * j + 2 * (lane & 3) + (e & 1), row = e < 2 ? rowA : rowB;
                float p = diagonal && key > row ? 0.f : fast_exp2(s[j][e] * c - (e < 2 ? lseA : lseB));
                s[j][e] = p * (dp[j][e] - (e < 2 ? dotA : dotB));  // dS / scale
            }
        }
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t da[4];
            acc_to_a(da, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
            for (int jp = 0; jp < D / 16; jp++) {
                uint32_t kb[4];
                load_b_kn<D>(kb, sK, kk * 16, jp * 16, lane);
                mma(acc[2 * jp], da, kb[0], kb[1]);
                mma(acc[2 * jp + 1], da, kb[2], kb[3]);
            }
        }
        __syncthreads();
    }
    store_rows<D>(reinterpret_cast<char*>(dq) + (size_t)b * T * qw * (dqBf ? 2 : 4), dqBf, qw, (size_t)h * D, rowA, T,
                  lane, acc, scale, scale);
}

// dK and dV for one key tile of one kv head, summed over the query heads of its group (in order) and the query tiles
// from the key tile on. Grid (ceil(T / 64), KV, B), 128 threads (4 warps of 16 keys), 4 tiles of shared memory plus
// the lse and D of one query tile. The first key tiles (the most queries) start first.
template <int D>
__device__ void attention_dkdv(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                               const bf16* __restrict__ dO, const float* __restrict__ lse,
                               const float* __restrict__ dot, void* dk, int dkBf, void* dv, int dvBf, int T, int H,
                               int KV, float scale) {
    extern __shared__ uint4 smem[];
    bf16* sK = reinterpret_cast<bf16*>(smem);
    bf16* sV = sK + TILE(D);
    bf16* queryTiles = sV + TILE(D);  // Q and dO of buffer 0, then of buffer 1
    float* stats = reinterpret_cast<float*>(queryTiles + 4 * TILE(D));  // lse and D of buffer 0, then of buffer 1
    const int k0 = blockIdx.x * FA_ROWS, kvh = blockIdx.y, b = blockIdx.z, rep = H / KV;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const size_t qw = (size_t)H * D, kw = (size_t)KV * D;
    const int keyA = k0 + warp * 16 + (lane >> 2), keyB = keyA + 8;
    const float c = scale * LOG2E;
    // The (query head, query tile) pairs this key tile meets, in a fixed order: heads of the group, then tiles.
    const int tilesPerHead = (T - k0 + FA_ROWS - 1) / FA_ROWS, items = rep * tilesPerHead;
    auto loadQueries = [&](int item, int buffer) {
        const int h = kvh * rep + item / tilesPerHead, q0 = k0 + (item % tilesPerHead) * FA_ROWS;
        const size_t qOff = ((size_t)b * T + q0) * qw + (size_t)h * D, stat = ((size_t)b * H + h) * T;
        load_tile<D>(queryTiles + 2 * buffer * TILE(D), q + qOff, qw, min(FA_ROWS, T - q0));
        load_tile<D>(queryTiles + (2 * buffer + 1) * TILE(D), dO + qOff, qw, min(FA_ROWS, T - q0));
        cp_async_commit();
        if (threadIdx.x < FA_ROWS) {
            int t = q0 + threadIdx.x;
            stats[2 * buffer * FA_ROWS + threadIdx.x] = t < T ? lse[stat + t] * LOG2E : 0.f;
            stats[(2 * buffer + 1) * FA_ROWS + threadIdx.x] = t < T ? dot[stat + t] : 0.f;
        }
    };

    const size_t kvOff = ((size_t)b * T + k0) * kw + (size_t)kvh * D;
    load_tile<D>(sK, k + kvOff, kw, min(FA_ROWS, T - k0));
    load_tile<D>(sV, v + kvOff, kw, min(FA_ROWS, T - k0));
    loadQueries(0, 0);  // one group with K and V
    float dK[D / 8][4], dV[D / 8][4];
#pragma unroll
    for (int j = 0; j < D / 8; j++) {
        dK[j][0] = dK[j][1] = dK[j][2] = dK[j][3] = 0.f;
        dV[j][0] = dV[j][1] = dV[j][2] = dV[j][3] = 0.f;
    }
    for (int item = 0; item < items; item++) {
        if (item + 1 < items) {
            loadQueries(item + 1, (item + 1) & 1);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const int q0 = k0 + (item % tilesPerHead) * FA_ROWS;
        const bf16* sQ = queryTiles + 2 * (item & 1) * TILE(D);
        const bf16* sO = sQ + TILE(D);
        const float* sLse = stats + 2 * (item & 1) * FA_ROWS;
        const float* sDot = sLse + FA_ROWS;
        {
#pragma unroll
            for (int half = 0; half < 2; half++) {
                const int qb = half * 32;
                if (q0 + qb + 31 < k0 + warp * 16) continue;  // every query of this half precedes the warp's keys
                // S^T (keys x queries) = K Q^T and dP^T = V dO^T, 16 keys x 32 queries per warp.
                float s[4][4], dp[4][4];
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
                    dp[j][0] = dp[j][1] = dp[j][2] = dp[j][3] = 0.f;
                }
#pragma unroll
                for (int kk = 0; kk < D / 16; kk++) {
                    uint32_t ka[4], va[4];
                    load_a<D>(ka, sK, warp * 16, kk * 16, lane);
                    load_a<D>(va, sV, warp * 16, kk * 16, lane);
#pragma unroll
                    for (int jp = 0; jp < 2; jp++) {
                        uint32_t qb4[4], ob4[4];
                        load_b_nk<D>(qb4, sQ, qb + jp * 16, kk * 16, lane);
                        load_b_nk<D>(ob4, sO, qb + jp * 16, kk * 16, lane);
                        mma(s[2 * jp], ka, qb4[0], qb4[1]);
                        mma(s[2 * jp + 1], ka, qb4[2], qb4[3]);
                        mma(dp[2 * jp], va, ob4[0], ob4[1]);
                        mma(dp[2 * jp + 1], va, ob4[2], ob4[3]);
                    }
                }
#pragma unroll
                for (int j = 0; j < 4; j++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int ql = qb + 8 * j + 2 * (lane & 3) + (e & 1), query = q0 + ql, key = e < 2 ? keyA : keyB;
                        float p = query < T && key <= query ? fast_exp2(s[j][e] * c - sLse[ql]) : 0.f;
                        s[j][e] = p;
                        dp[j][e] = p * (dp[j][e] - sDot[ql]);  // dS^T / scale
                    }
                }
                // dV += P^T dO and dK += dS^T Q over these 32 queries (two k-steps of 16).
#pragma unroll
                for (int kk = 0; kk < 2; kk++) {
                    uint32_t pa[4], da[4];
                    acc_to_a(pa, s[2 * kk], s[2 * kk + 1]);
                    acc_to_a(da, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
                    for (int jp = 0; jp < D / 16; jp++) {
                        uint32_t ob4[4], qb4[4];
                        load_b_kn<D>(ob4, sO, qb + kk * 16, jp * 16, lane);
                        load_b_kn<D>(qb4, sQ, qb + kk * 16, jp * 16, lane);
                        mma(dV[2 * jp], pa, ob4[0], ob4[1]);
                        mma(dV[2 * jp + 1], pa, ob4[2], ob4[3]);
                        mma(dK[2 * jp], da, qb4[0], qb4[1]);
                        mma(dK[2 * jp + 1], da, qb4[2], qb4[3]);
                    }
                }
            }
        }
        __syncthreads();  // every warp is done with this buffer before the next iteration refills it
    }
    const size_t rowBase = (size_t)b * T, col0 = (size_t)kvh * D;
    store_rows<D>(reinterpret_cast<char*>(dk) + rowBase * kw * (dkBf ? 2 : 4), dkBf, kw, col0, keyA, T, lane, dK,
                  scale, scale);
    store_rows<D>(reinterpret_cast<char*>(dv) + rowBase * kw * (dvBf ? 2 : 4), dvBf, kw, col0, keyA, T, lane, dV,
                  1.f, 1.f);
}

// ---- entry points, one per head dimension ---------------------------------------------------------------------------

extern "C" {
#define FLASH_ATTENTION_INSTANCES(D)                                                                                   \
    __global__ void __launch_bounds__(FA_THREADS) flash_attention_forward_d##D(                                        \
            const bf16* q, const bf16* k, const bf16* v, void* out, int oBf, bf16* saved, float* lse, int T, int H,   \
            int KV, float scale) {                                                                                     \
        attention_forward<D>(q, k, v, out, oBf, saved, lse, T, H, KV, scale);                                          \
    }                                                                                                                  \
    __global__ void __launch_bounds__(FA_THREADS) flash_attention_dq_d##D(                                             \
            const bf16* q, const bf16* k, const bf16* v, const bf16* dO, const float* lse, const float* dot, void* dq, \
            int dqBf, int T, int H, int KV, float scale) {                                                             \
        attention_dq<D>(q, k, v, dO, lse, dot, dq, dqBf, T, H, KV, scale);                                             \
    }                                                                                                                  \
    __global__ void __launch_bounds__(FA_THREADS) flash_attention_dkdv_d##D(                                           \
            const bf16* q, const bf16* k, const bf16* v, const bf16* dO, const float* lse, const float* dot, void* dk, \
            int dkBf, void* dv, int dvBf, int T, int H, int KV, float scale) {                                         \
        attention_dkdv<D>(q, k, v, dO, lse, dot, dk, dkBf, dv, dvBf, T, H, KV, scale);                                 \
    }

FLASH_ATTENTION_INSTANCES(16)
FLASH_ATTENTION_INSTANCES(32)
FLASH_ATTENTION_INSTANCES(64)
FLASH_ATTENTION_INSTANCES(128)
}
