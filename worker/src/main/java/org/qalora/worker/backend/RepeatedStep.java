package org.qalora.worker.backend;

/**
 * A fixed sequence of backend operations run many times over the same tensors, such as one decode step
 * ({@link Backend#repeatable}). A GPU backend records it once and replays the recording, which spares the host
 * one launch per operation; the CPU simply runs it. What varies between runs must live in tensors and
 * {@link IntTensor}s the operations read, never in Java values captured by the step.
 */
public interface RepeatedStep extends AutoCloseable {
    /** Runs (or replays) the step; results are in the step's tensors, in stream order with later operations. */
    void run();

    /** Frees any recording; the step can no longer run. */
    @Override
    void close();
}
