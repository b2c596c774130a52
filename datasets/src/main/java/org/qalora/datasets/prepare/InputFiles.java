package org.qalora.datasets.prepare;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * Expands --data arguments into a list of files, in a stable order: arguments in the order given; inside a
 * directory or glob, by path name. Hidden files ({@code .x}, {@code _x}: checksums, _SUCCESS) are left out.
 */
final class InputFiles {
    private InputFiles() {}

    static List<String> expand(List<String> args, Configuration conf) throws IOException {
        List<String> out = new ArrayList<>();
        for (String a : args) {
            Path p = new Path(a);
            FileSystem fs = p.getFileSystem(conf);
            FileStatus[] matches = fs.globStatus(p);
            if (matches == null || matches.length == 0) {
                throw new BadDataException(a + ": no such file or directory");
            }
            List<FileStatus> files = new ArrayList<>();
            for (FileStatus m : matches) {
                if (m.isDirectory()) {
                    Arrays.stream(fs.listStatus(m.getPath())).filter(FileStatus::isFile)
                            .filter(s -> visible(s.getPath())).forEach(files::add);
                } else {
                    files.add(m);
                }
            }
            files.sort(Comparator.comparing(s -> s.getPath().toString()));
            if (files.isEmpty()) {
                throw new BadDataException(a + ": no data files in it");
            }
            files.forEach(s -> out.add(s.getPath().toString()));
        }
        return out;
    }

    private static boolean visible(Path p) {
        String n = p.getName();
        return !n.startsWith(".") && !n.startsWith("_");
    }
}
