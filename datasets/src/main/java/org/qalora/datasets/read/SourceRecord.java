package org.qalora.datasets.read;

import java.io.Serializable;

/**
 * One validated training record, before templating.
 *
 * @param recordId    where it came from: {@code <file>:<line>} for JSONL, {@code <file>:<element>} (1-based array
 *                    index) for a JSON array, {@code <file>#<row>} (0-based) for Parquet
 * @param instruction Alpaca instruction; null for FLAN records (their inputs are already a full prompt)
 * @param input       Alpaca input ("" when absent) or FLAN inputs
 * @param output      Alpaca output or FLAN targets; never empty
 */
public record SourceRecord(String recordId, String instruction, String input, String output) implements Serializable {
}
