package org.qalora.quant;

import java.util.ArrayList;
import java.util.List;

/**
 * The group sizes that fit a model's input dimensions, so that a message refusing one can suggest sizes that
 * work for that model (a fixed "32, 64 or 128" suggested 128 for a 64-wide model).
 */
public final class GroupSizes {
    /** Below this a group's scale and zero cost more than its codes save; not worth suggesting. */
    private static final int SMALLEST_SUGGESTED = 8;

    private GroupSizes() {}

    /** Powers of two from 128 down to 8 that divide every dimension, largest first (at most three). */
    public static List<Integer> fitting(int... dims) {
        List<Integer> out = new ArrayList<>();
        for (int g = 128; g >= SMALLEST_SUGGESTED && out.size() < 3; g /= 2) {
            boolean divides = true;
            for (int d : dims) {
                divides &= d % g == 0;
            }
            if (divides) {
                out.add(g);
            }
        }
        return out;
    }

    /** "pick a group size that divides 64: 64, 32 or 16" (or the dimension itself when no power of two fits). */
    public static String hint(int... dims) {
        List<Integer> fit = fitting(dims);
        StringBuilder what = new StringBuilder();
        for (int i = 0; i < dims.length; i++) {
            what.append(i == 0 ? "" : i == dims.length - 1 ? " and " : ", ").append(dims[i]);
        }
        if (fit.isEmpty()) {
            return "pick a group size that divides " + what;
        }
        StringBuilder sizes = new StringBuilder();
        for (int i = 0; i < fit.size(); i++) {
            sizes.append(i == 0 ? "" : i == fit.size() - 1 ? " or " : ", ").append(fit.get(i));
        }
        return "pick a group size that divides " + what + ": " + sizes;
    }
}
