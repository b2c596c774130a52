// The layer kernels of the worker's CUDA training backend (org.qalora.worker.backend.cuda.CudaBackend): everything a
// LLaMA forward and backward needs besides the matrix products, which go to cuBLAS.
//
// Element types: a tensor is fp32 or bf16 (mixed precision keeps activations in bf16). Every pointer that may be
// either comes with an int flag (1 = bf16); ld/st convert to and from fp32, and all arithmetic is fp32 (statistics
// and optimizer math in double). The flag is uniform across a launch, so the branch costs nothing measurable in
// these memory-bound kernels, and one kernel serves every combination of types.
//
// Determinism: no atomics. Every reduction has a fixed shape (a thread's strided partial, then a fixed tree in
// shared memory or a fixed warp-shuffle pattern), so the same inputs give the same bits on the same GPU model.
// Each kernel mirrors one CpuBackend method; the Java contract tests compare the two.
#include <stdint.h>
#include <cuda_bf16.h>
#include "layer_math.cuh"

extern "C" {

// 8 bf16 in one 16-byte word, unpacked exactly (bf16 -> fp32 is a shift), and two floats packed round-to-nearest.
__device__ __forceinline__ void unpack8(uint4 v, float* f) {
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int q = 0; q < 4; q++) {
        f[2 * q] = __uint_as_float(w[q] << 16);
        f[2 * q + 1] = __uint_as_float(w[q] & 0xffff0000u);
    }
}

__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
           ((uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}

#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n); i += (size_t)gridDim.x * blockDim.x)

__device__ float block_max_256(float v, float* shared) {
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if (threadIdx.x < s) shared[threadIdx.x] = fmaxf(shared[threadIdx.x], shared[threadIdx.x + s]);
        __syncthreads();
    }
    float r = shared[0];
    __syncthreads();
    return r;
}

// ---- elementwise --------------------------------------------------------------------------------------------------

// dst = src, converting the element type.
__global__ void convert(const void* src, int srcBf, void* dst, int dstBf, long long n) {
    GRID_STRIDE(i, n) st(dst, dstBf, i, ld(src, srcBf, i));
}

// out = a + b
__global__ void add(const void* a, int aBf, const void* b, int bBf, void* out, int oBf, long long n) {
    GRID_STRIDE(i, n) st(out, oBf, i, ld(a, aBf, i) + ld(b, bBf, i));
}

// x *= mask (fp32 mask)
__global__ void multiply(void* x, int xBf, const float* __restrict__ mask, long long n) {
    GRID_STRIDE(i, n) st(x, xBf, i, ld(x, xBf, i) * mask[i]);
}

// x *= s
__global__ void scale(void* x, int xBf, float s, long long n) {
    GRID_STRIDE(i, n) st(x, xBf, i, ld(x, xBf, i) * s);
}

// out = silu(gate) * up, as CpuBackend.swiglu: z / (1 + exp(-z)) * u
__global__ void swiglu(const void* gate, int gBf, const void* up, int uBf, void* out, int oBf, long long n) {
    GRID_STRIDE(i, n) {
        float z = ld(gate, gBf, i);
        st(out, oBf, i, z / (1.f + expf(-z)) * ld(up, uBf, i));
    }
}

// dUp = dy silu(z); dGate = dy u sig (1 + z (1 - sig)); written, not added.
__global__ void swiglu_backward(const void* dOut, int dBf, const void* gate, int gBf, const void* up, int uBf,
                                void* dGate, int dgBf, void* dUp, int duBf, long long n) {
    GRID_STRIDE(i, n) {
        float z = ld(gate, gBf, i), dy = ld(dOut, dBf, i);
        float sig = 1.f / (1.f + expf(-z));
        st(dUp, duBf, i, dy * (z * sig));
        st(dGate, dgBf, i, dy * ld(up, uBf, i) * sig * (1.f + z * (1.f - sig)));
    }
}

