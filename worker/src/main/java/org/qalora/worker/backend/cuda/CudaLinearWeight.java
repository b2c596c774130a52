package org.qalora.worker.backend.cuda;

import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.cuda.DeviceBuffer;
import org.qalora.quant.cuda.QuantKernelModule;
import org.qalora.worker.backend.LinearWeight;

/** Frozen linear weights resident on the GPU. */
sealed interface CudaLinearWeight extends LinearWeight {

    /**
     * A group-quantized weight in the checkpoint's own GPTQ layout (codes {@code [I*bits/32, O]}, fp32 scales and
     * real-valued zeros {@code [I/g, O]}), uploaded once; each product dequantizes it into the backend's scratch.
     */
    record Quantized(QuantizedMatrix source, DeviceBuffer codes, DeviceBuffer scalesBuffer, DeviceBuffer zerosBuffer)
            implements CudaLinearWeight, QuantKernelModule.DeviceWeight {
        @Override public int outFeatures() { return source.outFeatures(); }
        @Override public int inFeatures() { return source.inFeatures(); }
        @Override public boolean quantized() { return true; }
        @Override public long q() { return codes.pointer(); }
        @Override public long scales() { return scalesBuffer.pointer(); }
        @Override public long zeros() { return zerosBuffer.pointer(); }
        @Override public int out() { return source.outFeatures(); }
        @Override public int in() { return source.inFeatures(); }
        @Override public int bits() { return source.bits(); }
        @Override public int groupSize() { return source.groupSize(); }
    }

    /** A dense fp32 weight {@code [out, in]} and, under mixed precision, its bf16 copy (made once). */
    record Dense(CudaTensor weight, DeviceBuffer bf16) implements CudaLinearWeight {
        @Override public int outFeatures() { return weight.dim(0); }
        @Override public int inFeatures() { return weight.dim(1); }
        @Override public boolean quantized() { return false; }
    }
}
