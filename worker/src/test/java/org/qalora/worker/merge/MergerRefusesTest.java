package org.qalora.worker.merge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.LayerWeights;
import org.qalora.worker.model.LlamaModel;

/**
 * The merge's own logits check refuses a wrong merge and a NaN one, and a refused merge leaves nothing behind: no
 * output directory and no {@code _tmp-} sibling.
 */
class MergerRefusesTest {
    private static CpuBackend be;
    private static LlamaModel model;
    private static PeftAdapter adapter;

    @TempDir
    Path tmp;

    @BeforeAll
    static void load() {
        be = new CpuBackend(2);
        model = LlamaModel.load(Fixtures.tinyLlamaGptq().toString(), be);
        adapter = PeftAdapter.read(Fixtures.tinyLlamaAdapter().toString());
    }

    @AfterAll
    static void close() { be.close(); }

    @Test
    void theFixtureMergePasses() {
        Merger.Report r = Merger.merge(model, adapter, tmp.resolve("out").toString(), HadoopPaths.defaults());
        assertTrue(r.relativeLogitError() <= Merger.LOGIT_TOLERANCE, "probe error " + r.relativeLogitError());
        assertTrue(Files.isDirectory(tmp.resolve("out")));
    }

    /** One zero point shifted by one code step: the merged model is wrong, and the logits check must say so. */
    @Test
    void aShiftedZeroPointIsRefused() throws IOException {
        Merger.Fold shifted = (m, cfg, w) -> {
            Map<String, QuantizedMatrix> merged = ZeroPointMerge.mergeAll(m, cfg, w);
            Map.Entry<String, QuantizedMatrix> first = merged.entrySet().iterator().next();
            float[] zeros = first.getValue().zeros().clone();
            zeros[0] += 1f;
            merged.put(first.getKey(), first.getValue().withZeros(zeros));
            return merged;
        };
        String out = tmp.resolve("shifted").toString();
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> Merger.merge(model, adapter, out, HadoopPaths.defaults(), shifted));
        assertTrue(e.getMessage().contains("not within " + Merger.LOGIT_TOLERANCE), e.getMessage());
        assertTrue(e.getMessage().contains("refusing to write " + out), e.getMessage());
        assertNothingWritten();
    }

    /**
     * A final norm weight holding NaN makes both the adapter model's and the merged model's logits NaN, so the
     * relative error is NaN; {@code err > tol} is false for NaN, so only a NaN-safe comparison refuses it.
     */
    @Test
    void nanLogitsAreRefused() throws IOException {
        float[] norm = be.download(model.finalNorm());
        norm[3] = Float.NaN;
        List<LayerWeights> layers = new ArrayList<>();
        for (int l = 0; l < model.dims().layers(); l++) {
            layers.add(model.layer(l));
        }
        LlamaModel poisoned = new LlamaModel(model.dims(), be, model.embedding(), layers,
                be.upload(norm, norm.length), model.lmHead(), model.quantizedMatrices(), model.source());
        String out = tmp.resolve("nan").toString();
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> Merger.merge(poisoned, adapter, out, HadoopPaths.defaults()));
        assertTrue(e.getMessage().contains("NaN") && e.getMessage().contains("not finite"), e.getMessage());
        assertNothingWritten();
    }

    @Test
    void theToleranceTestIsNanSafe() {
        assertTrue(Merger.withinTolerance(0.0));
        assertTrue(Merger.withinTolerance(Merger.LOGIT_TOLERANCE));
        assertFalse(Merger.withinTolerance(Math.nextUp(Merger.LOGIT_TOLERANCE)));
        assertFalse(Merger.withinTolerance(Double.NaN));
        assertFalse(Merger.withinTolerance(Double.POSITIVE_INFINITY));
    }

    private void assertNothingWritten() throws IOException {
        try (Stream<Path> left = Files.list(tmp)) {
            assertEquals(List.of(), left.map(p -> p.getFileName().toString()).toList(),
                    "a refused merge must leave nothing in " + tmp);
        }
    }
}
