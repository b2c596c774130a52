package org.qalora.driver.pipeline;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.TreeMap;
import org.qalora.datasets.prepare.DatasetManifest;

/** A prepared dataset of four records written by hand: the training plan needs only its manifest and lengths. */
final class HandWrittenDataset {
    private HandWrittenDataset() {}

    /** Writes it under {@code parent/data}; returns that directory. No batch is ever read from it. */
    static String write(Path parent) throws Exception {
        int records = 4;
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (DataOutputStream out = new DataOutputStream(bytes)) {
            for (int i = 0; i < records; i++) {
                out.writeInt(20 + i); // num_tokens
                out.writeInt(5);      // num_target_tokens
            }
        }
        byte[] lengths = bytes.toByteArray();
        String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(lengths));
        DatasetManifest m = new DatasetManifest(DatasetManifest.FORMAT_VERSION, "hand-written", List.of(), null,
                records, 4 * 20 + 6, 4 * 5, new TreeMap<>(), 1, 2, 0,
                List.of(new DatasetManifest.Shard("part-00000.parquet", 0, records, 0, "")), DatasetManifest.LENGTHS,
                sha);
        Path d = Files.createDirectories(parent.resolve("data"));
        Files.write(d.resolve(DatasetManifest.LENGTHS), lengths);
        Files.write(d.resolve(DatasetManifest.MANIFEST), m.toJsonBytes());
        return d.toString();
    }
}
