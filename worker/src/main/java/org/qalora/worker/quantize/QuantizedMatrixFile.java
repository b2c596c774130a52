package org.qalora.worker.quantize;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.qalora.quant.QuantizedMatrix;

/**
 * A {@link QuantizedMatrix} as raw bits (packed codes, float32 scales and zeros), for handing a GPTQ result from
 * the task that solved it to the tasks of later calibration stages: exact, unlike the checkpoint format's fp16
 * scales, so those tasks run the very weights single-process GPTQ keeps in memory.
 */
final class QuantizedMatrixFile {
    private static final int MAGIC = 0x514d4631; // "QMF1"

    private QuantizedMatrixFile() {}

    static void write(QuantizedMatrix m, OutputStream out) throws IOException {
        DataOutputStream data = new DataOutputStream(out);
        data.writeInt(MAGIC);
        data.writeInt(m.outFeatures());
        data.writeInt(m.inFeatures());
        data.writeInt(m.bits());
        data.writeInt(m.groupSize());
        ByteBuffer codes = ByteBuffer.allocate(4 * m.qweight().length).order(ByteOrder.LITTLE_ENDIAN);
        codes.asIntBuffer().put(m.qweight());
        data.write(codes.array());
        for (float[] values : new float[][] {m.scales(), m.zeros()}) {
            ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
            b.asFloatBuffer().put(values);
            data.write(b.array());
        }
        data.flush();
    }

    static QuantizedMatrix read(InputStream in, String where) throws IOException {
        DataInputStream data = new DataInputStream(in);
        if (data.readInt() != MAGIC) {
            throw new IOException(where + " is not a quantized-projection file (bad magic)");
        }
        int out = data.readInt();
        int inFeatures = data.readInt();
        int bits = data.readInt();
        int groupSize = data.readInt();
        if (out <= 0 || inFeatures <= 0 || groupSize <= 0 || inFeatures % groupSize != 0) {
            throw new IOException(where + ": corrupt header [" + out + ", " + inFeatures + "], group " + groupSize);
        }
        int words = org.qalora.quant.PackedCodes.wordsFor(inFeatures, bits) * out;
        int params = inFeatures / groupSize * out;
        int[] qweight = new int[words];
        float[] scales = new float[params];
        float[] zeros = new float[params];
        byte[] bytes = new byte[4 * words];
        data.readFully(bytes);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(qweight);
        bytes = new byte[4 * params];
        data.readFully(bytes);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(scales);
        data.readFully(bytes);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(zeros);
        return new QuantizedMatrix(out, inFeatures, bits, groupSize, qweight, scales, zeros);
    }
}
