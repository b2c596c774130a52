package org.qalora.worker.cli;

import java.util.concurrent.Callable;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.ShardSize;
import org.qalora.worker.merge.Merger;
import org.qalora.worker.merge.ShardedMerge;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code merge}: folds a QA-LoRA adapter into a GPTQ model's zero points, or a plain LoRA adapter
 * ({@code use_qalora: false}) into its float model's weights, and writes the merged model.
 */
@Command(name = "merge", mixinStandardHelpOptions = true,
        description = "Merge a QA-LoRA adapter into its GPTQ base (float zero points), or a plain LoRA adapter into its "
                + "float base (float32 weights W + s B A); verified before it is written.")
public final class MergeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "model directory the adapter was trained on (GPTQ for QA-LoRA, float for LoRA)")
    String model;

    @Option(names = "--adapter", required = true, paramLabel = "DIR", description = "PEFT adapter directory (QA-LoRA or plain LoRA)")
    String adapter;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "output model directory (must not exist unless --overwrite)")
    String out;

    @Option(names = "--overwrite", description = "replace an existing --out: the new model is written beside it first, so a failure leaves the old one whole")
    boolean overwrite;

    @Option(names = "--max-shard-size", defaultValue = ShardSize.DEFAULT, paramLabel = "SIZE",
            description = "largest weights file, as HF spells it (5GB, 500MB, 2GiB); more weights than that are written as "
                    + "model-0000k-of-0000n.safetensors + model.safetensors.index.json; default ${DEFAULT-VALUE}")
    String maxShardSize;

    @Override
    public Integer call() throws Exception {
        return CliErrors.run(() -> {
            long maxShardBytes = ShardSize.parse(maxShardSize, "--max-shard-size");
            HadoopPaths paths = HadoopPaths.defaults();
            boolean replace = paths.exists(out);
            if (replace && !overwrite) {   // before any work: refusing after the merge would waste it
                throw new IllegalArgumentException("--out " + out + " already exists: pass --overwrite to replace it,"
                        + " or choose a new directory");
            }
            String target = !replace ? out : HadoopPaths.child(new org.apache.hadoop.fs.Path(paths.qualified(out))
                    .getParent().toString(), "_tmp-replacing-" + java.util.UUID.randomUUID());
            Merger.Report r = ShardedMerge.merge(model, adapter, target, maxShardBytes, paths);
            if (replace) {
                paths.delete(out);
                paths.commitDirectory(target, out);
            }
            System.out.printf("merged %d projections into %s; probe logits relative error %.3g (max abs %.3g)%n",
                    r.mergedProjections(), out, r.relativeLogitError(), r.maxAbsLogitDiff());
        });
    }
}
