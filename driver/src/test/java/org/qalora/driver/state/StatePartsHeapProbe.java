package org.qalora.driver.state;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.worker.adapter.PeftAdapter;
import org.qalora.worker.adapter.Pooling;
import org.qalora.worker.adapter.QaloraConfig;

/**
 * Run in a JVM with a small heap by {@link StatePartsTest}: {@code stream OUT PART...} writes the parts' one file and
 * PEFT adapter under OUT as the publish stage does and prints {@code ok sha256=...}; {@code load OUT PART...} reads
 * the state whole, as the driver did before, and prints what that ends in.
 */
public final class StatePartsHeapProbe {
    private StatePartsHeapProbe() {}

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        Path out = Files.createDirectories(Path.of(args[1]));
        Storage storage = new Storage(new Configuration());
        List<org.apache.hadoop.fs.Path> parts = new ArrayList<>();
        for (int i = 2; i < args.length; i++) {
            parts.add(new org.apache.hadoop.fs.Path(args[i]));
        }
        try {
            if (mode.equals("load")) {
                AdapterTensors state = AdapterStateFile.read(storage, parts).state();
                System.out.println("loaded " + state.parameterCount() + " parameters");
                return;
            }
            String sha;
            try (StateParts opened = StateParts.open(storage, parts)) {
                sha = opened.writeOneFile(storage, storage.path(out.resolve("one.safetensors").toString()), "_tmp-one",
                        Map.of("round", "2"));
                PeftAdapter.write(out.resolve("adapter").toString(),
                        QaloraConfig.allProjections(64, 16.0, 32, Pooling.MEAN, 0.0), opened.layout(),
                        (t, o) -> opened.copyTo(t.name(), 0, o), "base", storage.paths());
            }
            System.out.println("ok sha256=" + sha + " maxHeapBytes=" + Runtime.getRuntime().maxMemory());
        } catch (OutOfMemoryError e) {
            System.out.println("OutOfMemoryError: " + e.getMessage());
        }
    }
}
