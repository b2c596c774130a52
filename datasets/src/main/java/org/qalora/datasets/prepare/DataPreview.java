package org.qalora.datasets.prepare;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
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
                        " does not exist (or is not readable)" + didYouMean(arg, conf)));
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

    /**
     * "; did you mean alpaca-sample.json?" when the missing path's directory holds one name at most two edits away
     * (a typo), else "".
     */
    public static String didYouMean(String missing, Configuration conf) {
        try {
            Path path = new Path(missing);
            Path parent = path.getParent();
            FileSystem fs = path.getFileSystem(conf);
            if (parent == null || !fs.isDirectory(parent)) {
                return "";
            }
            String best = null;
            int bestDistance = 3;
            for (FileStatus st : fs.listStatus(parent)) {
                int d = editDistance(path.getName(), st.getPath().getName());
                if (d < bestDistance) {
                    best = st.getPath().getName();
                    bestDistance = d;
                }
            }
            return best == null ? "" : "; did you mean " + best + "?";
        } catch (IOException | IllegalArgumentException e) {
            return "";   // only a hint: a directory that cannot be listed gets none
        }
    }

    /** Levenshtein distance (insert, delete, substitute). */
    static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int substitute = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(substitute, Math.min(prev[j], cur[j - 1]) + 1);
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
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
