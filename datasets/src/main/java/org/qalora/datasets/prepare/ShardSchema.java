package org.qalora.datasets.prepare;

import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.MessageTypeParser;

/**
 * The Parquet schema of a tokenized shard. Lists use the standard 3-level LIST layout so Spark reads
 * {@code input_ids} and {@code labels} as {@code array<int>}.
 */
public final class ShardSchema {
    private ShardSchema() {}

    public static final String INPUT_IDS = "input_ids";
    public static final String LABELS = "labels";
    public static final String NUM_TOKENS = "num_tokens";
    public static final String NUM_TARGET_TOKENS = "num_target_tokens";
    public static final String RECORD_ID = "record_id";

    public static final MessageType SCHEMA = MessageTypeParser.parseMessageType("""
            message qalora_shard {
              required group input_ids (LIST) { repeated group list { required int32 element; } }
              required group labels (LIST) { repeated group list { required int32 element; } }
              required int32 num_tokens;
              required int32 num_target_tokens;
              required binary record_id (STRING);
            }
            """);
}
