package org.qalora.driver.eval;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.OutputStream;
import org.apache.hadoop.conf.Configuration;
import org.qalora.driver.config.InvalidSettingsException;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * An output file of generate or eval on any Hadoop filesystem. An existing file is refused unless overwriting was
 * asked for, and the check runs before any work ({@link #checkWritable}), so a long evaluation never ends in a
 * refusal. The content is written to a temporary sibling and renamed into place: a crash leaves no half file.
 */
public final class ResultFile {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private ResultFile() {}

    public static void checkWritable(String location, boolean overwrite, Configuration conf) throws IOException {
        Path p = new Path(location);
        FileSystem fs = p.getFileSystem(conf);
        if (fs.exists(p)) {
            if (fs.getFileStatus(p).isDirectory()) {
                throw new InvalidSettingsException(location + " is a directory: --out takes a file name");
            }
            if (!overwrite) {
                throw new InvalidSettingsException(location + " already exists: pass --overwrite to replace it");
            }
        }
    }

    /** Writes {@code value} as indented JSON. */
    public static void writeJson(String location, Object value, boolean overwrite, Configuration conf)
            throws IOException {
        write(location, JSON.writeValueAsBytes(value), overwrite, conf);
    }

    public static void write(String location, byte[] bytes, boolean overwrite, Configuration conf) throws IOException {
        checkWritable(location, overwrite, conf);
        Path p = new Path(location);
        FileSystem fs = p.getFileSystem(conf);
        Path parent = p.getParent();
        if (parent != null) {
            fs.mkdirs(parent);
        }
        Path tmp = new Path(parent, "." + p.getName() + ".tmp-" + ProcessHandle.current().pid());
        try (OutputStream out = fs.create(tmp, true)) {
            out.write(bytes);
        }
        if (fs.exists(p) && !fs.delete(p, false)) {
            throw new IOException("cannot replace " + location);
        }
        if (!fs.rename(tmp, p)) {
            fs.delete(tmp, false);
            throw new IOException("cannot rename " + tmp + " to " + location);
        }
    }
}
