package org.qalora.quant.util;

/**
 * SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose whole definition is below, so every seed, plan and
 * dropout mask derived from it is the same on every JVM and version (we do not depend on the JDK's choice of
 * algorithms). The one copy in the project: the data plan and generation's sampling use the generator, the rounds
 * and the trainer derive seeds with {@link #mix64}.
 */
public final class SplitMix64 {
    /** The generator's increment, 2^64 / golden ratio (odd); also a good multiplier to spread small integers. */
    public static final long GOLDEN_GAMMA = 0x9E3779B97F4A7C15L;

    private long state;

    public SplitMix64(long seed) {
        this.state = seed;
    }

    /** The finalizer (Stafford's variant 13 of MurmurHash3's fmix64): a bijection that spreads every input bit. */
    public static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    public long nextLong() {
        return mix64(state += GOLDEN_GAMMA);
    }

    /** Uniform in [0, 1): the top 53 bits of the next value. */
    public double nextDouble() {
        return (nextLong() >>> 11) * 0x1.0p-53;
    }

    /** Uniform in [0, bound): rejection sampling removes the modulo bias. */
    public int nextInt(int bound) {
        if (bound <= 0) {
            throw new IllegalArgumentException("bound must be positive, got " + bound);
        }
        long limit = Long.MAX_VALUE - (Long.MAX_VALUE % bound);
        long r;
        do {
            r = nextLong() >>> 1;
        } while (r >= limit);
        return (int) (r % bound);
    }

    /** Fisher-Yates. */
    public void shuffle(long[] a) {
        for (int i = a.length - 1; i > 0; i--) {
            int j = nextInt(i + 1);
            long t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }
}
