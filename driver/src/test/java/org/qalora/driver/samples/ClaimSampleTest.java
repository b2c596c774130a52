package org.qalora.driver.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.qalora.datasets.tokenize.TextTokenizer;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;

/**
 * The bundled claim model ({@code samples/claim/model}) loads as the pretrained model it is: its transformers-v5
 * config ({@code rope_parameters}, {@code dtype}) parses, its tied lm_head is the embedding table, and on text of
 * the kind it was trained on (Debian documentation) it predicts far better than chance (ln 32000 = 10.4): a wrong
 * RoPE base, an untied or mis-read head, or a bf16 decoding error would each put the loss near or above chance.
 */
class ClaimSampleTest {
    static final Path CLAIM = Fixtures.root().resolveSibling("samples").resolve("claim");

    @Test
    void theV5ConfigAndTiedEmbeddingsLoad() throws Exception {
        Path model = CLAIM.resolve("model");
        LlamaConfig c = LlamaConfig.read(model.toString());
        assertTrue(c.tieWordEmbeddings());
        assertEquals(10000.0, c.ropeTheta());
        assertNull(c.ropeScaling());
        assertFalse(c.isQuantized());
        assertEquals(8, c.numHiddenLayers());
        assertEquals(4, c.numKeyValueHeads());
        try (Checkpoint ck = Checkpoint.open(model.toString())) {
            assertFalse(ck.contains("lm_head.weight"), "tied: the checkpoint stores no lm_head");
        }
        try (CpuBackend be = new CpuBackend(2);
             TextTokenizer tok = TextTokenizer.open(model.resolve("tokenizer.json").toString(), new Configuration())) {
            LlamaModel m = LlamaModel.load(model.toString(), be);
            String text = "To install a package, run apt-get install followed by the name of the package. The package "
                    + "manager downloads the files from the Debian archive and configures the package.";
            int[] ids = tok.encode(text, true);
            int t = ids.length;
            ActivationPlan plan = new ActivationPlan(m, null, 1, t, false, false);
            LlamaPass.forward(m, null, plan, ids, 0, null);
            double meanLoss = LlamaPass.loss(m, plan, LlamaPass.shiftedTargets(ids, 1, t)) / (t - 1);
            System.out.printf("claim model: mean token loss %.3f on %d tokens of Debian-like text%n", meanLoss, t - 1);
            assertTrue(meanLoss < 5.0, "mean token loss " + meanLoss + " on Debian-like text; chance is 10.4");

            // lm_head is the embedding table: logit v at the last position = final hidden . embedding row v
            float[] logits = LlamaPass.logits(m, plan), hidden = be.download(plan.finalOut),
                    emb = be.download(m.embedding());
            int h = m.dims().hidden(), v = m.dims().vocab(), last = t - 1;
            for (int id : new int[] {0, ids[3], 31999}) {
                double dot = 0;
                for (int i = 0; i < h; i++) {
                    dot += (double) hidden[last * h + i] * emb[id * h + i];
                }
                assertEquals(dot, logits[last * v + id], 1e-3);
            }
        }
    }
}
