package org.qalora.worker.backend.cuda;

import org.qalora.quant.cuda.CudaDriver;
import org.qalora.worker.backend.BackendChecks;
import org.qalora.worker.backend.IntTensor;
import org.qalora.worker.backend.KvCacheShape;

/**
 * The generation operations of {@link CudaBackend}: attention against the KV cache and writes into it, with the
 * rows' (sequence, position) pairs either from the host (uploaded per call) or already in device memory
 * ({@link CudaInts}, which a replayed decode step reads where it runs).
 */
final class CudaDecodeOps {
    private final CudaBackend backend;
    private final CudaDriver cuda;
    private final TrainingKernels kernels;
    private final DeviceScratch hostRows;

    CudaDecodeOps(CudaBackend backend, CudaDriver cuda, TrainingKernels kernels, DeviceScratch hostRows) {
        this.backend = backend;
        this.cuda = cuda;
        this.kernels = kernels;
        this.hostRows = hostRows;
    }

    CudaInts ints(IntTensor t) {
        if (t instanceof CudaInts c && c.backend() == backend) {
            return c;
        }
        throw new IllegalArgumentException(t + " does not belong to " + backend.name());
    }

    void write(CudaInts t, int[] values) {
        if (values.length != t.size()) {
            throw new IllegalArgumentException("writing " + values.length + " ints into " + t.size());
        }
        cuda.copyToDevice(values, t.pointer());
    }

    /** Host rows: checked and uploaded; the kernel's shared memory covers the longest row only. */
    void cachedAttention(CudaTensor q, CudaTensor k, CudaTensor v, KvCacheShape shape, int[] sequences,
                         int[] positions, CudaTensor out) {
        BackendChecks.cacheRows(shape, sequences, positions);
        int n = positions.length;
        int[] info = new int[2 * n];
        System.arraycopy(sequences, 0, info, 0, n);
        System.arraycopy(positions, 0, info, n, n);
        int maxKeys = 0;
        for (int p : positions) {
            maxKeys = Math.max(maxKeys, p + 1);
        }
        long p = hostRows.get(4L * info.length);
        cuda.copyToDevice(info, p);
        cached(q, k, v, shape, p, n, maxKeys, out);
    }

    /** Device rows (checked by whoever wrote them): shared memory for the whole capacity, so any position fits. */
    void cachedAttention(CudaTensor q, CudaTensor k, CudaTensor v, KvCacheShape shape, CudaInts rows, CudaTensor out) {
        cached(q, k, v, shape, rows.pointer(), rows.size() / 2, shape.capacity(), out);
    }

    private void cached(CudaTensor q, CudaTensor k, CudaTensor v, KvCacheShape shape, long info, int n, int maxKeys,
                        CudaTensor out) {
        CudaBackend.requireSize(q.size(), (long) n * shape.queryWidth(), "cachedAttention q");
        CudaBackend.requireSize(out.size(), (long) n * shape.queryWidth(), "cachedAttention out");
        CudaBackend.requireSize(k.size(), (long) shape.rows() * shape.kvWidth(), "cachedAttention key cache");
        CudaBackend.requireSize(v.size(), (long) shape.rows() * shape.kvWidth(), "cachedAttention value cache");
        if (k.bf16 != v.bf16) {
            throw new IllegalArgumentException("cachedAttention: key and value caches must have one element type");
        }
        if (maxKeys > TrainingKernels.CACHED_ATTENTION_MAX_KEYS) {
            throw new IllegalArgumentException("cachedAttention: a row sees up to " + maxKeys + " cached positions;"
                    + " the GPU kernel holds at most " + TrainingKernels.CACHED_ATTENTION_MAX_KEYS
                    + " scores in shared memory");
        }
        kernels.cachedAttention(q.pointer(), q.flag(), k.pointer(), v.pointer(), k.flag(), info, n,
                shape.capacity(), shape.heads(), shape.kvHeads(), shape.headDim(),
                (float) (1.0 / Math.sqrt(shape.headDim())), out.pointer(), out.flag(), maxKeys);
    }

    /** {@link org.qalora.worker.backend.Backend#ropeAndWriteCache}: one launch for the four calls it stands for. */
    void ropeAndWriteCache(CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor cos, CudaTensor sin, int n, int heads,
                           int kvHeads, int headDim, CudaTensor kCache, CudaTensor vCache, KvCacheShape shape,
                           CudaInts rows) {
        CudaBackend.requireSize(q.size(), (long) n * heads * headDim, "ropeAndWriteCache q");
        CudaBackend.requireSize(k.size(), (long) n * kvHeads * headDim, "ropeAndWriteCache k");
        CudaBackend.requireSize(v.size(), k.size(), "ropeAndWriteCache v");
        CudaBackend.requireSize(cos.size(), (long) n * (headDim / 2), "ropeAndWriteCache cos (one table row per row)");
        CudaBackend.requireSize(sin.size(), cos.size(), "ropeAndWriteCache sin");
        CudaBackend.requireSize(rows.size(), 2L * n, "ropeAndWriteCache rows");
        CudaBackend.requireSize(kCache.size(), (long) shape.rows() * shape.kvWidth(), "ropeAndWriteCache key cache");
        CudaBackend.requireSize(vCache.size(), kCache.size(), "ropeAndWriteCache value cache");
        if (kCache.bf16 != vCache.bf16) {
            throw new IllegalArgumentException("ropeAndWriteCache: key and value caches must have one element type");
        }
        kernels.ropeCacheWrite(q.pointer(), q.flag(), k.pointer(), k.flag(), v.pointer(), v.flag(), cos.pointer(),
                sin.pointer(), kCache.pointer(), vCache.pointer(), kCache.flag(), rows.pointer(), n, shape.capacity(),
                heads, kvHeads, headDim);
    }

    void writeCacheRows(CudaTensor x, CudaTensor cache, KvCacheShape shape, CudaInts rows) {
        CudaBackend.requireSize(rows.size(), 2L * x.rows(), "writeCacheRows rows");
        CudaBackend.requireSize(cache.size(), (long) shape.rows() * x.cols(), "writeCacheRows cache");
        kernels.cacheWrite(x.pointer(), x.flag(), cache.pointer(), cache.flag(), rows.pointer(), x.rows(),
                shape.capacity(), x.cols());
    }
}