// The same three operations eight elements per thread with 16-byte accesses (one uint4 of bf16, or two float4 of
// fp32), for n a multiple of 8 and whole tensors (cuMemAlloc aligns to 256 bytes). Each element's arithmetic is the
// scalar kernel's, so the results are bit for bit the same; the scalar kernels moved 2 or 4 bytes per access and
// ran these memory-bound passes well below the bandwidth (profile in docs/PERFORMANCE.md).
__device__ __forceinline__ void load8(const void* p, int bf, size_t i8, float* f) {
    if (bf) {
        unpack8(((const uint4*)p)[i8], f);
    } else {
        float4 a = ((const float4*)p)[2 * i8], b = ((const float4*)p)[2 * i8 + 1];
        f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
    }
}

__device__ __forceinline__ void store8(void* p, int bf, size_t i8, const float* f) {
    if (bf) {
        ((uint4*)p)[i8] = make_uint4(pack2(f[0], f[1]), pack2(f[2], f[3]), pack2(f[4], f[5]), pack2(f[6], f[7]));
    } else {
        ((float4*)p)[2 * i8] = make_float4(f[0], f[1], f[2], f[3]);
        ((float4*)p)[2 * i8 + 1] = make_float4(f[4], f[5], f[6], f[7]);
    }
}

__global__ void add_vec(const void* a, int aBf, const void* b, int bBf, void* out, int oBf, long long n8) {
    GRID_STRIDE(i, n8) {
        float x[8], y[8];
        load8(a, aBf, i, x);
        load8(b, bBf, i, y);
#pragma unroll
        for (int e = 0; e < 8; e++) x[e] = x[e] + y[e];
        store8(out, oBf, i, x);
    }
}

__global__ void swiglu_vec(const void* gate, int gBf, const void* up, int uBf, void* out, int oBf, long long n8) {
    GRID_STRIDE(i, n8) {
        float z[8], u[8];
        load8(gate, gBf, i, z);
        load8(up, uBf, i, u);
#pragma unroll
        for (int e = 0; e < 8; e++) z[e] = z[e] / (1.f + expf(-z[e])) * u[e];
        store8(out, oBf, i, z);
    }
}

__global__ void swiglu_backward_vec(const void* dOut, int dBf, const void* gate, int gBf, const void* up, int uBf,
                                    void* dGate, int dgBf, void* dUp, int duBf, long long n8) {
    GRID_STRIDE(i, n8) {
        float z[8], dy[8], u[8], dg[8], du[8];
        load8(gate, gBf, i, z);
        load8(dOut, dBf, i, dy);
        load8(up, uBf, i, u);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            float sig = 1.f / (1.f + expf(-z[e]));
            du[e] = dy[e] * (z[e] * sig);
            dg[e] = dy[e] * u[e] * sig * (1.f + z[e] * (1.f - sig));
        }
        store8(dUp, duBf, i, du);
        store8(dGate, dgBf, i, dg);
    }
}

// out[n, :] = table[ids[n], :] (ids checked on the host). Grid (N), block 256.
__global__ void embedding(const int* __restrict__ ids, const float* __restrict__ table, void* out, int oBf, int H) {
    size_t n = blockIdx.x, row = (size_t)ids[n] * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x) st(out, oBf, n * H + i, table[row + i]);
}

// ---- RMSNorm (one block of 256 per row) --------------------------------------------------------------------------

// out = w * (x * rstd), rstd = 1 / sqrt(mean(x^2) + eps) with the sum of squares in double (as the CPU).
__global__ void __launch_bounds__(256) rmsnorm(const void* x, int xBf, const float* __restrict__ w, float eps,
                                               void* out, int oBf, float* __restrict__ rstd, int H) {
    __shared__ double red[256];
    const size_t off = (size_t)blockIdx.x * H;
    const size_t elem = xBf ? 2 : 4, oElem = oBf ? 2 : 4;
    rmsnorm_row<false>((const char*)x + off * elem, xBf, w, eps, (char*)out + off * oElem, oBf, rstd + blockIdx.x, H,
                       red);
}

