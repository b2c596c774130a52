package org.qalora.datasets.plan;

/**
 * SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose whole definition is below, so a plan is the same
 * on every JVM and version (we do not depend on the JDK's choice of algorithms).
 */
final class SplitMix64 {
    private long state;

    SplitMix64(long seed) {
        this.state = seed;
    }

    long nextLong() {
        long z = (state += 0x9E3779B97F4A7C15L);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** Uniform in [0, bound): rejection sampling removes the modulo bias. */
    int nextInt(int bound) {
        long limit = Long.MAX_VALUE - (Long.MAX_VALUE % bound);
        long r;
        do {
            r = nextLong() >>> 1;
        } while (r >= limit);
        return (int) (r % bound);
    }

    /** Fisher-Yates. */
    void shuffle(long[] a) {
        for (int i = a.length - 1; i > 0; i--) {
            int j = nextInt(i + 1);
            long t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }

    static long mix(long seed, long salt) {
        return new SplitMix64(seed ^ (salt * 0xD1B54A32D192ED03L)).nextLong();
    }
}
