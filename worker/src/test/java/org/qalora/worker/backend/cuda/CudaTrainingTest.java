package org.qalora.worker.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.testing.Fixtures;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.CpuBackend;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.merge.Merger;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.train.AdapterState;
import org.qalora.worker.train.AdapterStateFiles;
import org.qalora.worker.train.LocalTrainer;
import org.qalora.worker.train.MicroBatch;
import org.qalora.worker.train.Schedule;
import org.qalora.worker.train.TrainResult;
import org.qalora.worker.train.TrainingConfig;

/**
 * Training on the GPU end to end on the fixture GPTQ model, as the executors run it: rounds of AdamW steps with the
 * state written to a file and read back between rounds, then the merge (which checks the merged model's logits
 * against the adapter model's on the GPU). fp32 must agree with the CPU to 1e-4; a rerun must be bit-identical
 * (and bin/gpu-test compares the digest this test writes across two JVM processes). Skipped without a GPU.
 */
class CudaTrainingTest {
    /** Where the digest of the fp32 run's final state goes, for the cross-process comparison. */
    static final String DIGEST_PROPERTY = "qalora.gpuDigestFile";

    @TempDir
    Path tmp;

    private static final QaloraConfig CFG = QaloraConfig.allProjections(8, 16, 32, Pooling.MEAN, 0.05);

