package org.qalora.quant.gptq;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.config.GptqConfig;
import org.qalora.quant.config.GptqConfig.CheckpointFormat;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.FormatException;
import org.qalora.quant.io.HadoopPaths;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.DType;
import org.qalora.quant.safetensors.SafetensorsWriter;
import org.qalora.quant.testing.Fixtures;

/** Write-then-read for v1, v2 and float zeros at 2, 3, 4 and 8 bits and several group sizes. */
class GptqCodecRoundTripTest {
    @TempDir
    Path dir;

    static Stream<Arguments> cases() {
        Stream.Builder<Arguments> b = Stream.builder();
        for (CheckpointFormat f : CheckpointFormat.values()) {
            for (int bits : new int[] {2, 3, 4, 8}) {
                for (int group : new int[] {32, 64, 128}) {
                    b.add(Arguments.of(f, bits, group));
                }
            }
        }
        return b.build();
    }

    /** A random matrix whose zeros suit the format: v1 never 0, float zeros real-valued and out of range. */
    static QuantizedMatrix randomMatrix(Random rnd, int out, int in, int bits, int group, CheckpointFormat f) {
        int maxq = (1 << bits) - 1;
        int[] codes = new int[out * in];
        for (int j = 0; j < codes.length; j++) {
            codes[j] = rnd.nextInt(maxq + 1);
        }
        int groups = in / group;
        float[] scales = new float[groups * out];
        float[] zeros = new float[groups * out];
        for (int j = 0; j < scales.length; j++) {
            scales[j] = Float.float16ToFloat(Float.floatToFloat16(0.001f + rnd.nextFloat() * 0.05f));
            zeros[j] = switch (f) {
                case GPTQ -> 1 + rnd.nextInt(maxq);
                case GPTQ_V2 -> rnd.nextInt(maxq + 1);
                case QALORA_FLOAT_ZEROS -> (float) (rnd.nextGaussian() * maxq);
            };
        }
        return QuantizedMatrix.fromCodes(out, in, bits, group, codes, scales, zeros);
    }

    private String writeModel(String name, GptqConfig config, QuantizedMatrix... layers) throws IOException {
        Path model = dir.resolve(name);
        Files.createDirectories(model);
        SafetensorsWriter w = new SafetensorsWriter();
        for (int l = 0; l < layers.length; l++) {
            GptqCodec.write(w, "model.layers." + l + ".mlp.down_proj", layers[l], config.format());
        }
        w.write(model.resolve(Checkpoint.SINGLE_FILE).toString());
        LlamaConfig.read(Fixtures.tinyLlama().toString()).withQuantization(config).write(model.toString(), HadoopPaths.defaults());
        return model.toString();
    }

    @ParameterizedTest(name = "{0} {1}-bit g{2}")
    @MethodSource("cases")
    void roundTrips(CheckpointFormat format, int bits, int group) throws IOException {
        Random rnd = new Random(bits * 1000L + group + format.ordinal());
        QuantizedMatrix m = randomMatrix(rnd, 96, 256, bits, group, format);
        String model = writeModel("m", GptqConfig.of(bits, group).withFormat(format), m);
        try (Checkpoint c = Checkpoint.open(model)) {
            QuantizedMatrix back = GptqCodec.read(c, "model.layers.0.mlp.down_proj");
            assertEquals(m, back);
            DType zerosType = c.info("model.layers.0.mlp.down_proj.qzeros").dtype();
            assertEquals(format == CheckpointFormat.QALORA_FLOAT_ZEROS ? DType.F32 : DType.I32, zerosType);
        }
    }

    @Test
    void v1StoresZeroMinusOneLikeTheFixture() throws IOException {
        try (Checkpoint fixture = Checkpoint.open(Fixtures.tinyLlamaGptq().toString())) {
            String prefix = "model.layers.0.self_attn.k_proj";
            QuantizedMatrix m = GptqCodec.read(fixture, prefix);
            SafetensorsWriter w = new SafetensorsWriter();
            GptqCodec.write(w, prefix, m, CheckpointFormat.GPTQ);
            Path file = dir.resolve("k.safetensors");
            w.write(file.toString());
            try (var written = org.qalora.quant.safetensors.SafetensorsFile.open(file.toString())) {
                for (String t : new String[] {".qweight", ".qzeros", ".scales", ".g_idx"}) {
                    assertTrue(java.util.Arrays.equals(fixture.bytes(prefix + t), written.bytes(prefix + t)), t);
                }
            }
        }
    }

