package org.qalora.worker.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.LlamaModel;

/**
 * The held-out loss against the HF float64 oracle: the fixture adapter's loss on the reference batch (a mean over
 * all target tokens of both rows), whether the rows come as one micro-batch or as two whose sums are added, with the
 * logits computed in chunks of {@link LocalTrainer#LOGIT_CHUNK_TOKENS}; the base model alone gives the base loss.
 */
class HeldOutLossTest {
    @Test
    void meanOverAllTargetTokensMatchesTheOracle() throws Exception {
        try (CpuBackend be = new CpuBackend(2); SafetensorsFile ref = SafetensorsFile.open(Fixtures.reference().toString())) {
            LlamaModel model = LlamaModel.load(Fixtures.tinyLlamaGptq().toString(), be);
            PeftAdapter adapter = PeftAdapter.read(Fixtures.tinyLlamaAdapter().toString());
            int[] ids = Arrays.stream(ref.longs("input_ids")).mapToInt(Math::toIntExact).toArray();
            int[] labels = Arrays.stream(ref.longs("labels")).mapToInt(Math::toIntExact).toArray();
            MicroBatch both = new MicroBatch(2, 24, ids, labels);
            MicroBatch row0 = new MicroBatch(1, 24, Arrays.copyOf(ids, 24), Arrays.copyOf(labels, 24));
            MicroBatch row1 = new MicroBatch(1, 24, Arrays.copyOfRange(ids, 24, 48), Arrays.copyOfRange(labels, 24, 48));

            HeldOutLoss.Result whole = HeldOutLoss.evaluate(model, adapter.config(), adapter.weights(), List.of(both));
            // row 0 masks its first 5 labels, row 1 its first 9: 19 + 15 targets (the first label is masked anyway)
            assertEquals(34, whole.targetTokens());
            float expected = ref.floats("gptq-4bit-g32-qalora.loss")[0];
            assertEquals(expected, whole.lossSum() / whole.targetTokens(), 1e-5);
            HeldOutLoss.Result first = HeldOutLoss.evaluate(model, adapter.config(), adapter.weights(), List.of(row0));
            HeldOutLoss.Result second = HeldOutLoss.evaluate(model, adapter.config(), adapter.weights(), List.of(row1));
            HeldOutLoss.Result split = HeldOutLoss.evaluate(model, adapter.config(), adapter.weights(), List.of(row0, row1));
            assertEquals(first.lossSum() + second.lossSum(), split.lossSum(), 0.0, "sums add up exactly");
            assertEquals(whole.lossSum(), split.lossSum(), 1e-4);
            double perRecordMeans = (first.lossSum() / first.targetTokens() + second.lossSum() / second.targetTokens()) / 2;
            assertTrue(Math.abs(perRecordMeans - expected) > 1e-3, "a mean of per-record means is another number");

            HeldOutLoss.Result base = HeldOutLoss.evaluate(model, null, null, List.of(both));
            assertEquals(ref.floats("gptq-4bit-g32.loss")[0], base.lossSum() / base.targetTokens(), 1e-5);

            // chunked logits: a batch longer than the chunk gives the same sums (to float rounding)
            MicroBatch big = repeat(both, 12);                               // 24 rows x 24 tokens = 576 > 512
            HeldOutLoss.Result chunked = HeldOutLoss.evaluate(model, adapter.config(), adapter.weights(), List.of(big));
            assertEquals(12 * 34, chunked.targetTokens());
            assertEquals(expected, chunked.lossSum() / chunked.targetTokens(), 1e-5);
        }
    }

    private static MicroBatch repeat(MicroBatch b, int times) {
        int n = b.inputIds().length;
        int[] ids = new int[n * times], labels = new int[n * times];
        for (int t = 0; t < times; t++) {
            System.arraycopy(b.inputIds(), 0, ids, t * n, n);
            System.arraycopy(b.labels(), 0, labels, t * n, n);
        }
        return new MicroBatch(b.batchSize() * times, b.seqLen(), ids, labels);
    }
}
