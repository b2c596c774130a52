package org.qalora.driver.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class TrainJobLoaderTest {
    @Test
    void flagsOverrideTheJobFileWhichOverridesDefaults() {
        Map<String, Object> yaml = TrainJobLoader.parseYaml("""
                model: hdfs://nn/models/llama-7b
                data: [hdfs://nn/data/a.jsonl, hdfs://nn/data/b.jsonl]
                rounds: 10
                lr: 2.0e-4
                """, "job.yaml");
        Map<String, Object> flags = new HashMap<>();
        flags.put("rounds", 12);
        flags.put("slots", null); // not given
        TrainJob job = TrainJobLoader.build("test", TrainJobLoader.defaults("/repo"), yaml, flags);
        assertEquals("hdfs://nn/models/llama-7b", job.model());
        assertEquals(List.of("hdfs://nn/data/a.jsonl", "hdfs://nn/data/b.jsonl"), job.data());
        assertEquals(12, job.rounds());
        assertEquals(2, job.slots());
        assertEquals(2.0e-4, job.lr());
    }

    @Test
    void theConfigHashCoversResultSettingsOnly() {
        TrainJob a = TrainJobLoader.build("t", TrainJobLoader.defaults("/repo"));
        TrainJob b = TrainJobLoader.build("t", TrainJobLoader.defaults("/repo"), Map.of("master", "yarn", "output", "/x"));
        TrainJob c = TrainJobLoader.build("t", TrainJobLoader.defaults("/repo"), Map.of("seed", 7));
        assertEquals(a.configHash(), b.configHash(), "where it runs or writes does not change the result");
        assertNotEquals(a.configHash(), c.configHash());
    }

    @Test
    void maxShardSizeIsFileLayoutOnly() {
        TrainJob a = TrainJobLoader.build("t", TrainJobLoader.defaults("/repo"));
        assertEquals("5GB", a.maxShardSize());
        TrainJob b = TrainJobLoader.build("t", TrainJobLoader.defaults("/repo"), Map.of("max-shard-size", "500MB"));
        assertEquals("500MB", b.maxShardSize());
        assertEquals(a.configHash(), b.configHash(), "the shard size changes files, not the trained result");
        var e = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.build("job.yaml", TrainJobLoader.defaults("/r"), Map.of("max-shard-size", "5 gigs")));
        assertTrue(e.getMessage().contains("max-shard-size '5 gigs' is not a size") && e.getMessage().contains("5GB"),
                e.getMessage());
    }

    @Test
    void badInputIsNamed() {
        var e1 = assertThrows(IllegalArgumentException.class, () -> TrainJobLoader.parseYaml("steps: 3", "job.yaml"));
        assertTrue(e1.getMessage().contains("job.yaml: unknown setting 'steps'"), e1.getMessage());
        var e2 = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.build("job.yaml", TrainJobLoader.defaults("/r"), Map.of("rounds", "many")));
        assertTrue(e2.getMessage().contains("job.yaml: 'rounds' must be a number, got 'many'"), e2.getMessage());
        var e3 = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.build("t", TrainJobLoader.defaults("/r"), Map.of("slots", 0, "bits", 9)));
        assertTrue(e3.getMessage().contains("slots must be >= 1, got 0") && e3.getMessage().contains("--bits must be 2, 3, 4 or 8"),
                e3.getMessage());
        var e4 = assertThrows(IllegalArgumentException.class, () -> TrainJobLoader.parseYaml("- a\n- b", "list.yaml"));
        assertTrue(e4.getMessage().contains("must be a YAML mapping"), e4.getMessage());
    }

    /** The GPU's inverse-Hessian factor differs from the CPU's in the last bits: the choice is part of the result. */
    @Test
    void gptqSolveIsCheckedAndHashedForGptqOnly() {
        Map<String, Object> d = TrainJobLoader.defaults("/repo");
        TrainJob byDefault = TrainJobLoader.build("t", d, Map.of());
        assertEquals("auto", byDefault.gptqSolve());
        TrainJob gpu = TrainJobLoader.build("t", d, Map.of("gptq-solve", "GPU"));
        assertEquals("gpu", gpu.gptqSolve());
        assertNotEquals(byDefault.configHash(), gpu.configHash());
        // cpu (the default before auto) and auto hash alike, so a run started before the change resumes after it.
        assertEquals(byDefault.configHash(), TrainJobLoader.build("t", d, Map.of("gptq-solve", "cpu")).configHash());
        assertEquals(TrainJobLoader.build("t", d, Map.of("quantize", "rtn")).configHash(),
                TrainJobLoader.build("t", d, Map.of("quantize", "rtn", "gptq-solve", "gpu")).configHash(),
                "rtn solves nothing");
        var e = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.build("job.yaml", d, Map.of("gptq-solve", "tpu")));
        assertTrue(e.getMessage().contains("--gptq-solve must be auto, cpu or gpu"), e.getMessage());
    }

    @Test
    void theScheduleAndDataOptionsAreSettingsAndOnlyADecayingScheduleFixesTheRounds() {
        Map<String, Object> d = TrainJobLoader.defaults("/repo");
        TrainJob constant = TrainJobLoader.build("t", d, Map.of("rounds", 3));
        assertEquals("constant", constant.lrSchedule());
        assertEquals(constant.configHash(), TrainJobLoader.build("t", d, Map.of("rounds", 9)).configHash(),
                "a constant schedule trains round r the same way whatever the total: extendable");
        TrainJob cosine = TrainJobLoader.build("t", d, Map.of("rounds", 3, "lr-schedule", "Cosine", "warmup-steps", 2));
        assertEquals("cosine", cosine.lrSchedule());
        assertEquals(org.qalora.worker.train.Schedule.COSINE, cosine.schedule());
        assertNotEquals(cosine.configHash(), TrainJobLoader.build("t", d,
                Map.of("rounds", 9, "lr-schedule", "cosine", "warmup-steps", 2)).configHash());
        for (String key : new String[] {"skip-bad-records", "source-max-len", "target-max-len", "warmup-steps"}) {
            Object other = key.equals("skip-bad-records") ? (Object) true : (Object) 7;
            assertNotEquals(constant.configHash(), TrainJobLoader.build("t", d, Map.of("rounds", 3, key, other))
                    .configHash(), key);
        }
        var e = assertThrows(InvalidSettingsException.class, () -> TrainJobLoader.build("t", d,
                Map.of("lr-schedule", "step", "warmup-steps", -1, "source-max-len", 0)));
        assertEquals(3, e.problems().size(), e.getMessage());
        assertTrue(e.getMessage().contains("--lr-schedule must be constant, linear or cosine, got step"), e.getMessage());
    }

    @Test
    void deviceAndPrecisionAndRecomputeAreResultSettings() {
        Map<String, Object> d = TrainJobLoader.defaults("/repo");
        TrainJob a = TrainJobLoader.build("t", d);
        assertEquals("auto", a.device());
        assertEquals("auto", a.precision());
        assertEquals(null, a.backendPrecision());
        assertTrue(!a.recompute() && !a.gpuRequested());
        TrainJob gpu = TrainJobLoader.build("t", d, Map.of("device", "GPU:1"));
        assertEquals("gpu:1", gpu.device());
        assertTrue(gpu.gpuRequested());
        assertNotEquals(a.configHash(), gpu.configHash());
        assertNotEquals(a.configHash(), TrainJobLoader.build("t", d, Map.of("device", "cpu")).configHash());
        TrainJob bf16 = TrainJobLoader.build("t", d, Map.of("precision", "bf16"));
        assertEquals(org.qalora.worker.backend.Precision.BF16, bf16.backendPrecision());
        assertNotEquals(a.configHash(), bf16.configHash());
        assertNotEquals(bf16.configHash(), TrainJobLoader.build("t", d, Map.of("precision", "fp32")).configHash());
        TrainJob yaml = TrainJobLoader.build("job.yaml", d, TrainJobLoader.parseYaml("recompute: true\n", "job.yaml"));
        assertTrue(yaml.recompute());
        assertNotEquals(a.configHash(), yaml.configHash());
        assertEquals(true, yaml.resultSettings().get("recompute"));
        var e = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.build("job.yaml", d, Map.of("recompute", "sometimes")));
        assertTrue(e.getMessage().contains("job.yaml: 'recompute' must be true or false, got 'sometimes'"), e.getMessage());
        var bad = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.build("t", d, Map.of("device", "gpu:x")));
        assertTrue(bad.getMessage().contains("device 'gpu:x' is not one of"), bad.getMessage());
        var cpu = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.build("t", d, Map.of("device", "cpu", "precision", "BF16")));
        assertTrue(cpu.getMessage().contains("precision bf16 needs a GPU"), cpu.getMessage());
    }

    @Test
    void batchSizeAndLengthGroupingAreResultSettings() {
        Map<String, Object> d = TrainJobLoader.defaults("/repo");
        TrainJob a = TrainJobLoader.build("t", d);
        assertEquals(0, a.groupByLength(), "length grouping is off by default");
        assertEquals("off", a.resultSettings().get("group-by-length"));
        TrainJob yamlOff = TrainJobLoader.build("job.yaml", d, TrainJobLoader.parseYaml(
                "batch-size: 16\ngroup-by-length: off\n", "job.yaml")); // YAML 1.1 reads a bare off as false
        assertEquals(32, a.batchSize(), "32 sequences per step by default");
        assertEquals(16, yamlOff.batchSize());
        assertEquals(0, yamlOff.groupByLength());
        assertNotEquals(a.configHash(), yamlOff.configHash());
        TrainJob grouped = TrainJobLoader.build("t", d, Map.of("batch-size", 16, "group-by-length", "1600"));
        assertEquals(1600, grouped.groupByLength());
        assertEquals(1600, grouped.resultSettings().get("group-by-length"));
        assertNotEquals(yamlOff.configHash(), grouped.configHash());
        var small = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.build("t", d, Map.of("batch-size", 32, "group-by-length", 32)));
        assertTrue(small.getMessage().contains("group-by-length must be off or a mega-batch size larger than batch-size 32"),
                small.getMessage());
        var word = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.build("job.yaml", d, Map.of("group-by-length", "on")));
        assertTrue(word.getMessage().contains("job.yaml: 'group-by-length' must be off or a mega-batch size (records), got 'on'"),
                word.getMessage());
        var yes = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.build("job.yaml", d, Map.of("group-by-length", true)));
        assertTrue(yes.getMessage().contains("'group-by-length' must be off or a mega-batch size"), yes.getMessage());
        var zero = assertThrows(IllegalArgumentException.class, () -> TrainJobLoader.build("t", d, Map.of("batch-size", 0)));
        assertTrue(zero.getMessage().contains("batch-size must be >= 1, got 0"), zero.getMessage());
    }

    @Test
    void theMethodIsAResultSettingAndLoraIgnoresTheQuantizationSettings() {
        Map<String, Object> d = TrainJobLoader.defaults("/repo");
        TrainJob qalora = TrainJobLoader.build("t", d);
        assertTrue(qalora.qalora());
        TrainJob lora = TrainJobLoader.build("t", d, Map.of("method", "LoRA"));
        assertEquals("lora", lora.method());
        assertTrue(!lora.qalora());
        assertNotEquals(qalora.configHash(), lora.configHash());
        assertEquals("lora", lora.resultSettings().get("method"));
        assertTrue(!lora.resultSettings().containsKey("bits") && !lora.resultSettings().containsKey("pooling"),
                "plain LoRA neither quantizes nor pools: " + lora.resultSettings());
        assertEquals(lora.configHash(), TrainJobLoader.build("t", d, Map.of("method", "lora", "bits", 2)).configHash());
        assertNotEquals(qalora.configHash(), TrainJobLoader.build("t", d, Map.of("bits", 2)).configHash());
        var e = assertThrows(IllegalArgumentException.class,
                () -> TrainJobLoader.build("job.yaml", d, Map.of("method", "qlora")));
        assertTrue(e.getMessage().contains("job.yaml: bad train settings: method must be qalora") && e.getMessage()
                .contains("got qlora"), e.getMessage());
    }

    @Test
    void heldOutDataAndItsScheduleAreResultSettings() {
        Map<String, Object> d = TrainJobLoader.defaults("/repo");
        TrainJob none = TrainJobLoader.build("t", d);
        assertEquals(List.of(), none.evalData());
        assertEquals(0, none.roundsBetweenEvals(), "no held-out data, no evaluation");
        TrainJob eval = TrainJobLoader.build("job.yaml", d, TrainJobLoader.parseYaml(
                "eval-data: /data/dev.json\neval-every: 4\n", "job.yaml"));
        assertEquals(List.of("/data/dev.json"), eval.evalData());
        assertEquals(4, eval.roundsBetweenEvals());
        assertNotEquals(none.configHash(), eval.configHash());
        assertNotEquals(eval.configHash(), TrainJobLoader.build("t", d, Map.of("eval-data", List.of("/data/dev.json"),
                "eval-every", 2)).configHash());
        var e = assertThrows(IllegalArgumentException.class, () -> TrainJobLoader.build("t", d, Map.of("eval-every", 0)));
        assertTrue(e.getMessage().contains("eval-every must be >= 1, got 0"), e.getMessage());
    }
}