// dx += rstd w dy - (sum_i w_i dy_i x_i) rstd^3 / H x
__global__ void __launch_bounds__(256) rmsnorm_backward(const void* dOut, int dBf, const void* x, int xBf,
                                                        const float* __restrict__ w, const float* __restrict__ rstd,
                                                        void* dx, int dxBf, int H) {
    __shared__ double red[256];
    size_t off = (size_t)blockIdx.x * H;
    double dot = 0;
    for (int i = threadIdx.x; i < H; i += 256) {
        dot += (double)w[i] * ld(dOut, dBf, off + i) * ld(x, xBf, off + i);
    }
    dot = block_sum_256(dot, red);
    float rs = rstd[blockIdx.x];
    float coef = (float)(dot * rs * rs * rs / H);
    for (int i = threadIdx.x; i < H; i += 256) {
        float g = ld(dx, dxBf, off + i) + (rs * w[i] * ld(dOut, dBf, off + i) - coef * ld(x, xBf, off + i));
        st(dx, dxBf, off + i, g);
    }
}

// ---- RoPE ------------------------------------------------------------------------------------------------------

// Rotates each (i, i + d/2) pair of every head by sign * angle(pos, i), pos = row % seqLen; in place.
__global__ void rope(void* x, int xBf, const float* __restrict__ cosT, const float* __restrict__ sinT, int seqLen,
                     int heads, int headDim, float sign, long long rows) {
    // 32-bit index arithmetic: the launcher checks rows * heads * headDim / 2 < 2^31 (64-bit division per element
    // cost more than the memory traffic).
    unsigned half = headDim / 2, perRow = heads * half;
    unsigned total = (unsigned)(rows * perRow);
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
        unsigned n = idx / perRow, rem = idx - n * perRow, h = rem / half, i = rem - h * half;
        unsigned pos = n % (unsigned)seqLen;
        float cv = cosT[pos * half + i], sv = sign * sinT[pos * half + i];
        size_t off = (size_t)n * heads * headDim + (size_t)h * headDim;
        float a = ld(x, xBf, off + i), b = ld(x, xBf, off + i + half);
        st(x, xBf, off + i, rope_first(a, b, cv, sv));
        st(x, xBf, off + i + half, rope_second(a, b, cv, sv));
    }
}

// A decode step's RoPE and cache write in one launch: block (n, j) works on row n (table row n, as rope with
// seqLen = N) and head j of q (j < H: rotated in place), of k (H <= j < H + KV: rotated in place, then copied to the
// cache as stored, so in k's own type first) or of v (copied to the cache); the cache row is info[n] * capacity +
// info[N + n], as cache_write. One block per head keeps every SM's share small: a block per row left one SM doing
// all of a 7B layer's 8192 rotations and copies.
__global__ void rope_cache_write(void* q, int qBf, void* k, int kBf, const void* v, int vBf,
                                 const float* __restrict__ cosT, const float* __restrict__ sinT, void* kCache,
                                 void* vCache, int cacheBf, const int* __restrict__ info, int N, int capacity, int H,
                                 int KV, int d) {
    const int n = blockIdx.x, j = blockIdx.y, half = d / 2;
    const float* cr = cosT + (size_t)n * half;
    const float* sr = sinT + (size_t)n * half;
    const size_t width = (size_t)KV * d, from = (size_t)n * width, to = ((size_t)info[n] * capacity + info[N + n]) * width;
    if (j < H) {
        const size_t off = (size_t)n * H * d + (size_t)j * d;
        for (int i = threadIdx.x; i < half; i += blockDim.x) {
            float a = ld(q, qBf, off + i), b = ld(q, qBf, off + i + half);
            st(q, qBf, off + i, rope_first(a, b, cr[i], sr[i]));
            st(q, qBf, off + i + half, rope_second(a, b, cr[i], sr[i]));
        }
    } else if (j < H + KV) {
        const size_t off = (size_t)(j - H) * d;
        for (int i = threadIdx.x; i < half; i += blockDim.x) {
            float a = ld(k, kBf, from + off + i), b = ld(k, kBf, from + off + i + half);
            st(k, kBf, from + off + i, rope_first(a, b, cr[i], sr[i]));
            st(k, kBf, from + off + i + half, rope_second(a, b, cr[i], sr[i]));
            st(kCache, cacheBf, to + off + i, ld(k, kBf, from + off + i));
            st(kCache, cacheBf, to + off + i + half, ld(k, kBf, from + off + i + half));
        }
    } else {
        const size_t off = (size_t)(j - H - KV) * d;
        for (int c = threadIdx.x; c < d; c += blockDim.x) st(vCache, cacheBf, to + off + c, ld(v, vBf, from + off + c));
    }
}

