package org.qalora.driver.rounds;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.qalora.driver.state.AdapterTensors;

/**
 * Splits an adapter's keys into contiguous ranges of about equal bytes, one per averaging task. A LoRA module's A
 * and B always fall in one range (the factor-discordance measure needs both), so a cut is only placed where no
 * module straddles it. The split depends on the layout and the requested count alone (never on executors or
 * timing), and each element's average does not depend on the split at all, so any split gives the same bits.
 */
public final class KeyRanges {
    private KeyRanges() {}

    /** At most {@code parts} non-empty ranges covering {@code layout}'s keys in order. */
    public static List<List<String>> split(Map<String, long[]> layout, int parts) {
        if (parts < 1) {
            throw new IllegalArgumentException("parts must be at least 1, got " + parts);
        }
        List<String> keys = new ArrayList<>(layout.keySet());
        long[] bytes = new long[keys.size()];
        long total = 0;
        for (int i = 0; i < keys.size(); i++) {
            bytes[i] = 3 * 4 * AdapterTensors.numel(layout.get(keys.get(i))); // weights, m, v in fp32
            total += bytes[i];
        }
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
