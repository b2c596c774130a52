package org.qalora.datasets.prepare;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Shard and lengths file names in manifest.json are resolved against the dataset directory
 * ({@code new Path(dir, name)}); a name that leaves it ("../x", "/abs", "hdfs://elsewhere/x") is refused at read.
 */
class ManifestNamesTest {
    private static final String WHERE = "/data/prepared/manifest.json";

    private static DatasetManifest manifest(String shardName, String lengthsFile) {
        return new DatasetManifest(DatasetManifest.FORMAT_VERSION, "h", List.of(), null, 3, 30, 10, new TreeMap<>(),
                1, 2, 0, List.of(new DatasetManifest.Shard(shardName, 0, 3, 100, "")), lengthsFile, "l");
    }

    @Test
    void plainNamesRoundTrip() {
        DatasetManifest m = manifest("part-00000-0000-0000.parquet", DatasetManifest.LENGTHS);
        assertEquals(m, DatasetManifest.fromJson(m.toJsonBytes(), WHERE));
    }

    @ParameterizedTest
    @ValueSource(strings = {"../part-0.parquet", "..", ".", "/etc/passwd", "sub/part-0.parquet", "..\\\\part-0.parquet",
            "hdfs://other-nn/data/part-0.parquet", "file:part-0.parquet", ""})
    void escapingShardNamesAreRefused(String name) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DatasetManifest.fromJson(manifest(name, DatasetManifest.LENGTHS).toJsonBytes(), WHERE));
        assertTrue(e.getMessage().startsWith(WHERE) && e.getMessage().contains("shards[0].name"), e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"../lengths.bin", "/tmp/lengths.bin", "s3a://b/lengths.bin"})
    void escapingLengthsFilesAreRefused(String name) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DatasetManifest.fromJson(manifest("part-0.parquet", name).toJsonBytes(), WHERE));
        assertTrue(e.getMessage().startsWith(WHERE) && e.getMessage().contains("lengthsFile"), e.getMessage());
    }

    @Test
    void missingNamesAreRefused() {
        String json = new String(manifest("part-0.parquet", "lengths.bin").toJsonBytes(), StandardCharsets.UTF_8)
                .replace("\"lengthsFile\" : \"lengths.bin\"", "\"lengthsFile\" : null");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DatasetManifest.fromJson(json.getBytes(StandardCharsets.UTF_8), WHERE));
        assertTrue(e.getMessage().contains("lengthsFile"), e.getMessage());
    }
}