// ---- QA-LoRA pooling and dropout ---------------------------------------------------------------------------------

// out[n, k] = factor * sum_{j<g} x[n, k g + j] (fp32 out; summed in order, as the CPU)
__global__ void group_pool(const void* x, int xBf, int groupSize, float factor, float* __restrict__ out,
                           long long rows, int groups) {
    GRID_STRIDE(idx, (size_t)rows * groups) {
        size_t base = idx * groupSize;  // = n * in + k * g
        float sum = 0.f;
        for (int j = 0; j < groupSize; j++) sum += ld(x, xBf, base + j);
        out[idx] = sum * factor;
    }
}

// dx[n, i] += factor * dOut[n, i / g]
__global__ void group_pool_backward(const float* __restrict__ dOut, int groupSize, float factor, void* dx, int dxBf,
                                    long long total) {
    GRID_STRIDE(i, total) st(dx, dxBf, i, ld(dx, dxBf, i) + dOut[i / groupSize] * factor);
}

// The same two operations with 16-byte accesses (8 bf16 or 4 floats at a time), for group sizes that are a multiple
// of 8: one thread owns one group, so a warp reads and writes 32 consecutive groups, contiguous in memory. The
// scalar versions above moved 2 bytes per access and ran at a third of the bandwidth (profile in PERFORMANCE.md).
// The sum still runs j = 0..g-1 in order, so the result is the scalar kernel's, bit for bit.
__global__ void group_pool_vec(const void* x, int xBf, int groupSize, float factor, float* __restrict__ out,
                               long long rows, int groups) {
    GRID_STRIDE(idx, (size_t)rows * groups) {
        size_t base = idx * groupSize;
        float sum = 0.f;
        if (xBf) {
            const uint4* p = (const uint4*)((const __nv_bfloat16*)x + base);
            for (int c = 0; c < groupSize / 8; c++) {
                float f[8];
                unpack8(p[c], f);
#pragma unroll
                for (int e = 0; e < 8; e++) sum += f[e];
            }
        } else {
            const float4* p = (const float4*)((const float*)x + base);
            for (int c = 0; c < groupSize / 4; c++) {
                float4 v = p[c];
                sum += v.x; sum += v.y; sum += v.z; sum += v.w;
            }
        }
        out[idx] = sum * factor;
    }
}

__global__ void group_pool_backward_vec(const float* __restrict__ dOut, int groupSize, float factor, void* dx,
                                        int dxBf, long long groupsTotal) {
    GRID_STRIDE(idx, groupsTotal) {
        float v = dOut[idx] * factor;
        size_t base = idx * groupSize;
        if (dxBf) {
            uint4* p = (uint4*)((__nv_bfloat16*)dx + base);
            for (int c = 0; c < groupSize / 8; c++) {
                float f[8];
                unpack8(p[c], f);
                p[c] = make_uint4(pack2(f[0] + v, f[1] + v), pack2(f[2] + v, f[3] + v), pack2(f[4] + v, f[5] + v),
                                  pack2(f[6] + v, f[7] + v));
            }
        } else {
            float4* p = (float4*)((float*)dx + base);
            for (int c = 0; c < groupSize / 4; c++) {
                float4 a = p[c];
                p[c] = make_float4(a.x + v, a.y + v, a.z + v, a.w + v);
            }
        }
    }
}

