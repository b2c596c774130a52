package org.qalora.quant.cuda;

/** A failed CUDA driver or cuBLAS call; the message names the call and the status by name. */
public final class CudaException extends RuntimeException {
    private final int status;

    public CudaException(String message, int status) {
        super(message);
        this.status = status;
    }

    public CudaException(String message) {
        this(message, -1);
    }

    /** The CUresult or cublasStatus_t, or -1 when the failure was not a status code (e.g. a missing library). */
    public int status() {
        return status;
    }
}