    private static List<List<MicroBatch>> steps(int n) throws Exception {
        try (SafetensorsFile ref = SafetensorsFile.open(Fixtures.reference().toString())) {
            int[] ids = toInts(ref.longs("input_ids")), labels = toInts(ref.longs("labels"));
            MicroBatch row0 = new MicroBatch(1, 24, Arrays.copyOf(ids, 24), Arrays.copyOf(labels, 24));
            MicroBatch both = new MicroBatch(2, 24, ids, labels);
            List<List<MicroBatch>> out = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                out.add(i % 2 == 0 ? List.of(row0, both) : List.of(both)); // shapes change between steps
            }
            return out;
        }
    }

    /** Three rounds of four steps from the same initial state, the state round-tripped through a file each round. */
    private TrainResult rounds(Backend be, boolean recompute, String tag, double[] firstLoss) throws Exception {
        LlamaModel model = LlamaModel.load(Fixtures.tinyLlamaGptq().toString(), be);
        TrainingConfig tc = new TrainingConfig(5e-3, 0.9, 0.999, 1e-8, 0.01, 1.0, Schedule.COSINE, 2, 12, recompute);
        LocalTrainer trainer = new LocalTrainer(model, CFG, tc);
        AdapterState state = AdapterState.initial(model, CFG, 1);
        TrainResult r = null;
        for (int round = 0; round < 3; round++) {
            r = trainer.run(state, steps(4), 9);
            if (round == 0) {
                firstLoss[0] = r.stepLosses()[0];
            }
            String file = tmp.resolve(tag + "-round-" + round + ".safetensors").toString();
            AdapterStateFiles.write(r.state(), file);
            state = AdapterStateFiles.read(file);
        }
        return r;
    }

    @Test
    void fp32MatchesTheCpuRerunsBitIdenticallyAndMerges() throws Exception {
        double[] l0 = new double[1];
        TrainResult cpu;
        try (CpuBackend be = new CpuBackend(2)) {
            cpu = rounds(be, false, "cpu", l0);
        }
        try (CudaBackend gpu = CudaTestSupport.backendOrSkip(Precision.FP32)) {
            double[] g0 = new double[1];
            TrainResult a = rounds(gpu, true, "gpu-a", g0);
            TrainResult b = rounds(gpu, false, "gpu-b", g0);
            assertTrue(a.stepLosses()[3] < g0[0] - 0.2, "GPU loss did not fall: " + g0[0] + " -> " + a.stepLosses()[3]);
            double worst = 0;
            for (String key : cpu.state().keys()) {
                float[] c = cpu.state().weights(key), g = a.state().weights(key);
                for (int i = 0; i < c.length; i++) {
                    worst = Math.max(worst, Math.abs(c[i] - g[i]));
                }
                // recompute and stored activations run the same kernels on the same inputs: the same bits
                assertArrayEquals(a.state().weights(key), b.state().weights(key), 0f, key + " recompute vs stored");
                assertArrayEquals(a.state().adamV(key), b.state().adamV(key), 0f, key + " v, recompute vs stored");
            }
            System.out.printf("GPU fp32 training vs CPU after 12 steps: max abs adapter difference %.2e; losses %s%n",
                    worst, Arrays.toString(a.stepLosses()));
            assertTrue(worst <= 1e-4, "GPU fp32 adapters differ from the CPU's by " + worst);

            String digest = digest(tmp.resolve("gpu-a-round-2.safetensors"));
            assertEquals(digest, digest(tmp.resolve("gpu-b-round-2.safetensors")), "rerun on the GPU changed the bits");
            String where = System.getProperty(DIGEST_PROPERTY);
            if (where != null) {
                Files.writeString(Path.of(where), digest + "\n");
            }
            System.out.println("GPU fp32 training digest: " + digest);

            LlamaModel model = LlamaModel.load(Fixtures.tinyLlamaGptq().toString(), gpu);
            Merger.Report report = Merger.merge(model, a.state(), tmp.resolve("merged").toString());
            assertEquals(14, report.mergedProjections());
            assertTrue(report.relativeLogitError() < 1e-5, "merged vs adapter logits on the GPU: " + report.relativeLogitError());
        }
    }

    @Test
    void bf16LossFallsAndRerunsBitIdentically() throws Exception {
        try (CudaBackend gpu = CudaTestSupport.backendOrSkip(Precision.BF16)) {
            double[] l0 = new double[1], l1 = new double[1];
            TrainResult a = rounds(gpu, true, "bf16-a", l0);
            TrainResult b = rounds(gpu, true, "bf16-b", l1);
            System.out.printf("GPU bf16 training: loss %.4f -> %.4f%n", l0[0], a.stepLosses()[3]);
            assertTrue(a.stepLosses()[3] < l0[0] - 0.2, "bf16 loss did not fall: " + l0[0] + " -> " + a.stepLosses()[3]);
            assertEquals(digest(tmp.resolve("bf16-a-round-2.safetensors")), digest(tmp.resolve("bf16-b-round-2.safetensors")));
            assertArrayEquals(a.stepLosses(), b.stepLosses());
        }
    }

    /**
     * Plain LoRA ({@code --method lora}) on the fixture's float model: A multiplies the (bf16 under mixed precision)
     * projection input itself and its input gradient is added without pooling. fp32 on the GPU must agree with the
     * CPU; bf16 must lower the loss; the float merge's logit check must pass on the GPU.
     */
    @Test
    void plainLoraOnTheFloatModelMatchesTheCpuAndMerges() throws Exception {
        QaloraConfig lora = QaloraConfig.lora(8, 16, 0.05);
        TrainingConfig tc = new TrainingConfig(5e-3, 0.9, 0.999, 1e-8, 0.0, 0.3, Schedule.CONSTANT, 0, 8, false);
        TrainResult cpu;
        try (CpuBackend be = new CpuBackend(2)) {
            LlamaModel model = LlamaModel.load(Fixtures.tinyLlama().toString(), be);
            cpu = new LocalTrainer(model, lora, tc).run(AdapterState.initial(model, lora, 1), steps(6), 9);
        }
        try (CudaBackend gpu = CudaTestSupport.backendOrSkip(Precision.FP32)) {
            LlamaModel model = LlamaModel.load(Fixtures.tinyLlama().toString(), gpu);
            TrainResult g = new LocalTrainer(model, lora, tc.withRecompute(true)).run(AdapterState.initial(model, lora, 1),
                    steps(6), 9);
            double worst = 0;
            for (String key : cpu.state().keys()) {
                float[] c = cpu.state().weights(key), w = g.state().weights(key);
                for (int i = 0; i < c.length; i++) {
                    worst = Math.max(worst, Math.abs(c[i] - w[i]));
                }
            }
            System.out.printf("GPU fp32 plain LoRA vs CPU after 6 steps: max abs adapter difference %.2e; losses %s%n",
                    worst, Arrays.toString(g.stepLosses()));
            assertTrue(worst <= 1e-4, "GPU fp32 LoRA adapters differ from the CPU's by " + worst);
            assertTrue(g.stepLosses()[5] < g.stepLosses()[0] - 0.2, Arrays.toString(g.stepLosses()));
            Merger.Report report = Merger.merge(model, g.state(), tmp.resolve("lora-merged").toString());
            assertEquals(14, report.mergedProjections());
            assertTrue(report.relativeLogitError() < 1e-5, "merged float vs adapter logits on the GPU: "
                    + report.relativeLogitError());
        }
        try (CudaBackend gpu = CudaTestSupport.backendOrSkip(Precision.BF16)) {
            LlamaModel model = LlamaModel.load(Fixtures.tinyLlama().toString(), gpu);
            TrainResult g = new LocalTrainer(model, lora, tc).run(AdapterState.initial(model, lora, 1), steps(6), 9);
            System.out.printf("GPU bf16 plain LoRA: loss %.4f -> %.4f%n", g.stepLosses()[0], g.stepLosses()[5]);
            assertTrue(g.stepLosses()[5] < g.stepLosses()[0] - 0.2, Arrays.toString(g.stepLosses()));
        }
    }

    static String digest(Path file) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }

    private static int[] toInts(long[] a) {
        int[] o = new int[a.length];
        for (int i = 0; i < a.length; i++) {
            o[i] = Math.toIntExact(a[i]);
        }
        return o;
    }
}
