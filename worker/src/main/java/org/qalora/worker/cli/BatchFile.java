package org.qalora.worker.cli;

import java.io.IOException;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsFile;
import org.qalora.quant.safetensors.TensorInfo;

/**
 * The {@code eval-batch} input: a safetensors file with {@code input_ids} and optional {@code labels}, int32 or
 * int64 {@code [batch, seq]}.
 */
record BatchFile(int batch, int seqLen, int[] inputIds, int[] labels) {

    static BatchFile read(String location) throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(location)) {
            if (!f.contains("input_ids")) {
                throw new IllegalArgumentException(location + ": tensor input_ids [batch, seq] is missing");
            }
            TensorInfo ids = f.info("input_ids");
            if (ids.rank() != 2) {
                throw new IllegalArgumentException(location + ": input_ids must be [batch, seq], got " + ids.shapeString());
            }
            int b = ids.dim(0), t = ids.dim(1);
            int[] labels = null;
            if (f.contains("labels")) {
                if (!f.info("labels").hasShape(b, t)) {
                    throw new IllegalArgumentException(location + ": labels has shape " + f.info("labels").shapeString()
                            + " but input_ids is " + ids.shapeString());
                }
                labels = integers(f, "labels", location);
            }
            return new BatchFile(b, t, integers(f, "input_ids", location), labels);
        }
    }

    private static int[] integers(SafetensorsFile f, String name, String location) throws IOException {
        DType type = f.info(name).dtype();
        if (type == DType.I32) {
            return f.ints(name);
        }
        if (type != DType.I64) {
            throw new IllegalArgumentException(location + ": " + name + " is " + type + ", expected I32 or I64");
        }
        long[] wide = f.longs(name);
        int[] out = new int[wide.length];
        for (int i = 0; i < wide.length; i++) {
            if (wide[i] < Integer.MIN_VALUE || wide[i] > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(location + ": " + name + " value " + wide[i] + " at flat index " + i
                        + " does not fit a token id");
            }
            out[i] = (int) wide[i];
        }
        return out;
    }
}
