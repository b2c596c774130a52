package org.qalora.worker.backend.cuda;

import java.lang.foreign.MemorySegment;
import org.qalora.quant.PackedCodes;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.cuda.CudaDriver;
import org.qalora.quant.cuda.DeviceBuffer;
import org.qalora.quant.cuda.QuantKernelModule;
import org.qalora.worker.backend.LinearWeight;

/** Frozen linear weights resident on the GPU. */
sealed interface CudaLinearWeight extends LinearWeight {

    /**
     * A group-quantized weight in the checkpoint's own GPTQ layout (codes {@code [I*bits/32, O]}, fp32 scales and
     * real-valued zeros {@code [I/g, O]}), uploaded once; each product dequantizes it into the backend's scratch.
     * Only its shape stays on the host: the device copy is the one kept, {@code CudaBackend.quantizedMatrix}
     * downloads it when the merge asks.
     */
    record Quantized(int out, int in, int bits, int groupSize, DeviceBuffer codes, DeviceBuffer scalesBuffer,
                     DeviceBuffer zerosBuffer) implements CudaLinearWeight, QuantKernelModule.DeviceWeight {
        /** {@code m}'s codes, scales and zeros copied to new device buffers. */
        static Quantized upload(CudaDriver cuda, QuantizedMatrix m) {
            DeviceBuffer q = DeviceBuffer.allocateCollecting(cuda, 4L * m.qweight().length),
                    s = DeviceBuffer.allocateCollecting(cuda, 4L * m.scales().length),
                    z = DeviceBuffer.allocateCollecting(cuda, 4L * m.zeros().length);
            cuda.copyToDevice(m.qweight(), q.pointer());
            cuda.copyToDevice(m.scales(), 0, m.scales().length, s.pointer());
            cuda.copyToDevice(m.zeros(), 0, m.zeros().length, z.pointer());
            return new Quantized(m.outFeatures(), m.inFeatures(), m.bits(), m.groupSize(), q, s, z);
        }

        @Override public int outFeatures() { return out; }
        @Override public int inFeatures() { return in; }
        @Override public boolean quantized() { return true; }
        @Override public long q() { return codes.pointer(); }
        @Override public long scales() { return scalesBuffer.pointer(); }
        @Override public long zeros() { return zerosBuffer.pointer(); }

        /**
         * The matrix as uploaded, copied back: the device holds its codes, scales and zeros in the GPTQ layout,
         * unchanged (the buffers are written by the upload only, never by a kernel), and the host holds none.
         */
        QuantizedMatrix download(CudaDriver cuda) {
            int[] q = new int[PackedCodes.wordsFor(in, bits) * out];
            float[] s = new float[in / groupSize * out];
            float[] z = new float[s.length];
            cuda.copyToHost(codes.pointer(), MemorySegment.ofArray(q)); // synchronous copies
            cuda.copyToHost(scalesBuffer.pointer(), s, 0, s.length);
            cuda.copyToHost(zerosBuffer.pointer(), z, 0, z.length);
            return new QuantizedMatrix(out, in, bits, groupSize, q, s, z);
        }
    }

    /**
     * A quantized weight with an adapter folded into its zero points ({@link AdapterFold}): the codes and scales of
     * {@code base}, the zeros at {@code foldedZeros} (the fold's scratch, valid until its next fold).
     */
    record Folded(Quantized base, long foldedZeros) implements CudaLinearWeight, QuantKernelModule.DeviceWeight {
        @Override public int outFeatures() { return base.outFeatures(); }
        @Override public int inFeatures() { return base.inFeatures(); }
        @Override public boolean quantized() { return true; }
        @Override public long q() { return base.q(); }
        @Override public long scales() { return base.scales(); }
        @Override public long zeros() { return foldedZeros; }
        @Override public int out() { return base.out(); }
        @Override public int in() { return base.in(); }
        @Override public int bits() { return base.bits(); }
        @Override public int groupSize() { return base.groupSize(); }
    }

    /** A dense fp32 weight {@code [out, in]} and, under mixed precision, its bf16 copy (made once). */
    record Dense(CudaTensor weight, DeviceBuffer bf16) implements CudaLinearWeight {
        /** {@code t} (fp32 {@code [out, in]}) as a weight, with its bf16 copy when the products run in bf16. */
        static Dense of(CudaTensor t, boolean bf16Copy, CudaDriver cuda, TrainingKernels kernels) {
            if (t.rank() != 2 || t.bf16) {
                throw new IllegalArgumentException("a dense weight must be an fp32 [out, in] tensor, got " + t);
            }
            DeviceBuffer bf = null;
            if (bf16Copy) {
                bf = DeviceBuffer.allocateCollecting(cuda, 2L * t.size());
                kernels.convert(t.pointer(), 0, bf.pointer(), 1, t.size());
            }
            return new Dense(t, bf);
        }

        @Override public int outFeatures() { return weight.dim(0); }
        @Override public int inFeatures() { return weight.dim(1); }
        @Override public boolean quantized() { return false; }
    }
}
