package org.qalora.quant.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class KernelPoolTest {
    @Test
    void runsEveryTaskExactlyOnceIncludingNestedCalls() {
        try (KernelPool pool = new KernelPool(3)) {
            AtomicIntegerArray counts = new AtomicIntegerArray(100 * 7);
            pool.run(100, outer -> pool.run(7, inner -> counts.incrementAndGet(outer * 7 + inner)));
            for (int t = 0; t < counts.length(); t++) {
                assertEquals(1, counts.get(t), "task " + t);
            }
        }
    }

    @Test
    void rethrowsTheFirstFailureOfATask() {
        try (KernelPool pool = new KernelPool(2)) {
            IllegalStateException boom = new IllegalStateException("boom");
            IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> pool.run(50, t -> {
                if (t == 17) {
                    throw boom;
                }
            }));
            assertSame(boom, thrown);
            AtomicIntegerArray after = new AtomicIntegerArray(5);
            pool.run(5, after::incrementAndGet); // the pool still works
            assertEquals(1, after.get(4));
        }
    }

    @Test
    void theSharedPoolCannotBeClosedAndSizesAreChecked() {
        assertThrows(IllegalStateException.class, () -> KernelPool.shared().close());
        assertThrows(IllegalArgumentException.class, () -> new KernelPool(0));
    }
}
