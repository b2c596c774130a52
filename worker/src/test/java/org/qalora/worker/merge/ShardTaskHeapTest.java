package org.qalora.worker.merge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * The heap a merge shard task needs at LLaMA-7B widths: a synthetic 2-layer 7B-shaped GPTQ model
 * ({@link SevenBShapeModel}: 786 MB on disk, a 262 MB embedding and lm_head each) merged with a random r-64 QA-LoRA
 * adapter into ONE shard (the worst case: a task that writes everything) in a child JVM capped at {@code -Xmx128m} ({@code -Dqalora.heap.cap=96m} passes too, 64m does not).
 * It must finish, and the sampled peak heap is printed (docs/PERFORMANCE.md records it). It writes about 1.6 GB to
 * a temporary directory, so it runs only when asked: {@code -Dqalora.heavy=true}.
 */
@EnabledIfSystemProperty(named = "qalora.heavy", matches = "true")
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class ShardTaskHeapTest {
    static final String CAP = "-Xmx" + System.getProperty("qalora.heap.cap", "128m");

    @TempDir
    Path tmp;

    @Test
    void aShardTaskAtSevenBWidthsFitsIn128MegabytesOfHeap() throws IOException, InterruptedException {
        Path model = tmp.resolve("model"), adapter = tmp.resolve("adapter");
        SevenBShapeModel.write(model, adapter, 2);
        String output = probe(CAP, model, adapter.toString());
        System.out.println("ShardTaskHeapTest merge (" + SevenBShapeModel.describe() + ", 2 layers, " + CAP + "): " + output);
        assertTrue(output.contains("shards=1 "), output);
    }

    /**
     * RTN quantization of the dense F16 model of the same shapes (1.3 GB, one shard): a task holds one projection's
     * float32 weight (11008 x 4096 = 180 MB) and its codes ({@code int[]}, 180 MB more), so it needs more than a
     * merge task: 640m passes, 448m does not.
     */
    @Test
    void anRtnQuantizeTaskAtSevenBWidthsFitsIn640MegabytesOfHeap() throws IOException, InterruptedException {
        String cap = "-Xmx" + System.getProperty("qalora.heap.cap.rtn", "640m");
        Path model = tmp.resolve("dense");
        SevenBShapeModel.writeDense(model, 2);
        String output = probe(cap, model, "rtn");
        System.out.println("ShardTaskHeapTest rtn (" + SevenBShapeModel.describe() + ", 2 layers, " + cap + "): " + output);
        assertTrue(output.contains("shards=1 "), output);
    }

    /** Runs {@link ShardTaskHeapProbe} in a JVM with heap cap {@code cap}; returns its output (exit code 0). */
    private String probe(String cap, Path model, String adapterOrRtn) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                cap, "-XX:+UseSerialGC"));
        for (String flag : System.getProperty("qalora.jvm.flags", "").split("\\s+")) {
            if (!flag.isBlank()) {
                cmd.add(flag);
            }
        }
        cmd.addAll(List.of("-cp", System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
                ShardTaskHeapProbe.class.getName(), model.toString(), adapterOrRtn, tmp.resolve("out").toString(),
                Long.toString(5_000_000_000L)));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), output);
        return output;
    }
}
