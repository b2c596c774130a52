package org.qalora.datasets.prepare;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.qalora.datasets.read.ReadResult;
import org.qalora.datasets.read.RecordFormat;
import org.qalora.datasets.read.RecordReader;
import org.qalora.datasets.read.RecordReaders;
import org.qalora.datasets.read.RecordValidator;

/**
 * A cheap look at raw data before a run commits to it: every argument must name files, and the first records of
 * each file must parse and validate as the prepare job will read them. A typo in a path or a file in the wrong
 * format is then reported in a second, instead of after a model was quantized; a bad record deep in a large file
 * is still found by the prepare job itself.
 */
public final class DataPreview {
    private DataPreview() {}

    /**
     * The problems found, each naming {@code flag}, the file and (for a record) its line or index; empty when the
     * data looks usable.
     *
     * @param records        records read from the start of each file
     * @param skipBadRecords a bad record is then not a problem (the prepare job will skip and count it), but a
     *                       malformed file still is
     */
    public static List<String> problems(String flag, List<String> data, Configuration conf, int records,
                                        boolean skipBadRecords) {
        List<String> problems = new ArrayList<>();
        List<String> files = new ArrayList<>();
        for (String arg : data) {
            try {
                files.addAll(InputFiles.expand(List.of(arg), conf));
            } catch (BadDataException e) {
                problems.add(flag + " " + e.getMessage().replace(": no such file or directory",
                        " does not exist (or is not readable)"));
            } catch (IOException e) {
                problems.add(flag + " " + arg + " cannot be listed: " + e.getMessage());
            }
        }
        for (String file : files) {
            String problem = firstProblem(file, conf, records, skipBadRecords);
            if (problem != null) {
                problems.add(flag + " " + problem);
            }
        }
        return problems;
    }

    private static String firstProblem(String file, Configuration conf, int records, boolean skipBadRecords) {
        try (RecordReader reader = RecordReaders.open(file, conf, RecordFormat.AUTO, RecordValidator.Limits.DEFAULT)) {
            for (int i = 0; i < records; i++) {
                ReadResult r = reader.next();
                if (r == null) {
                    return null;
                }
                if (!r.isOk() && !skipBadRecords) {
                    return r.bad().message() + " (fix the record, or pass --skip-bad-records to skip such records "
                            + "and count them)";
                }
            }
            return null;
        } catch (IOException | RuntimeException e) {
            return file + " cannot be read as records (JSON array, JSON lines or Parquet): " + e.getMessage();
        }
    }
}