// QA-LoRA's merge identity during training: the adapter's output is constant inside a quantization group, so
// W + factor * expand_g(B A) has zero points Z' = Z - factor (B A)^T / S. zeros, scales, out [G, O] (the
// checkpoint's layout); ba [O, G] = B A. One thread per (g, o); o runs fastest, so zeros/scales/out are coalesced.
__global__ void fold_zeros(const float* __restrict__ zeros, const float* __restrict__ scales,
                           const float* __restrict__ ba, float factor, float* __restrict__ out, int G, int O) {
    GRID_STRIDE(idx, (size_t)G * O) {
        int g = (int)(idx / O), o = (int)(idx % O);
        out[idx] = zeros[idx] - factor * ba[(size_t)o * G + g] / scales[idx];
    }
}

// java.util.SplittableRandom(seed).nextDouble() drawn n times is counter-based: draw i (0-based) is
// mix64(seed + (i + 1) * GOLDEN_GAMMA) >>> 11, times 2^-53. So the GPU reproduces the CPU's masks exactly.
__device__ __forceinline__ double splitmix_double(unsigned long long seed, unsigned long long i) {
    unsigned long long z = seed + (i + 1ull) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z = z ^ (z >> 31);
    return (double)(z >> 11) * 0x1.0p-53;
}

// mask[i] = draw(i) < p ? 0 : keep; x *= mask
__global__ void dropout(void* x, int xBf, float* __restrict__ mask, float p, float keep, long long seed,
                        long long n) {
    GRID_STRIDE(i, n) {
        float m = splitmix_double((unsigned long long)seed, i) < (double)p ? 0.f : keep;
        mask[i] = m;
        st(x, xBf, i, ld(x, xBf, i) * m);
    }
}

// ---- loss ----------------------------------------------------------------------------------------------------------

// One block of 256 per row of logits [rows, V]: rowLoss[r] = logsumexp(l) - l[target] (0 for target -100), and with
// hasGrad, dLogits = gradScale (softmax - onehot) (0 on ignored rows). Sums in double, as the CPU. fp32 logits
// (the exact mode) take double exponentials, as the CPU; bf16 logits (mixed precision) take expf: their inputs
// carry 8 significant bits and the gradient is stored in bf16, so a float exponential (2 ulp) changes nothing that
// is kept, and the double ones cost more than reading the logits (1.7 ms of a 74 ms step at 8192 x 32000).
__global__ void __launch_bounds__(256) cross_entropy(const void* logits, int lBf, const int* __restrict__ targets,
                                                     float gradScale, void* dLogits, int dBf, int hasGrad,
                                                     double* __restrict__ rowLoss, int V) {
    __shared__ double red[256];
    __shared__ float redf[256];
    size_t off = (size_t)blockIdx.x * V;
    int target = targets[blockIdx.x];
    if (target == -100) {
        if (hasGrad) for (int i = threadIdx.x; i < V; i += 256) st(dLogits, dBf, off + i, 0.f);
        if (threadIdx.x == 0) rowLoss[blockIdx.x] = 0.0;
        return;
    }
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += 256) mx = fmaxf(mx, ld(logits, lBf, off + i));
    mx = block_max_256(mx, redf);
    double sum = 0;
    for (int i = threadIdx.x; i < V; i += 256) {
        float l = ld(logits, lBf, off + i);
        sum += lBf ? (double)expf(l - mx) : exp((double)l - mx);
    }
    sum = block_sum_256(sum, red);
    if (threadIdx.x == 0) rowLoss[blockIdx.x] = (double)mx + log(sum) - (double)ld(logits, lBf, off + target);
    if (hasGrad) {
        float norm = (float)(gradScale / sum);
        for (int i = threadIdx.x; i < V; i += 256) {
            float l = ld(logits, lBf, off + i);
            float g = (lBf ? expf(l - mx) : (float)exp((double)l - mx)) * norm;
            if (i == target) g -= gradScale;
            st(dLogits, dBf, off + i, g);
        }
    }
}

