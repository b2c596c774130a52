package org.qalora.quant.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.List;
import org.junit.jupiter.api.Test;

class ShardLayoutTest {
    private static TensorInfo t(String name, long bytes) {
        return new TensorInfo(name, DType.U8, new long[] {bytes});
    }

    /** HF's split: fill until the next tensor would pass the limit; an oversized tensor alone, where it occurred. */
    @Test
    void splitsAsHuggingfaceHubDoes() {
        ShardLayout l = ShardLayout.plan(List.of(t("a", 40), t("b", 50), t("c", 20), t("big", 300), t("d", 90),
                t("e", 10)), 100);
        // a+b = 90; c would make 110 -> new shard [c]; big > 100 -> its own shard, appended before [c] closes;
        // d would make 110 -> [c] closes; [d, e] = 100 fits exactly.
        assertEquals(4, l.count());
        assertEquals(List.of("a", "b"), l.shard(0).stream().map(TensorInfo::name).toList());
        assertEquals(List.of("big"), l.shard(1).stream().map(TensorInfo::name).toList());
        assertEquals(List.of("c"), l.shard(2).stream().map(TensorInfo::name).toList());
        assertEquals(List.of("d", "e"), l.shard(3).stream().map(TensorInfo::name).toList());
        assertEquals("model-00002-of-00004.safetensors", l.fileName(1));
        assertEquals(510, l.totalSize());
    }

    @Test
    void oneShardIsTheSingleFileWithoutIndex() {
        ShardLayout l = ShardLayout.plan(List.of(t("a", 40), t("b", 50)), 1000);
        assertEquals(1, l.count());
        assertEquals(Checkpoint.SINGLE_FILE, l.fileName(0));
        assertFalse(l.sharded());
        assertThrows(IllegalStateException.class, l::indexJson);
    }

    /** The index HF transformers reads: metadata.total_size and a sorted weight_map of every tensor to its file. */
    @Test
    void theIndexIsValidHfJson() throws IOException {
        ShardLayout l = ShardLayout.plan(List.of(t("z.w", 60), t("a.w", 60), t("m.w", 10)), 100);
        JsonNode index = new ObjectMapper().readTree(l.indexJson());
        assertEquals(130, index.get("metadata").get("total_size").asLong());
        JsonNode map = index.get("weight_map");
        assertEquals(List.of("a.w", "m.w", "z.w"), List.copyOf(iterable(map.fieldNames())));
        assertEquals("model-00001-of-00002.safetensors", map.get("z.w").asText());
        assertEquals("model-00002-of-00002.safetensors", map.get("a.w").asText());
        assertEquals("model-00002-of-00002.safetensors", map.get("m.w").asText());
        assertTrue(new String(l.indexJson(), java.nio.charset.StandardCharsets.UTF_8).endsWith("}\n"));
    }

    private static <T> List<T> iterable(java.util.Iterator<T> it) {
        List<T> out = new java.util.ArrayList<>();
        it.forEachRemaining(out::add);
        return out;
    }

    @Test
    void shardSizesParseAsHfSpellsThem() {
        assertEquals(5_000_000_000L, ShardSize.parse(ShardSize.DEFAULT, "--max-shard-size"));
        assertEquals(500_000_000L, ShardSize.parse("500MB", "--max-shard-size"));
        assertEquals(2L << 30, ShardSize.parse("2GiB", "--max-shard-size"));
        assertEquals(10_000L, ShardSize.parse("10kb", "--max-shard-size") * 8);
        assertEquals(123L, ShardSize.parse("123", "--max-shard-size"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ShardSize.parse("1.5GB", "--max-shard-size"));
        assertTrue(e.getMessage().contains("--max-shard-size '1.5GB' is not a size") && e.getMessage().contains("5GB"),
                e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ShardSize.parse("0MB", "--max-shard-size"));
    }
}
