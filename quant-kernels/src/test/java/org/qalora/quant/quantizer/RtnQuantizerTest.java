package org.qalora.quant.quantizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import org.junit.jupiter.api.Test;
import org.qalora.quant.QuantizedMatrix;
import org.qalora.quant.gptq.GptqCodec;
import org.qalora.quant.safetensors.Checkpoint;
import org.qalora.quant.safetensors.TensorInfo;
import org.qalora.quant.testing.Fixtures;

class RtnQuantizerTest {
    static final String[] PROJECTIONS = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
        "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};

    /** The fixture gptq-4bit-g32 was made by the reference RTN quantizer: codes, scales and zeros match exactly. */
    @Test
    void reproducesTheFixtureCheckpointBitForBit() throws IOException {
        RtnQuantizer rtn = new RtnQuantizer(4, 32, false);
        try (Checkpoint dense = Checkpoint.open(Fixtures.tinyLlama().toString());
             Checkpoint gptq = Checkpoint.open(Fixtures.tinyLlamaGptq().toString())) {
            for (int layer = 0; layer < 2; layer++) {
                for (String proj : PROJECTIONS) {
                    String prefix = "model.layers." + layer + "." + proj;
                    TensorInfo info = dense.info(prefix + ".weight");
                    QuantizedMatrix ours = rtn.quantize(dense.floats(prefix + ".weight"), info.dim(0), info.dim(1), prefix);
                    QuantizedMatrix reference = GptqCodec.read(gptq, prefix);
                    assertArrayEquals(reference.qweight(), ours.qweight(), prefix + " codes");
                    assertArrayEquals(reference.scales(), ours.scales(), prefix + " scales");
                    assertArrayEquals(reference.zeros(), ours.zeros(), prefix + " zeros");
                    assertEquals(reference, ours);
                }
            }
        }
    }

    @Test
    void roundsHalfToEvenAndHandlesSymmetricAndZeroGroups() {
        // An all-zero weight: every group gets the range [-1, 1] and dequantizes back to exactly 0.
        float[] w = new float[32 * 32];
        QuantizedMatrix zero = new RtnQuantizer(4, 32, false).quantize(w, 32, 32, "zeros");
        assertEquals(2f / 15f, zero.scale(0, 0), 1e-3f); // all-zero group: range [-1, 1]
        assertEquals(0f, zero.weight(0, 5));

        for (int i = 0; i < 32; i++) {
            w[i] = i % 2 == 0 ? 1f : -1f;
        }
        QuantizedMatrix sym = new RtnQuantizer(4, 32, true).quantize(w, 32, 32, "sym");
        assertEquals(8f, sym.zero(0, 0));
        assertEquals(Float.float16ToFloat(Float.floatToFloat16(2f / 15f)), sym.scale(0, 0));

        // rint: 2.5 -> 2, 3.5 -> 4 (banker's rounding, unlike Math.round)
        assertEquals(2, MinMaxParams.code(2.5f, 1f, 0f, 15));
        assertEquals(4, MinMaxParams.code(3.5f, 1f, 0f, 15));
        assertEquals(15, MinMaxParams.code(100f, 1f, 0f, 15));
        assertEquals(0, MinMaxParams.code(-100f, 1f, 3f, 15));
    }

    @Test
    void groupSizeNotDividingTheInputIsAClearError() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new RtnQuantizer(4, 48, false).quantize(new float[64 * 64], 64, 64, "model.layers.0.mlp.up_proj"));
        assertTrue(e.getMessage().contains("model.layers.0.mlp.up_proj") && e.getMessage().contains("group size 48"),
                e.getMessage());
    }
}
