package org.qalora.worker.cli;

/**
 * Turns expected failures into a one-line message on stderr and the exit code every qalora command uses: 2 for input
 * refused before or during its checks ({@link IllegalArgumentException}: a bad flag, a file that does not fit, an
 * existing --out), 1 for a failure while doing the work (I/O, an inconsistent state).
 */
final class CliErrors {
    private CliErrors() {}

    interface Body {
        void run() throws Exception;
    }

    static int run(Body body) throws Exception {
        try {
            body.run();
            return 0;
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            return 2;
        } catch (IllegalStateException | java.io.IOException | java.io.UncheckedIOException e) {
            System.err.println("error: " + e.getMessage());
            return 1;
        }
    }
}
