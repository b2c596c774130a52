package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.qalora.driver.state.AdapterTensors;

/**
 * Splits an adapter's keys into contiguous ranges of about equal bytes, one per averaging task and part file
 * ({@link #count} says how many: {@code --averaging-parts}). A LoRA module's A
 * and B always fall in one range (the factor-discordance measure needs both), so a cut is only placed where no
 * module straddles it. The split depends on the layout and the requested count alone (never on executors or
 * timing), and each element's average does not depend on the split at all, so any split gives the same bits.
 */
public final class KeyRanges {
    private KeyRanges() {}

    /**
     * The state bytes per part that {@code --averaging-parts 0} aims at: a task's write (its part, with SHA-256 and
     * hsync) and read (its keys of every update) shrink with the part, and more parts than executors keep spare
     * cores busy; below a few tens of MB per part the per-task costs (opening every update, a file per part) start
     * to show. 64 MiB gives 16 parts at LLaMA-7B r64 (1.07 GB of weights and moments): docs/PERFORMANCE.md, "Round
     * traffic at LLaMA-7B adapter shapes".
     */
    public static final long AUTO_PART_BYTES = 64L << 20;

    /** The bytes of a state laid out as {@code layout}: weights, Adam m and v in fp32 (headers aside). */
    public static long stateBytes(Map<String, long[]> layout) {
        long total = 0;
        for (long[] shape : layout.values()) {
            total += 3 * 4 * AdapterTensors.numel(shape);
        }
        return total;
    }

    /**
     * The number of key ranges to ask {@link #split} for: {@code requested} when positive ({@code --averaging-parts
     * N}), else (0) one per {@link #AUTO_PART_BYTES} of the state and at least one per slot. A function of the
     * layout and the settings alone; the averaged bits do not depend on it (see the class comment), so a resumed run
     * may use another count than the run it resumes.
     */
    public static int count(Map<String, long[]> layout, int requested, int slots) {
        if (requested < 0) {
            throw new IllegalArgumentException("the number of averaging parts must be >= 0 (0: automatic), got "
                    + requested);
        }
        if (requested > 0) {
            return requested;
        }
        long bySize = (stateBytes(layout) + AUTO_PART_BYTES - 1) / AUTO_PART_BYTES;
        return (int) Math.max(slots, Math.min(bySize, 10_000));
    }

    /** At most {@code parts} non-empty ranges covering {@code layout}'s keys in order. */
    public static List<List<String>> split(Map<String, long[]> layout, int parts) {
        if (parts < 1) {
            throw new IllegalArgumentException("parts must be at least 1, got " + parts);
        }
        List<String> keys = new ArrayList<>(layout.keySet());
        long[] bytes = new long[keys.size()];
        for (int i = 0; i < keys.size(); i++) {
            bytes[i] = 3 * 4 * AdapterTensors.numel(layout.get(keys.get(i))); // weights, m, v in fp32
        }
        long total = stateBytes(layout);
        // blocked[i]: a cut before key i would split a module whose A and B lie on both sides.
        boolean[] blocked = new boolean[keys.size() + 1];
        for (int i = 0; i < keys.size(); i++) {
            String k = keys.get(i);
            if (k.endsWith("lora_A.weight")) {
                int j = keys.indexOf(k.substring(0, k.length() - "lora_A.weight".length()) + "lora_B.weight");
                for (int c = Math.min(i, j) + 1; j >= 0 && c <= Math.max(i, j); c++) {
                    blocked[c] = true;
                }
            }
        }
        List<List<String>> ranges = new ArrayList<>();
        List<String> current = new ArrayList<>();
        long done = 0;
        for (int i = 0; i < keys.size(); i++) {
            // Cut before key i once the bytes so far reach the next range's share of the total.
            if (!current.isEmpty() && !blocked[i] && ranges.size() < parts - 1
                    && done * parts >= total * (ranges.size() + 1)) {
                ranges.add(current);
                current = new ArrayList<>();
            }
            current.add(keys.get(i));
            done += bytes[i];
        }
        if (!current.isEmpty()) {
            ranges.add(current);
        }
        return ranges;
    }
}
