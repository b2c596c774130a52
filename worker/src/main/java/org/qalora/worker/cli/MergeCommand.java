package org.qalora.worker.cli;

import java.util.concurrent.Callable;
import org.qalora.worker.merge.Merger;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code merge}: folds a QA-LoRA adapter into a GPTQ model's zero points and writes the merged model. */
@Command(name = "merge", mixinStandardHelpOptions = true,
        description = "Merge a QA-LoRA adapter into its GPTQ base (float zero points); verified before it is written.")
public final class MergeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, description = "GPTQ model directory the adapter was trained on")
    String model;

    @Option(names = "--adapter", required = true, description = "PEFT QA-LoRA adapter directory")
    String adapter;

    @Option(names = "--out", required = true, description = "output model directory (must not exist)")
    String out;

    @Override
    public Integer call() throws Exception {
        return CliErrors.run(() -> {
            Merger.Report r = Merger.merge(model, adapter, out);
            System.out.printf("merged %d projections into %s; probe logits relative error %.3g (max abs %.3g)%n",
                    r.mergedProjections(), r.output(), r.relativeLogitError(), r.maxAbsLogitDiff());
        });
    }
}
