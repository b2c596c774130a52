package org.qalora.quant.gptq;

import java.io.IOException;
import org.qalora.quant.PackedCodes;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.GptqConfig.CheckpointFormat;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.quant.safetensors.TensorInfo;

/**
 * Reads and writes one GPTQ-quantized projection ({@code prefix} = {@code model.layers.0.self_attn.q_proj}) as the
 * tensors {@code prefix.qweight}, {@code .qzeros}, {@code .scales}, {@code .g_idx}; see docs/FORMATS.md,
 * "Quantized checkpoints".
 *
 * <pre>
 *   qweight  I32 [I*bits/32, O]   codes packed along the input dim (PackedCodes, 3 bits: 10-1-10-1-10)
 *   qzeros   I32 [G, O*bits/32]   v1: zero-1 packed along the output dim; v2: zero packed
 *            F32 [G, O]           qalora_float_zeros: real-valued zeros, never rounded
 *   scales   F16 [G, O]
 *   g_idx    I32 [I]              must be i / groupSize (contiguous groups); may be absent
 * </pre>
 */
public final class GptqCodec {
    private GptqCodec() {}

    /** True when the checkpoint holds {@code prefix} as a GPTQ projection (rather than a dense {@code .weight}). */
    public static boolean isQuantized(Checkpoint checkpoint, String prefix) {
        return checkpoint.contains(prefix + ".qweight");
    }

    /** Reads a projection with the quantization settings of the checkpoint's own config. */
    public static QuantizedMatrix read(Checkpoint checkpoint, String prefix) throws IOException {
        GptqConfig config = checkpoint.config().quantization();
        if (config == null) {
            throw new FormatException(checkpoint.directory() + ": config.json has no quantization_config and there is no"
                    + " quantize_config.json, so " + prefix + " cannot be decoded as GPTQ");
        }
        return read(checkpoint, prefix, config);
    }

    /** Reads a projection into the canonical form (true zeros, scales widened from fp16). */
    public static QuantizedMatrix read(Checkpoint checkpoint, String prefix, GptqConfig config) throws IOException {
        int bits = config.bits();
        String qweightName = prefix + ".qweight";
        String scalesName = prefix + ".scales";
        String qzerosName = prefix + ".qzeros";
        for (String name : new String[] {qweightName, scalesName, qzerosName}) {
            if (!checkpoint.contains(name)) {
                throw new FormatException(checkpoint.directory() + ": tensor " + name + " is missing: " + prefix
                        + " is not a complete GPTQ projection");
            }
        }
        TensorInfo qweightInfo = checkpoint.info(qweightName);
        TensorInfo scalesInfo = checkpoint.info(scalesName);
        String where = checkpoint.directory() + ": tensor ";
        if (qweightInfo.dtype() != DType.I32 || qweightInfo.rank() != 2) {
            throw new FormatException(where + qweightName + " is " + qweightInfo.dtype() + " " + qweightInfo.shapeString()
                    + ", expected I32 [in*bits/32, out]");
        }
        if (!scalesInfo.dtype().isFloatingPoint() || scalesInfo.rank() != 2) {
            throw new FormatException(where + scalesName + " is " + scalesInfo.dtype() + " " + scalesInfo.shapeString()
                    + ", expected F16 [groups, out]");
        }
        int out = qweightInfo.dim(1);
        if ((long) qweightInfo.dim(0) * 32 % bits != 0) {
            throw new FormatException(where + qweightName + " has " + qweightInfo.dim(0) + " rows, not a whole number of "
                    + bits + "-bit codes: bits in the config (" + bits + ") do not match the tensor");
        }
        int in = (int) ((long) qweightInfo.dim(0) * 32 / bits);
        int groupSize = config.groupSizeFor(in);
        if (in % groupSize != 0) {
            throw new FormatException(where + qweightName + ": group size " + groupSize + " does not divide the input"
                    + " dimension " + in + "; the config's group_size does not fit this checkpoint");
        }
        int groups = in / groupSize;
        if (!scalesInfo.hasShape(groups, out)) {
            throw new FormatException(where + scalesName + " has shape " + scalesInfo.shapeString() + ", expected ["
                    + groups + ", " + out + "] for in=" + in + ", out=" + out + ", group size " + groupSize);
        }
        checkGroupIndex(checkpoint, prefix, config, in, groupSize);

        int[] qweight = checkpoint.ints(qweightName);   // [in*bits/32, out]
        float[] scales = checkpoint.floats(scalesName);  // [G, O]
        float[] zeros = readZeros(checkpoint, qzerosName, config.format(), bits, groups, out); // [G, O]
        try {
            return new QuantizedMatrix(out, in, bits, groupSize, qweight, scales, zeros);
        } catch (IllegalArgumentException e) {
            throw new FormatException(checkpoint.directory() + ": " + prefix + ": " + e.getMessage(), e);
        }
    }

