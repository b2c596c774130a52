package org.qalora.quant.safetensors;

import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Which tensors go into which shard file, decided before any tensor is computed, the way HF transformers
 * ({@code huggingface_hub.split_torch_state_dict_into_shards}) decides it: tensors in the caller's order (the
 * model's state-dict order) fill the current shard until the next one would take it over {@code maxShardBytes};
 * a tensor larger than the limit alone gets a shard of its own, placed where it occurred. One shard is written as
 * {@code model.safetensors} without an index (as HF does); n shards as {@code model-0000k-of-0000n.safetensors}
 * plus {@code model.safetensors.index.json}. Because the layout is a pure function of the tensor list, separate
 * tasks can each write one shard and agree on every file name and on the index.
 */
public final class ShardLayout implements Serializable {
    private static final long serialVersionUID = 1L;

    private final List<List<TensorInfo>> shards;

    private ShardLayout(List<List<TensorInfo>> shards) {
        this.shards = shards;
    }

    /** @param inOrder the tensors in state-dict order (names unique) */
    public static ShardLayout plan(List<TensorInfo> inOrder, long maxShardBytes) {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("max shard size must be positive, got " + maxShardBytes);
        }
        List<List<TensorInfo>> shards = new ArrayList<>();
        List<TensorInfo> current = new ArrayList<>();
        long currentBytes = 0;
        java.util.Set<String> names = new java.util.HashSet<>();
        for (TensorInfo t : inOrder) {
            if (!names.add(t.name())) {
                throw new IllegalArgumentException("tensor " + t.name() + " listed twice");
            }
            long size = t.byteSize();
            if (size > maxShardBytes) {
                shards.add(List.of(t));
                continue;
            }
            if (currentBytes + size > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(t);
            currentBytes += size;
        }
        if (!current.isEmpty() || shards.isEmpty()) {
            shards.add(current);
        }
        List<List<TensorInfo>> frozen = new ArrayList<>();
        for (List<TensorInfo> s : shards) {
            frozen.add(List.copyOf(s));
        }
        return new ShardLayout(List.copyOf(frozen));
    }

    public int count() { return shards.size(); }

    /** The tensors of shard {@code i} (0-based), in state-dict order. */
    public List<TensorInfo> shard(int i) { return shards.get(i); }

    /** {@code model.safetensors} for a single shard, else {@code model-0000k-of-0000n.safetensors} (k 1-based). */
    public String fileName(int i) {
        return shards.size() == 1 ? Checkpoint.SINGLE_FILE
                : String.format("model-%05d-of-%05d.safetensors", i + 1, shards.size());
    }

    /** The sum of all tensors' data bytes: the index's {@code metadata.total_size}. */
    public long totalSize() {
        long total = 0;
        for (List<TensorInfo> s : shards) {
            for (TensorInfo t : s) {
                total += t.byteSize();
            }
        }
        return total;
    }

    /** Whether an index file is written (more than one shard). */
    public boolean sharded() { return shards.size() > 1; }

    /** {@code model.safetensors.index.json} (see {@link SafetensorsWriter#indexJson}); only when {@link #sharded()}. */
    public byte[] indexJson() throws IOException {
        if (!sharded()) {
            throw new IllegalStateException("a single-file checkpoint has no index");
        }
        Map<String, String> weightMap = new LinkedHashMap<>();
        for (int i = 0; i < shards.size(); i++) {
            for (TensorInfo t : shards.get(i)) {
                weightMap.put(t.name(), fileName(i));
            }
        }
        return SafetensorsWriter.indexJson(totalSize(), weightMap);
    }
}
