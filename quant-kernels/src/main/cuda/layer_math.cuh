// Device code shared by training_kernels.cu and splitk_gemv.cu: element access by type flag, the block sum, the
// RMSNorm of one row and the rotary pair. The split-K decode GEMVs fold a decode step's RMSNorm and RoPE into their
// epilogues (docs/CUDA.md, "Fused decode launches"); they can only write exactly the bits of the separate kernels if
// both compile this one source, so it lives here and not in either .cu file.
#pragma once
#include <stdint.h>
#include <cuda_bf16.h>

__device__ __forceinline__ float ld(const void* p, int bf, size_t i) {
    if (bf) return __bfloat162float(((const __nv_bfloat16*)p)[i]);
    return ((const float*)p)[i];
}

// The same load through L2 only: for data another block of the running grid wrote (L1 is not coherent).
__device__ __forceinline__ float ld_cg(const void* p, int bf, size_t i) {
    if (bf) return __uint_as_float((uint32_t)__ldcg((const unsigned short*)p + i) << 16);
    return __ldcg((const float*)p + i);
}

__device__ __forceinline__ void st(void* p, int bf, size_t i, float v) {
    if (bf) ((__nv_bfloat16*)p)[i] = __float2bfloat16_rn(v);
    else ((float*)p)[i] = v;
}

// Sum of one double per thread over a block of 256 threads, in a fixed tree order. All threads get the result.
__device__ __forceinline__ double block_sum_256(double v, double* shared) {
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
        __syncthreads();
    }
    double r = shared[0];
    __syncthreads();
    return r;
}

// One row of RMSNorm by a block of 256: out = w * (x * rstd), rstd = 1 / sqrt(mean(x^2) + eps), the sum of squares in
// double (as the CPU). COHERENT reads x through L2 (x written by other blocks of the same grid).
// A thread's first RMS_KEPT values (all of a row up to 4096 wide) are loaded at once and kept in registers for the
// second pass, so the row is read once with 16 loads in flight (the fused decode launches run this in one block at
// their end, so its latency is the whole GPU's). Each thread still adds its
// squares in index order (adding the padding's 0.0 changes no bit), so the sum is the same as one load at a time.
#define RMS_KEPT 16
template <bool COHERENT>
__device__ __forceinline__ void rmsnorm_row(const void* x, int xBf, const float* __restrict__ w, float eps, void* out,
                                            int oBf, float* rstd, int H, double* red /* [256] */) {
    // The norm weights are loaded with the row, before the sum and before any store. Loaded in the store loop (as
    // until 2026-12-07) each w[i] had to wait for the store before it (out is not known not to alias w), one round
    // trip to memory per value, on the one block a fused decode launch ends with: 3.83-3.87 against 3.34-3.46 ms a
    // 7B decode step on an H100 (docs/PERFORMANCE.md, "Batch-1 decode on the GPU").
    float kept[RMS_KEPT], weight[RMS_KEPT];
#pragma unroll
    for (int r = 0; r < RMS_KEPT; r++) {
        const int i = threadIdx.x + r * 256;
        kept[r] = i < H ? (COHERENT ? ld_cg(x, xBf, i) : ld(x, xBf, i)) : 0.f;
        weight[r] = i < H ? w[i] : 0.f;
    }
    double ss = 0;
#pragma unroll
    for (int r = 0; r < RMS_KEPT; r++) ss += (double)kept[r] * kept[r];
#pragma unroll 8
    for (int i = threadIdx.x + RMS_KEPT * 256; i < H; i += 256) {
        double v = COHERENT ? ld_cg(x, xBf, i) : ld(x, xBf, i);
        ss += v * v;
    }
    ss = block_sum_256(ss, red);
    float rs = (float)(1.0 / sqrt(ss / H + (double)eps));
    if (threadIdx.x == 0) *rstd = rs;
#pragma unroll
    for (int r = 0; r < RMS_KEPT; r++) {
        const int i = threadIdx.x + r * 256;
        if (i < H) st(out, oBf, i, weight[r] * (kept[r] * rs));
    }
    // Rows wider than 256 * RMS_KEPT: eight values and weights loaded before their eight stores. A load after a store
    // to out (which may be x itself) cannot be moved before it, so loading inside the store loop would wait a round
    // trip per element; the kept part above was slower by 12% of a 7B decode step for the same reason.
    for (int i0 = threadIdx.x + RMS_KEPT * 256; i0 < H; i0 += 8 * 256) {
        float v[8], wv[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int i = i0 + u * 256;
            v[u] = i < H ? (COHERENT ? ld_cg(x, xBf, i) : ld(x, xBf, i)) : 0.f;
            wv[u] = i < H ? w[i] : 0.f;
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int i = i0 + u * 256;
            if (i < H) st(out, oBf, i, wv[u] * (v[u] * rs));
        }
    }
}

// The rotated pair (a cos - b sin, b cos + a sin), each product rounded before the sum as on the CPU (no FMA
// contraction), so every kernel that rotates gets the same bits.
__device__ __forceinline__ float rope_first(float a, float b, float c, float s) {
    return __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
}
__device__ __forceinline__ float rope_second(float a, float b, float c, float s) {
    return __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
}

// Programmatic dependent launch (DependentLaunch.java, -Dqalora.cuda.pdl=true, Hopper only). A kernel that precedes a
// split-K decode GEMV lets it launch as soon as all its own blocks run (pdl_allow_next); the GEMV waits for it (its
// completion and its writes) before reading its input or writing anything (pdl_wait_previous): only weight loads,
// which no kernel writes, come before the wait. Without the launch attribute, and in the compute_80 PTX, both are
// no-ops.
__device__ __forceinline__ void pdl_allow_next() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait_previous() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
