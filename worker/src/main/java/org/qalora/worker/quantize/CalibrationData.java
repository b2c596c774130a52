package org.qalora.worker.quantize;

import java.io.IOException;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.safetensors.TensorInfo;

/**
 * GPTQ calibration token sequences: a safetensors file with one tensor {@code input_ids}, I64 or I32
 * {@code [n, seq]} (n sequences of seq token ids each; the reference uses 128 x 2048 random windows of C4).
 *
 * @param ids {@code [n][seq]}
 */
public record CalibrationData(int[][] ids) {
    public static final String TENSOR = "input_ids";

    public int sequences() { return ids.length; }

    public int seqLen() { return ids[0].length; }

    /** Reads and validates the file: every id must be below {@code vocabSize}. */
    public static CalibrationData read(String location, int vocabSize, HadoopPaths paths) throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(location, paths)) {
            if (!f.contains(TENSOR)) {
                throw new FormatException(location + ": calibration file has no tensor \"" + TENSOR
                        + "\"; it must hold input_ids, I64 or I32 [sequences, seq_len]");
            }
            TensorInfo info = f.info(TENSOR);
            if (info.rank() != 2 || info.dim(0) == 0 || info.dim(1) == 0 || info.dtype().isFloatingPoint()) {
                throw new FormatException(location + ": tensor " + TENSOR + " is " + info.dtype() + " "
                        + info.shapeString() + ", expected I64 or I32 [sequences, seq_len] with both dimensions > 0");
            }
            int n = info.dim(0);
            int seq = info.dim(1);
            long[] flat = f.longs(TENSOR);
            int[][] ids = new int[n][seq];
            for (int s = 0; s < n; s++) {
                for (int t = 0; t < seq; t++) {
                    long id = flat[s * seq + t];
                    if (id < 0 || id >= vocabSize) {
                        throw new FormatException(location + ": " + TENSOR + "[" + s + ", " + t + "] = " + id
                                + " is outside the model's vocabulary [0, " + vocabSize + ")");
                    }
                    ids[s][t] = (int) id;
                }
            }
            return new CalibrationData(ids);
        }
    }
}
