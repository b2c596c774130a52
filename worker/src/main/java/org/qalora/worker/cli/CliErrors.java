package org.qalora.worker.cli;

/** Turns expected failures (bad input, I/O) into a one-line message on stderr and exit code 2. */
final class CliErrors {
    private CliErrors() {}

    interface Body {
        void run() throws Exception;
    }

    static int run(Body body) throws Exception {
        try {
            body.run();
            return 0;
        } catch (IllegalArgumentException | IllegalStateException | java.io.IOException
                 | java.io.UncheckedIOException e) {
            System.err.println("error: " + e.getMessage());
            return 2;
        }
    }
}