    @Test
    void v1RefusesZeroPointZeroAndIntegerFormatsRefuseRealZeros() {
        QuantizedMatrix v2 = randomMatrix(new Random(1), 32, 64, 4, 32, CheckpointFormat.GPTQ_V2);
        float[] zeros = v2.zeros().clone();
        zeros[3] = 0;
        SafetensorsWriter w = new SafetensorsWriter();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GptqCodec.write(w, "p", v2.withZeros(zeros), CheckpointFormat.GPTQ));
        assertTrue(e.getMessage().contains("gptq_v2"), e.getMessage());
        zeros[3] = 2.5f;
        e = assertThrows(IllegalArgumentException.class,
                () -> GptqCodec.write(w, "p", v2.withZeros(zeros), CheckpointFormat.GPTQ_V2));
        assertTrue(e.getMessage().contains("qalora_float_zeros"), e.getMessage());
        assertTrue(w.names().isEmpty(), "nothing half-added");
    }

    /** Rewrites the v1 qzeros word 0 of a fresh model with {@code edit} and decodes it. */
    private QuantizedMatrix readWithEditedV1Zeros(String name, java.util.function.IntUnaryOperator edit) throws IOException {
        QuantizedMatrix m = randomMatrix(new Random(2), 32, 64, 4, 32, CheckpointFormat.GPTQ);
        GptqConfig v1 = GptqConfig.of(4, 32).withFormat(CheckpointFormat.GPTQ);
        String model = writeModel(name, v1, m);
        try (Checkpoint c = Checkpoint.open(model)) {
            int[] qzeros = c.ints("model.layers.0.mlp.down_proj.qzeros"); // [2, 4]
            qzeros[0] = edit.applyAsInt(qzeros[0]);
            SafetensorsWriter w = new SafetensorsWriter();
            for (String tensor : c.names()) {
                if (tensor.endsWith(".qzeros")) {
                    w.addInts(tensor, qzeros, 2, 4);
                } else {
                    w.copy(c, tensor);
                }
            }
            Path edited = dir.resolve(name + "-edited");
            Files.createDirectories(edited);
            w.write(edited.resolve("model.safetensors").toString());
            Files.copy(Path.of(model, "config.json"), edited.resolve("config.json"));
            try (Checkpoint e = Checkpoint.open(edited.toString())) {
                return GptqCodec.read(e, "model.layers.0.mlp.down_proj");
            }
        }
    }

    @Test
    void detectsTheV1ZeroMinusOneCorruption() {
        // A v1 word in which output 2 stored -1 (zero 0): AutoGPTQ ORs it in, so fields 2..7 all read 15.
        FormatException e = assertThrows(FormatException.class, () -> readWithEditedV1Zeros("or", w -> w | (-1 << 8)));
        assertTrue(e.getMessage().contains("qzeros") && e.getMessage().contains("output 2"), e.getMessage());
    }

    @Test
    void aV1ZeroOfZeroInTheTopFieldDecodesCleanly() throws IOException {
        // Output 7 is the top 4-bit field of word 0: its -1 cannot spill, and (15 + 1) & 15 = 0.
        QuantizedMatrix m = readWithEditedV1Zeros("top", w -> w | (0xF << 28));
        assertEquals(0f, m.zero(0, 7));
    }

    @Test
    void rejectsActOrderGroupIndexNamingTheTensor() throws IOException {
        QuantizedMatrix m = randomMatrix(new Random(3), 32, 64, 4, 32, CheckpointFormat.GPTQ_V2);
        GptqConfig actOrder = new GptqConfig(4, 32, false, true, false, 0.01, true, CheckpointFormat.GPTQ_V2);
        SafetensorsWriter w = new SafetensorsWriter();
        String p = "model.layers.0.mlp.down_proj";
        w.addInts(p + ".qweight", m.qweight(), 8, 32);
        w.addInts(p + ".qzeros", org.qalora.quant.PackedCodes.packColumns(toInts(m.zeros()), 2, 32, 4), 2, 4);
        w.addFloats(p + ".scales", DType.F16, m.scales(), 2, 32);
        int[] gIdx = new int[64];
        for (int i = 0; i < 64; i++) {
            gIdx[i] = (i * 7 % 64) / 32; // scattered groups, as desc_act produces
        }
        w.addInts(p + ".g_idx", gIdx, 64);
        Path model = dir.resolve("actorder");
        Files.createDirectories(model);
        w.write(model.resolve("model.safetensors").toString());
        LlamaConfig.read(Fixtures.tinyLlama().toString()).withQuantization(actOrder).write(model.toString(), HadoopPaths.defaults());
        try (Checkpoint c = Checkpoint.open(model.toString())) {
            FormatException e = assertThrows(FormatException.class, () -> GptqCodec.read(c, p));
            assertTrue(e.getMessage().contains(p + ".g_idx") && e.getMessage().contains("act-order"), e.getMessage());
        }
    }

    private static int[] toInts(float[] values) {
        int[] out = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (int) values[i];
        }
        return out;
    }
}