    private static void checkGroupIndex(Checkpoint checkpoint, String prefix, GptqConfig config, int in, int groupSize)
            throws IOException {
        String name = prefix + ".g_idx";
        if (!checkpoint.contains(name)) {
            return; // GPTQModel may omit g_idx for contiguous groups
        }
        TensorInfo info = checkpoint.info(name);
        if (!info.hasShape(in) || (info.dtype() != DType.I32 && info.dtype() != DType.I64)) {
            throw new FormatException(checkpoint.directory() + ": tensor " + name + " is " + info.dtype() + " "
                    + info.shapeString() + ", expected I32 [" + in + "]");
        }
        long[] gIdx = checkpoint.longs(name);
        for (int i = 0; i < in; i++) {
            if (gIdx[i] != i / groupSize) {
                String why = config.descAct() && !config.staticGroups()
                        ? "this is an act-order (desc_act) checkpoint without static groups"
                        : "the groups are not contiguous";
                throw new FormatException(checkpoint.directory() + ": tensor " + name + ": input channel " + i
                        + " is in group " + gIdx[i] + " but contiguous groups put it in " + (i / groupSize) + "; " + why
                        + ". QA-LoRA pools contiguous groups: re-quantize with desc_act=false or static_groups=true");
            }
        }
    }

    private static float[] readZeros(Checkpoint checkpoint, String name, CheckpointFormat format, int bits, int groups,
                                     int out) throws IOException {
        TensorInfo info = checkpoint.info(name);
        String where = checkpoint.directory() + ": tensor " + name;
        if (format == CheckpointFormat.QALORA_FLOAT_ZEROS) {
            // The author's fork stores fp16 zeros; ours are F32. Both are real-valued [G, O].
            if (!info.dtype().isFloatingPoint() || !info.hasShape(groups, out)) {
                throw new FormatException(where + " is " + info.dtype() + " " + info.shapeString() + ", but the config says "
                        + "qalora_float_zeros, which stores F32 [" + groups + ", " + out + "] real-valued zeros");
            }
            return checkpoint.floats(name);
        }
        int wordsPerRow = PackedCodes.wordsFor(out, bits);
        if (info.dtype() != DType.I32 || !info.hasShape(groups, wordsPerRow)) {
            String hint = info.dtype().isFloatingPoint() && info.hasShape(groups, out)
                    ? " (it looks like float zeros of a merged QA-LoRA model: set checkpoint_format to qalora_float_zeros)" : "";
            throw new FormatException(where + " is " + info.dtype() + " " + info.shapeString() + ", expected packed I32 ["
                    + groups + ", " + wordsPerRow + "] for " + format.jsonName() + hint);
        }
        int[] words = checkpoint.ints(name);
        int[] stored = PackedCodes.unpackColumns(words, groups, out, bits); // [G, O]
        float[] zeros = new float[stored.length];
        int maxq = (1 << bits) - 1;
        for (int k = 0; k < groups; k++) {
            for (int o = 0; o < out; o++) {
                int field = stored[k * out + o];
                if (format == CheckpointFormat.GPTQ) {
                    if (field == maxq && !isTopField(o, bits)) {
                        throw new FormatException(where + ": group " + k + ", output " + o + " stores -1 in the v1 format"
                                + " (a true zero point of 0). v1 writers pack that -1 by OR-ing or borrowing into the"
                                + " neighbouring fields of the same int32 word, so the zeros of outputs above " + o
                                + " in that word cannot be trusted. Re-quantize (qalora quantize writes gptq_v2) or convert"
                                + " with the tool that wrote it to gptq_v2");
                    }
                    zeros[k * out + o] = (field + 1) & maxq;
                } else {
                    zeros[k * out + o] = field;
                }
            }
        }
        return zeros;
    }

