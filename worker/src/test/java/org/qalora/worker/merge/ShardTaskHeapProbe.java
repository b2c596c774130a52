package org.qalora.worker.merge;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.worker.quantize.QuantizeLayout;
import org.qalora.worker.shard.ShardedWrite;
import org.qalora.worker.shard.TensorSource;

/**
 * Runs what one shard task runs (plan, open, stream every shard of the layout) in its own JVM, started with the heap
 * cap under test, and prints the largest heap use a 2 ms sampler saw: {@code peakHeapBytes=N}. Arguments: model
 * directory, adapter directory ({@code rtn}: RTN-quantize the dense model instead of merging), output directory,
 * max shard bytes.
 */
public final class ShardTaskHeapProbe {
    private ShardTaskHeapProbe() {}

    public static void main(String[] args) throws Exception {
        String model = args[0], adapter = args[1];
        Path out = Files.createDirectories(Path.of(args[2]));
        long maxShard = Long.parseLong(args[3]);
        MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
        AtomicLong peak = new AtomicLong();
        Thread sampler = new Thread(() -> {
            while (!Thread.currentThread().isInterrupted()) {
                peak.accumulateAndGet(memory.getHeapMemoryUsage().getUsed(), Math::max);
                try {
                    Thread.sleep(2);
                } catch (InterruptedException e) {
                    return;
                }
            }
        });
        sampler.setDaemon(true);
        sampler.start();
        HadoopPaths paths = HadoopPaths.defaults();
        ShardedWrite layout;
        try (Checkpoint source = Checkpoint.open(model, paths)) {
            layout = adapter.equals("rtn") ? QuantizeLayout.plan(source, GptqConfig.of(4, 32), maxShard)
                    : MergeLayout.plan(source, adapter, maxShard, paths);
        }
        long t0 = System.nanoTime();
        try (TensorSource source = layout.open(paths, 1)) {
            for (int s = 0; s < layout.shards().count(); s++) {
                int shard = s;
                paths.writeAtomically(out.resolve(layout.shards().fileName(s)).toString(),
                        o -> ShardedWrite.writeShard(layout, source, shard, o));
            }
        }
        long ms = (System.nanoTime() - t0) / 1_000_000;
        sampler.interrupt();
        System.out.println("shards=" + layout.shards().count() + " bytes=" + layout.shards().totalSize() + " ms=" + ms
                + " maxHeapBytes=" + Runtime.getRuntime().maxMemory() + " peakHeapBytes=" + peak.get());
    }
}
