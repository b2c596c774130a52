package org.qalora.driver.rounds;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * One part of one key averaged over the slots' mapped update tensors ({@link MappedTensor}) a block of elements at a
 * time, the slot loop inside the block loop. Why: at LLaMA-7B a tensor is up to 11008 x 64 floats (2.8 MB, its
 * float64 sums 5.6 MB), so the whole-tensor passes of {@link UpdateAverager}'s simple path (check, decode into a
 * scratch array, add into the sums, square) each stream through memory, 3-4 times per slot. Here a block's float64
 * sums and one slot's block stay in L2 while every slot is added in, and each slot's block is read from its mapping
 * once: checked (CRC32C), added and squared from cache.
 *
 * <p>The arithmetic is the simple path's, bit for bit: per element the sum runs over the slots in slot order,
 * {@code sum[i] += w * x[i]} (a multiply, then an add, each rounded; never an fma, which rounds once and differs
 * wherever {@code w * x} is inexact); each slot's {@code sum w x^2} is one chain over the elements in index order,
 * carried from block to block in block order; the mean is {@code sum[i] / total}, its square summed in index order.
 * So the blocking and the block size change no bit ({@code BlockedPartAverageTest}).
 *
 * <p>Every slot's check is finished after its last block and before the part is returned, so a tensor that fails
 * its check is never used, and the failure (naming the file and the tensor) is the same as the simple path's: the
 * first failing slot, in slot order, of the first failing part.
 */
final class BlockedPartAverage {
    /**
     * Elements per block: its float64 sums (128 KB) and one slot's block (64 KB) sit in a 512 KB-2 MB L2 with room
     * for the output and the next slot's lines. 4 K to 64 K measured alike on the 2-vCPU box (docs/PERFORMANCE.md,
     * "Blocked sums").
     */
    static final int DEFAULT_BLOCK = 16_384;

    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final int block;
    /** Per kernel thread: one block's float64 sums, reused block after block and key after key. */
    private final ThreadLocal<double[]> sums;

    BlockedPartAverage(int block) {
        if (block <= 0) {
            throw new IllegalArgumentException("block must be positive, got " + block);
        }
        this.block = block;
        this.sums = ThreadLocal.withInitial(() -> new double[block]);
    }

    /**
     * Averages {@code x} (one tensor of {@code numel} floats per slot, in slot order) with weights {@code w} over
     * {@code total}; with {@code weightsPart} also the squares the spread measure needs; the discordance samples at
     * the flat indices {@code samples} (ascending; null for none).
     */
    PartAverage average(MappedTensor[] x, double[] w, double total, int numel, boolean weightsPart, int[] samples) {
        int n = x.length;
        double[] acc = sums.get();
        float[] mean = new float[numel];
        double[] squares = weightsPart ? new double[n] : null;
        double[][] slotSamples = samples == null ? null : new double[n][samples.length];
        double[] meanSamples = samples == null ? null : new double[samples.length];
        double meanSquare = 0;
        MemorySegment[] blocks = new MemorySegment[n]; // each slot's current block
        int sampled = 0; // samples before this block
        for (int b0 = 0; b0 < numel; b0 += block) {
            int len = Math.min(block, numel - b0);
            int sampleEnd = sampled;
            while (samples != null && sampleEnd < samples.length && samples[sampleEnd] < b0 + len) {
                sampleEnd++;
            }
            java.util.Arrays.fill(acc, 0, len, 0.0);
            for (int s = 0; s < n; s++) {
                blocks[s] = x[s].bytes().asSlice((long) b0 * Float.BYTES, (long) len * Float.BYTES);
                x[s].check().update(blocks[s]);
                addScaled(acc, blocks[s], len, w[s]);
                for (int q = sampled; q < sampleEnd; q++) {
                    slotSamples[s][q] = blocks[s].get(F32_LE, (long) (samples[q] - b0) * Float.BYTES);
                }
            }
            if (weightsPart) {
                // The slots' blocks are still in cache: their squares, four slots' chains at a time, the first four
                // with the mean's (see squaresAndMean).
                for (int s = 0; s < n; s += 4) {
                    meanSquare = squaresAndMean(blocks, w, s, squares, len, s == 0 ? acc : null, total, mean, b0,
                            meanSquare);
                }
            } else {
                for (int i = 0; i < len; i++) {
                    mean[b0 + i] = (float) (acc[i] / total);
                }
            }
            for (int q = sampled; q < sampleEnd; q++) {
                meanSamples[q] = acc[samples[q] - b0] / total;
            }
            sampled = sampleEnd;
        }
        for (MappedTensor t : x) {
            t.check().finish();
        }
        return new PartAverage(mean, meanSquare, squares, slotSamples, meanSamples);
    }

    /**
     * {@code acc[i] += w * x[i]} for the block's {@code len} floats. A plain loop: a Vector API version (multiply,
     * then add: the same bits) was 10-30% faster once compiled, but 1.7-2.6x slower in a JVM's first averaging,
     * before C2 had compiled it, and an executor averages once a round (docs/PERFORMANCE.md, "Blocked sums").
     */
    private static void addScaled(double[] acc, MemorySegment x, int len, double w) {
        for (int i = 0; i < len; i++) {
            acc[i] += w * x.get(F32_LE, (long) i * Float.BYTES);
        }
    }

    /**
     * Over the block in index order: {@code sq[s] += w[s] * x[i] * x[i]} for slots {@code s0 .. s0 + 3} (those that
     * exist), and with {@code acc} the mean {@code m = acc[i] / total} into {@code mean}, its {@code m * m} into the
     * returned running {@code meanSquare}. Each of those sums is one chain in index order (the simple path's), so
     * each is bound by the add's latency (~4 cycles an element); five independent chains in one loop run in about
     * the time of one. Slots past the last are stood in for by the last slot with weight 0, and their sums dropped.
     */
    private static double squaresAndMean(MemorySegment[] blocks, double[] w, int s0, double[] sq, int len,
                                         double[] acc, double total, float[] mean, int b0, double meanSquare) {
        int n = blocks.length;
        int s1 = Math.min(s0 + 1, n - 1), s2 = Math.min(s0 + 2, n - 1), s3 = Math.min(s0 + 3, n - 1);
        MemorySegment x0 = blocks[s0], x1 = blocks[s1], x2 = blocks[s2], x3 = blocks[s3];
        double w0 = w[s0], w1 = s0 + 1 < n ? w[s1] : 0, w2 = s0 + 2 < n ? w[s2] : 0, w3 = s0 + 3 < n ? w[s3] : 0;
        double q0 = sq[s0], q1 = sq[s1], q2 = sq[s2], q3 = sq[s3];
        double ms = meanSquare;
        for (int i = 0; i < len; i++) {
            long at = (long) i * Float.BYTES;
            double a = x0.get(F32_LE, at), b = x1.get(F32_LE, at), c = x2.get(F32_LE, at), d = x3.get(F32_LE, at);
            q0 += w0 * a * a;
            q1 += w1 * b * b;
            q2 += w2 * c * c;
            q3 += w3 * d * d;
            if (acc != null) {
                double m = acc[i] / total;
                ms += m * m;
                mean[b0 + i] = (float) m;
            }
        }
        // Only the real slots' chains go back; a stand-in's is dropped.
        if (s0 + 3 < n) {
            sq[s3] = q3;
        }
        if (s0 + 2 < n) {
            sq[s2] = q2;
        }
        if (s0 + 1 < n) {
            sq[s1] = q1;
        }
        sq[s0] = q0;
        return ms;
    }
}
