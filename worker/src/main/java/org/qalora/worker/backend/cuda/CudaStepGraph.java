package org.qalora.worker.backend.cuda;

import org.qalora.quant.cuda.CudaException;
import org.qalora.quant.cuda.CudaGraphs;
import org.qalora.worker.backend.RepeatedStep;

/**
 * {@link RepeatedStep} of the CUDA backend: the step runs eagerly until it has run once with every scratch buffer
 * already large enough, is then captured as a CUDA graph ({@link CudaGraphs}) and replayed from there on. A graph
 * holds raw addresses, so when any {@link DeviceScratch} was reallocated since the capture (another operation grew
 * it), the graph is dropped and the step warms up and is captured again. A step a graph cannot hold (a call that
 * capture refuses) runs op by op from then on, with a warning: slower, the same results.
 */
final class CudaStepGraph implements RepeatedStep {
    private final CudaGraphs graphs;
    private final Runnable step;
    private boolean enabled;
    private String fallback;
    private CudaGraphs.Graph graph;
    private long graphGeneration = -1;
    private long warmGeneration = -1;
    private boolean closed;

    CudaStepGraph(CudaGraphs graphs, Runnable step, boolean enabled) {
        this.graphs = graphs;
        this.step = step;
        this.enabled = enabled;
    }

    @Override
    public void run() {
        if (closed) {
            throw new IllegalStateException("this repeated step was closed");
        }
        if (!enabled) {
            step.run();
            return;
        }
        long now = DeviceScratch.generation();
        if (graph != null && graphGeneration == now) {
            graph.launch();
            return;
        }
        dropGraph();
        if (warmGeneration == now) {        // the last eager run needed no new scratch: its addresses are final
            try {
                graph = graphs.capture(step);
            } catch (CudaException e) {
                // Nothing ran during the failed capture: run the step eagerly, now and from here on.
                enabled = false;
                fallback = e.getMessage();
                System.err.println("qalora: a decode step could not be recorded as a CUDA graph, running it op by op"
                        + " (slower, same results): " + fallback);
                step.run();
                return;
            }
            graphGeneration = now;
            graph.launch();
            return;
        }
        step.run();
        warmGeneration = DeviceScratch.generation();
    }

    /** Why the step runs op by op after a failed capture; null while it records or replays. */
    String fallback() { return fallback; }

    /** Whether the next {@link #run} replays a recording (for tests and the benchmark). */
    boolean replaying() {
        return graph != null && graphGeneration == DeviceScratch.generation();
    }

    private void dropGraph() {
        if (graph != null) {
            graph.close();
            graph = null;
        }
    }

    @Override
    public void close() {
        dropGraph();
        closed = true;
    }
}
