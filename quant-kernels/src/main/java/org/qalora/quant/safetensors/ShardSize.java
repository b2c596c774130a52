package org.qalora.quant.safetensors;

import java.util.Locale;

/**
 * Parses a shard size as HF transformers' {@code max_shard_size} spells it ({@code convert_file_size_to_int}):
 * a plain byte count, or an integer with {@code KiB/MiB/GiB} (powers of 1024) or {@code KB/MB/GB} (powers of 1000;
 * a lower-case final {@code b}, as in {@code 5Gb}, means bits), case-insensitive otherwise. So {@code 5GB} is
 * 5,000,000,000 bytes, as HF's default.
 */
public final class ShardSize {
    /** HF's default {@code max_shard_size}. */
    public static final String DEFAULT = "5GB";

    private ShardSize() {}

    /** @param option the flag or field the value came from, named in errors */
    public static long parse(String value, String option) {
        String v = value == null ? "" : value.trim();
        String upper = v.toUpperCase(Locale.ROOT);
        String[][] units = {{"GIB", "1073741824"}, {"MIB", "1048576"}, {"KIB", "1024"},
                {"GB", "1000000000"}, {"MB", "1000000"}, {"KB", "1000"}, {"B", "1"}};
        long multiplier = 1;
        String number = v;
        boolean bits = false;
        for (String[] u : units) {
            if (upper.endsWith(u[0])) {
                multiplier = Long.parseLong(u[1]);
                number = v.substring(0, v.length() - u[0].length()).trim();
                bits = u[0].length() == 2 && v.endsWith("b");
                break;
            }
        }
        long n;
        try {
            n = Long.parseLong(number);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(option + " '" + value + "' is not a size: give an integer number of bytes "
                    + "or an integer with a unit, as HF spells it (e.g. 5GB, 500MB, 2GiB)");
        }
        long bytes = Math.multiplyExact(n, multiplier) / (bits ? 8 : 1);
        if (bytes <= 0) {
            throw new IllegalArgumentException(option + " '" + value + "' must be a positive size (e.g. 5GB)");
        }
        return bytes;
    }
}