// ---- multi-tensor reductions and AdamW -------------------------------------------------------------------------

// Tensors described by a device table of 3 longs each: {pointer, elements, isBf16}. Grid (blocksPerTensor, tensors),
// block 256: partial[t * blocksPerTensor + b] = sum of squares of block b's strided share of tensor t, in double.
__global__ void __launch_bounds__(256) sumsq_partial(const long long* __restrict__ table, double* __restrict__ partial) {
    __shared__ double red[256];
    int t = blockIdx.y;
    const void* p = (const void*)table[3 * t];
    long long n = table[3 * t + 1];
    int bf = (int)table[3 * t + 2];
    double acc = 0;
    for (long long i = (long long)blockIdx.x * 256 + threadIdx.x; i < n; i += (long long)gridDim.x * 256) {
        double v = ld(p, bf, (size_t)i);
        acc += v * v;
    }
    acc = block_sum_256(acc, red);
    if (threadIdx.x == 0) partial[(size_t)t * gridDim.x + blockIdx.x] = acc;
}

// out[0] = sum over tensors (in table order) of the sum of their partials (in block order). One thread: the
// partial count is small (tensors x blocksPerTensor), and one thread's order is the simplest fixed order.
__global__ void sumsq_final(const double* __restrict__ partial, int tensors, int blocksPerTensor,
                            double* __restrict__ out) {
    if (threadIdx.x != 0 || blockIdx.x != 0) return;
    double total = 0;
    for (int t = 0; t < tensors; t++) {
        double s = 0;
        for (int b = 0; b < blocksPerTensor; b++) s += partial[(size_t)t * blocksPerTensor + b];
        total += s;
    }
    out[0] = total;
}

// One PyTorch AdamW step on every fp32 tensor of a table of 5 longs each: {param, grad, m, v, elements}.
// Grid (blocksPerTensor, tensors). The arithmetic is CpuBackend.adamw's, in double with explicit round-to-nearest
// operations (no contraction into FMAs), so GPU and CPU give the same bits.
__global__ void adamw(const long long* __restrict__ table, float gradScale, double beta1, double oneMinusBeta1,
                      double beta2, double oneMinusBeta2, double stepSize, double decay, double bc2Sqrt, double eps) {
    int t = blockIdx.y;
    float* p = (float*)table[5 * t];
    const float* g = (const float*)table[5 * t + 1];
    float* m = (float*)table[5 * t + 2];
    float* v = (float*)table[5 * t + 3];
    long long n = table[5 * t + 4];
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        double gi = __dmul_rn((double)g[i], (double)gradScale);
        double mi = __dadd_rn(__dmul_rn(beta1, (double)m[i]), __dmul_rn(oneMinusBeta1, gi));
        double vi = __dadd_rn(__dmul_rn(beta2, (double)v[i]), __dmul_rn(__dmul_rn(oneMinusBeta2, gi), gi));
        m[i] = (float)mi;
        v[i] = (float)vi;
        double denom = __dadd_rn(__ddiv_rn(__dsqrt_rn(vi), bc2Sqrt), eps);
        p[i] = (float)__dsub_rn(__dmul_rn((double)p[i], decay), __ddiv_rn(__dmul_rn(stepSize, mi), denom));
    }
}

// ---- attention softmax (the products around it are cuBLAS batched GEMMs) ---------------------------------------