    /**
     * Adds {@code prefix.qweight/.qzeros/.scales/.g_idx} for {@code m} in the given format.
     *
     * <p>Scales are stored as fp16 and must already be fp16 values (quantizers round them; a silent rounding here
     * would change the weights). v1 and v2 need integer zeros in {@code [0, 2^bits - 1]}; v1 additionally cannot
     * store a zero of 0 (its "-1" would spill into neighbouring fields, see {@link #read}), so such a matrix must be
     * written as v2. Float zeros store any real zero exactly as F32.
     */
    public static void write(SafetensorsWriter writer, String prefix, QuantizedMatrix m, CheckpointFormat format) {
        int in = m.inFeatures();
        int out = m.outFeatures();
        int groups = m.groups();
        float[] scales = m.scales();
        for (int j = 0; j < scales.length; j++) {
            if (Float.float16ToFloat(Float.floatToFloat16(scales[j])) != scales[j]) {
                throw new IllegalArgumentException(prefix + ": scale of group " + (j / out) + ", output " + (j % out) + " is "
                        + scales[j] + ", not an fp16 value; round scales to fp16 before computing codes (as the quantizers do)");
            }
        }
        // Validate and pack the zeros before adding anything, so a refused matrix leaves the writer untouched.
        int[] packedZeros = format == CheckpointFormat.QALORA_FLOAT_ZEROS ? null : packIntegerZeros(prefix, m, format);
        writer.addInts(prefix + ".qweight", m.qweight(), PackedCodes.wordsFor(in, m.bits()), out);
        if (packedZeros == null) {
            writer.addFloats(prefix + ".qzeros", DType.F32, m.zeros(), groups, out);
        } else {
            writer.addInts(prefix + ".qzeros", packedZeros, groups, PackedCodes.wordsFor(out, m.bits()));
        }
        writer.addFloats(prefix + ".scales", DType.F16, scales, groups, out);
        int[] gIdx = new int[in];
        for (int i = 0; i < in; i++) {
            gIdx[i] = i / m.groupSize();
        }
        writer.addInts(prefix + ".g_idx", gIdx, in);
    }

    private static int[] packIntegerZeros(String prefix, QuantizedMatrix m, CheckpointFormat format) {
        float[] zeros = m.zeros();
        int out = m.outFeatures();
        int[] stored = new int[zeros.length]; // [G, O]
        for (int j = 0; j < zeros.length; j++) {
            float z = zeros[j];
            if (z != Math.rint(z) || z < 0 || z > m.maxCode()) {
                throw new IllegalArgumentException(prefix + ": zero point " + z + " (group " + (j / out) + ", output "
                        + (j % out) + ") is not an integer in [0, " + m.maxCode() + "]; " + format.jsonName()
                        + " packs integer zeros: write a merged QA-LoRA model as qalora_float_zeros");
            }
            if (format == CheckpointFormat.GPTQ) {
                if (z == 0) {
                    throw new IllegalArgumentException(prefix + ": zero point 0 (group " + (j / out) + ", output "
                            + (j % out) + ") cannot be stored in the v1 (gptq) format, whose zero-1 = -1 corrupts"
                            + " neighbouring packed fields; write gptq_v2 instead");
                }
                stored[j] = (int) z - 1;
            } else {
                stored[j] = (int) z;
            }
        }
        return PackedCodes.packColumns(stored, m.groups(), out, m.bits());
    }

    /**
     * Whether packed field {@code index} is the highest one of its int32 word, i.e. a v1 "-1" written there cannot
     * spill into a neighbour. In the 3-bit layout those are v10 and v21 (which straddle words but end at a word's
     * top once reassembled) and v31.
     */
    static boolean isTopField(int index, int bits) {
        if (bits == 3) {
            int j = index & 31;
            return j == 10 || j == 21 || j == 31;
        }
        int perWord = 32 / bits;
        return index % perWord == perWord - 1;
    }
}
