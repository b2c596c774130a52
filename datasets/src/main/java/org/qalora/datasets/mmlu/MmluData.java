package org.qalora.datasets.mmlu;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * An MMLU directory in the layout of Hendrycks et al.'s data.tar: {@code test/<subject>_test.csv} holds the
 * questions, {@code dev/<subject>_dev.csv} the few-shot examples (the first k are used, in file order). No header
 * row; columns {@code question, A, B, C, D, answer}. Subjects are the test files' names, sorted. Read through Hadoop,
 * so the directory may be on HDFS.
 *
 * @param test  questions by subject, subjects sorted
 * @param dev   shots by subject (empty lists when no shots were asked for)
 */
public record MmluData(Map<String, List<MmluQuestion>> test, Map<String, List<MmluQuestion>> dev) {

    public static MmluData read(String dir, int shots, Configuration conf) throws IOException {
        if (shots < 0) {
            throw new IllegalArgumentException("--shots must be >= 0, got " + shots);
        }
        Path root = new Path(dir);
        FileSystem fs = root.getFileSystem(conf);
        Path testDir = new Path(root, "test");
        if (!fs.isDirectory(testDir)) {
            throw new IllegalArgumentException(dir + ": no test/ directory (expected the MMLU layout test/<subject>_test.csv,"
                    + " dev/<subject>_dev.csv)");
        }
        Map<String, List<MmluQuestion>> test = new TreeMap<>();
        Map<String, List<MmluQuestion>> dev = new TreeMap<>();
        for (FileStatus f : fs.listStatus(testDir)) {
            String name = f.getPath().getName();
            if (!f.isFile() || !name.endsWith("_test.csv")) {
                continue;
            }
            String subject = name.substring(0, name.length() - "_test.csv".length());
            test.put(subject, questions(fs, f.getPath(), subject));
        }
        if (test.isEmpty()) {
            throw new IllegalArgumentException(testDir + " holds no <subject>_test.csv file");
        }
        for (String subject : test.keySet()) {
            if (shots == 0) {
                dev.put(subject, List.of());
                continue;
            }
            Path devFile = new Path(new Path(root, "dev"), subject + "_dev.csv");
            if (!fs.isFile(devFile)) {
                throw new IllegalArgumentException(devFile + " does not exist: --shots " + shots + " takes the few-shot"
                        + " examples of " + subject + " from it");
            }
            List<MmluQuestion> d = questions(fs, devFile, subject);
            if (d.size() < shots) {
                throw new IllegalArgumentException(devFile + " has " + d.size() + " questions, fewer than --shots " + shots);
            }
            dev.put(subject, List.copyOf(d.subList(0, shots)));
        }
        return new MmluData(test, dev);
    }

    public int questions() {
        return test.values().stream().mapToInt(List::size).sum();
    }

    private static List<MmluQuestion> questions(FileSystem fs, Path file, String subject) throws IOException {
        byte[] bytes;
        try (var in = fs.open(file)) {
            bytes = in.readAllBytes();
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(java.nio.ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException(file + ": not UTF-8 text (" + e.getMessage() + ")");
        }
        List<MmluQuestion> out = new ArrayList<>();
        for (CsvRows.Row row : CsvRows.parse(text, file.toString())) {
            String where = file + ":" + row.line();
            List<String> f = row.fields();
            if (f.size() != 6) {
                throw new IllegalArgumentException(where + ": " + f.size() + " fields, expected 6 (question, A, B, C, D,"
                        + " answer; no header row)");
            }
            String answer = f.get(5).strip();
            if (!MmluQuestion.LETTERS.contains(answer)) {
                throw new IllegalArgumentException(where + ": field answer is \"" + f.get(5) + "\", expected one of A, B,"
                        + " C, D");
            }
            out.add(new MmluQuestion(subject, where, f.get(0), f.subList(1, 5), answer.charAt(0)));
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException(file + " holds no question");
        }
        return out;
    }
}