// Rows of one chunk of score matrices S [items, T, T] (fp32, S = Q K^T unscaled): item i is query head
// h = (kv0 + i) * rep + j of sequence b. One warp per row (t = row % T), causal: columns j <= t.
// Forward: lse[(b H + h) T + t] = log sum_j exp(scale S_tj); P_tj = exp(scale S_tj - lse) (0 above the diagonal).
// The backward recomputes P with the same expression from the same S and lse, so it sees the forward's P exactly.
__device__ __forceinline__ size_t lse_index(int b, int H, int kv0, int rep, int j, int item, int T, int t) {
    int h = (kv0 + item) * rep + j;
    return ((size_t)b * H + h) * T + t;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Block (128): 4 rows per block. Grid ceil(items T / 4).
__global__ void softmax_forward(const float* __restrict__ S, void* P, int pBf, float* __restrict__ lse, int T,
                                int items, float scale, int b, int H, int kv0, int rep, int j) {
    int lane = threadIdx.x & 31;
    size_t row = (size_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    if (row >= (size_t)items * T) return;
    int t = (int)(row % T), item = (int)(row / T);
    const float* s = S + row * T;
    float mx = -INFINITY;
    for (int c = lane; c <= t; c += 32) mx = fmaxf(mx, s[c] * scale);
    mx = warp_max(mx);
    float sum = 0.f;
    for (int c = lane; c <= t; c += 32) sum += expf(s[c] * scale - mx);
    sum = warp_sum(sum);
    float l = mx + logf(sum);
    if (lane == 0) lse[lse_index(b, H, kv0, rep, j, item, T, t)] = l;
    for (int c = lane; c < T; c += 32) st(P, pBf, row * T + c, c <= t ? expf(s[c] * scale - l) : 0.f);
}

// Backward of one chunk: from S (recomputed), lse and dP = dO V^T, writes P (for dV = P^T dO) and
// dS = scale * P (dP - sum_c P_c dP_c) (for dQ = dS K and dK = dS^T Q).
__global__ void softmax_backward(const float* __restrict__ S, const float* __restrict__ dP,
                                 const float* __restrict__ lse, void* P, int pBf, void* dS, int sBf, int T, int items,
                                 float scale, int b, int H, int kv0, int rep, int j) {
    int lane = threadIdx.x & 31;
    size_t row = (size_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    if (row >= (size_t)items * T) return;
    int t = (int)(row % T), item = (int)(row / T);
    const float* s = S + row * T;
    const float* dp = dP + row * T;
    float l = lse[lse_index(b, H, kv0, rep, j, item, T, t)];
    float dot = 0.f;
    for (int c = lane; c <= t; c += 32) dot += expf(s[c] * scale - l) * dp[c];
    dot = warp_sum(dot);
    for (int c = lane; c < T; c += 32) {
        float p = c <= t ? expf(s[c] * scale - l) : 0.f;
        st(P, pBf, row * T + c, p);
        st(dS, sBf, row * T + c, c <= t ? p * (dp[c] - dot) * scale : 0.f);
    }
}

// ---- generation ----------------------------------------------------------------------------------------------------

// Attention of N new query rows against a KV cache (generation; mirrors CpuBackend.cachedAttention): one block of 256
// threads per (row n, query head h). Row n is position pos[n] of sequence seq[n] and sees the cache rows
// seq[n] * capacity + 0..pos[n]. The scores of one row live in dynamic shared memory (4 bytes per key; the launcher
// refuses caches longer than fit), the max and the sum reduce in the fixed block order as everywhere here, and each
// output column is a fixed-order sum over the keys (contiguous ranges, then the ranges in order), so results do not
// depend on timing.
// info = [N] sequence indices, then [N] positions.
// Row n of src [N, W] goes to row info[n] * capacity + info[N + n] of the cache [S * capacity, W] (info = the rows'
// sequences, then their positions, in device memory, so that a CUDA graph replays the write at each step's positions).
// One block per row.
__global__ void cache_write(const void* src, int srcBf, void* cache, int cacheBf, const int* __restrict__ info, int N,
                            int capacity, int W) {
    int n = blockIdx.x;
    size_t from = (size_t)n * W, to = ((size_t)info[n] * capacity + info[N + n]) * W;
    for (int c = threadIdx.x; c < W; c += blockDim.x) st(cache, cacheBf, to + c, ld(src, srcBf, from + c));
}

__global__ void __launch_bounds__(256) cached_attention(const void* q, int qBf, const void* k, const void* v,
                                                        int kvBf, const int* __restrict__ info, int N, int capacity,
                                                        int H, int KV, int d, float scale, void* out, int oBf) {
    pdl_allow_next();  // the o projection after it may start loading its weights
    extern __shared__ float scores[];
    __shared__ float fred[256];
    __shared__ double dred[256];
    int n = blockIdx.x / H, h = blockIdx.x % H, kvh = h / (H / KV);
    int keys = info[N + n] + 1;
    size_t kw = (size_t)KV * d;
    size_t qo = (size_t)n * H * d + (size_t)h * d;
    size_t base = (size_t)info[n] * capacity * kw + (size_t)kvh * d;
    // Scores: one warp per key, its lanes reading the key's row together (coalesced) and meeting in a butterfly;
    // a thread per key reading a whole row alone made this the slowest kernel of a decode step.
    float mx = -INFINITY;
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    // Unrolled so that a warp has several keys' loads in flight (each key's sum keeps its order).
#pragma unroll 4
    for (int j = threadIdx.x >> 5; j < keys; j += warps) {
        size_t ko = base + (size_t)j * kw;
        float dot = 0.f;
#pragma unroll 4
        for (int c = lane; c < d; c += 32) dot += ld(q, qBf, qo + c) * ld(k, kvBf, ko + c);
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        if (lane == 0) scores[j] = dot * scale;
        mx = fmaxf(mx, dot * scale);
    }
    mx = block_max_256(mx, fred);  // its barriers also publish the scores
    double sum = 0;
    for (int j = threadIdx.x; j < keys; j += blockDim.x) {
        float e = expf(scores[j] - mx);
        scores[j] = e;
        sum += e;
    }
    sum = block_sum_256(sum, dred);  // its barriers also publish every thread's scores[]
    float inv = (float)(1.0 / sum);
    if (d <= (int)blockDim.x) {
        // blockDim / d groups of threads each sum a contiguous range of keys per column; the groups' partial sums
        // are then added in group order (fred is free again: block_max_256 is done with it).
        const int groups = blockDim.x / d, g = threadIdx.x / d, c = threadIdx.x % d;
        if (g < groups) {
            const int per = (keys + groups - 1) / groups, j0 = g * per, j1 = min(keys, j0 + per);
            float acc = 0.f;
            // 8 keys' loads in flight at a time (the sum's order is unchanged): a decode step's attention is a few
            // dozen blocks, so each serial round trip to L2 here is time the whole GPU waits.
#pragma unroll 8
            for (int j = j0; j < j1; j++) acc += scores[j] * ld(v, kvBf, base + (size_t)j * kw + c);
            fred[threadIdx.x] = acc;
        }
        __syncthreads();
        if (g == 0) {
            float acc = 0.f;
            for (int p = 0; p < groups; p++) acc += fred[p * d + c];
            st(out, oBf, qo + c, acc * inv);
        }
    } else {
        for (int c = threadIdx.x; c < d; c += blockDim.x) {
            float acc = 0.f;
            for (int j = 0; j < keys; j++) acc += scores[j] * ld(v, kvBf, base + (size_t)j * kw + c);
            st(out, oBf, qo + c, acc * inv);
        }
    }
}

}  // extern "C"
