package org.qalora.driver.eval;

import java.io.Serializable;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.io.ShippedHadoopConf;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Backends;
import org.qalora.worker.backend.Precision;
import org.qalora.worker.generate.InferenceModel;

/**
 * Which model to evaluate and where it runs, shipped to executors in the task closure. Every file is read through
 * the job's Hadoop configuration, so a model on HDFS (or behind a nameservice only the job defines) loads there too.
 *
 * @param adapter   PEFT adapter directory, or null
 * @param device    {@code auto|cpu|gpu|gpu:N} as requested ({@link Backends#resolve} decides per task)
 * @param precision null for the device's default
 * @param threads   CPU threads of the backend
 */
public record ModelSpec(String model, String adapter, String device, Precision precision, int threads,
                        ShippedHadoopConf hadoopConf) implements Serializable {
    public ModelSpec {
        device = Backends.checkRequested(device);
        if (precision == Precision.BF16 && device.equals("cpu")) {
            throw new IllegalArgumentException("precision bf16 needs a GPU: the CPU backend computes in fp32 only"
                    + " (use --precision fp32 or auto with --device cpu)");
        }
    }

    /** Equal identities share a loaded model in one JVM. */
    String identity() {
        return model + "|" + adapter + "|" + device + "|" + (precision == null ? "auto" : precision.label()) + "|"
                + threads;
    }

    /** Loads the model on the backend for the task's GPU address ({@code null}: the task has none). */
    InferenceModel open(String taskGpu) {
        Backend backend = Backends.open(Backends.resolve(device, taskGpu), precision, threads);
        try {
            return InferenceModel.load(model, adapter, backend, new HadoopPaths(hadoopConf.get()));
        } catch (RuntimeException | Error e) {
            backend.close();
            throw e;
        }
    }
}
