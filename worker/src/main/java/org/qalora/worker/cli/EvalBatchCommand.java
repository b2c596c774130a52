package org.qalora.worker.cli;

import java.util.Map;
import java.util.concurrent.Callable;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.worker.adapter.AdapterSlot;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;
import java.io.PrintWriter;
import java.util.Locale;
import org.qalora.quant.io.HadoopPaths;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Option;

/**
 * {@code eval-batch}: runs one batch through a model (optionally with an adapter) and writes the logits, the loss
 * and, with {@code --grads}, every adapter gradient. Dropout is off: the output is the deterministic function of
 * the weights that the fixtures describe.
 */
@Command(name = "eval-batch", mixinStandardHelpOptions = true,
        description = "Forward (and optionally backward) one batch; writes logits, loss and adapter gradients.")
public final class EvalBatchCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "model directory (HF, GPTQ or merged)")
    String model;

    @Option(names = "--adapter", paramLabel = "DIR", description = "PEFT QA-LoRA adapter directory")
    String adapter;

    @Option(names = "--batch", required = true, paramLabel = "FILE",
            description = "safetensors file with input_ids and optional labels, int32/int64 [batch, seq]")
    String batch;

    @Option(names = "--out", required = true, paramLabel = "FILE",
            description = "output safetensors: logits [batch, seq, vocab], loss [1], grad.<adapter key>; must not "
                    + "exist unless --overwrite")
    String out;

    @Option(names = "--overwrite", description = "replace --out if it exists")
    boolean overwrite;

    @Option(names = "--grads", description = "also write d loss / d adapter tensor (needs --adapter and labels)")
    boolean grads;

    @Option(names = "--threads", paramLabel = "N", description = "CPU threads (default: all processors)")
    int threads = Runtime.getRuntime().availableProcessors();

    @Option(names = "--device", paramLabel = "cpu|gpu|gpu:N", description = "cpu, gpu (GPU 0) or gpu:N; default cpu")
    String device = "cpu";

    @Option(names = "--precision", paramLabel = "fp32|bf16|auto", description = "fp32 (exact; the default), bf16 (GPU mixed precision)"
            + " or auto (bf16 on a GPU, fp32 on the CPU)")
    String precision = "fp32";

    @Override
    public Integer call() throws Exception {
        return CliErrors.run(this::evaluate);
    }

    private void evaluate() throws Exception {
        // Bad values fail before any file is read; auto resolves as for a task without a GPU (the CPU).
        Precision p = precision.trim().equalsIgnoreCase("auto") ? null : Precision.parse(precision, "--precision");
        String dev = Backends.resolve(device, null);
        if (grads && adapter == null) {
            throw new IllegalArgumentException("--grads needs --adapter: only adapter tensors have gradients");
        }
        HadoopPaths paths = HadoopPaths.defaults();
        if (!overwrite && paths.exists(out)) {   // before the model is loaded: refusing after the work wastes it
            throw new IllegalArgumentException("--out " + out + " already exists: pass --overwrite to replace it");
        }
        Backend opened;
        try {
            opened = Backends.open(dev, p, threads); // bf16 on the CPU, or an unusable GPU, fails here
        } catch (IllegalStateException e) {          // a device that was asked for: a refused setting (exit 2)
            throw new IllegalArgumentException(e.getMessage(), e);
        }
        try (Backend be = opened) {
            BatchFile b = BatchFile.read(batch);
            if (grads && b.labels() == null) {
                throw new IllegalArgumentException(batch + ": --grads needs labels in the batch file");
            }
            LlamaModel m = LlamaModel.load(model, be);
            QaloraAdapter qa = null;
            QaloraConfig cfg = null;
            if (adapter != null) {
                PeftAdapter peft = PeftAdapter.read(adapter);
                QaloraConfig c = peft.config();
                cfg = new QaloraConfig(c.rank(), c.alpha(), c.groupSize(), c.pooling(), 0.0, c.targets());
                qa = QaloraAdapter.create(m, cfg, peft.weights(), grads);
            }
            ActivationPlan plan = new ActivationPlan(m, cfg, b.batch(), b.seqLen(), grads, false);
            LlamaPass.forward(m, qa, plan, b.inputIds(), 0, null);
            SafetensorsWriter w = new SafetensorsWriter();
            String lossLine = null;
            float[] logits = LlamaPass.logits(m, plan);
            w.addFloats("logits", DType.F32, logits, b.batch(), b.seqLen(), m.dims().vocab());
            if (b.labels() != null) {
                int[] targets = LlamaPass.shiftedTargets(b.labels(), b.batch(), b.seqLen());
                long n = LlamaPass.countTargets(targets);
                if (n == 0) {
                    throw new IllegalArgumentException(batch + ": labels hold no target (all -100 after the causal shift)");
                }
                double lossSum;
                if (grads) {
                    qa.zeroGradients();
                    lossSum = LlamaPass.lossAndBackward(m, qa, plan, targets, (float) (1.0 / n), 0);
                } else {
                    lossSum = LlamaPass.loss(m, plan, targets);
                }
                float loss = (float) (lossSum / n);
                if (!Float.isFinite(loss)) {
                    throw new IllegalArgumentException("the loss of " + batch + " is not finite (" + loss + ")");
                }
                w.addFloats("loss", DType.F32, new float[] {loss}, 1);
                lossLine = String.format(Locale.ROOT, "loss %.6f over %d target tokens", loss, n);
                if (grads) {
                    Map<String, float[]> g = qa.gradients();
                    for (AdapterSlot s : qa.slots()) {
                        w.addFloats("grad." + s.keyA(), DType.F32, g.get(s.keyA()), s.a.dim(0), s.a.dim(1));
                        w.addFloats("grad." + s.keyB(), DType.F32, g.get(s.keyB()), s.b.dim(0), s.b.dim(1));
                    }
                }
            }
            w.write(out, paths);   // a temporary name renamed over --out: a reader never sees half of it
            PrintWriter said = spec.commandLine().getOut();
            said.printf(Locale.ROOT, "eval-batch: %sgradients %s; wrote %s%n", lossLine == null ? "no labels, no loss; "
                    : lossLine + "; ", grads ? "of " + 2 * qa.slots().size() + " adapter tensors" : "not asked for",
                    paths.qualified(out));
            said.flush();
        }
    }
}
