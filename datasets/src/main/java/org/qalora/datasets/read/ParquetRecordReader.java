package org.qalora.datasets.read;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.example.GroupReadSupport;
import org.apache.parquet.schema.GroupType;
import org.apache.parquet.schema.PrimitiveType;
import org.apache.parquet.schema.Type;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * A Parquet file (the HF hub's FLAN and Alpaca exports), read row by row (one row group in memory at a time).
 * String columns are BINARY; their bytes are decoded strictly so invalid UTF-8 is a per-row error. Record ids
 * are {@code file[row]} (0-based).
 */
public final class ParquetRecordReader implements RecordReader {

    private final String file;
    private final FileSystem fs;
    private final Path path;
    private final ParquetReader<Group> reader;
    private final RecordValidator validator;
    private long row;

    public ParquetRecordReader(String file, FileSystem fs, Path path, Configuration conf, RecordValidator validator)
            throws IOException {
        this.file = file;
        this.fs = fs;
        this.path = path;
        this.validator = validator;
        this.reader = ParquetReader.builder(new GroupReadSupport(), path).withConf(conf).build();
    }

    @Override
    public ReadResult next() throws IOException {
        Group g = reader.read();
        if (g == null) {
            return null;
        }
        String id = file + "[" + row++ + "]";
        GroupType type = g.getType();
        BadRecord[] utf8Error = new BadRecord[1];
        ReadResult r = validator.validate(id, name -> {
            if (!type.containsField(name) || g.getFieldRepetitionCount(name) == 0) {
                return null;
            }
            Type t = type.getType(name);
            if (!t.isPrimitive() || t.asPrimitiveType().getPrimitiveTypeName() != PrimitiveType.PrimitiveTypeName.BINARY) {
                return FieldValue.wrongType(t.isPrimitive() ? t.asPrimitiveType().getPrimitiveTypeName().name().toLowerCase()
                        : "group");
            }
            byte[] bytes = g.getBinary(name, 0).getBytes();
            try {
                return FieldValue.string(StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(bytes)).toString());
            } catch (CharacterCodingException e) {
                utf8Error[0] = new BadRecord(id, BadRecordReason.INVALID_UTF8, "column \"" + name
                        + "\" holds bytes that are not UTF-8");
                return FieldValue.string("?");
            }
        }, type::containsField);
        return utf8Error[0] != null ? new ReadResult(null, utf8Error[0]) : r;
    }

    @Override
    public String fileSha256() throws IOException {
        // Parquet is read by seeking (footer first), so the hash is a separate sequential pass.
        MessageDigest md;
        try {
            md = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        byte[] buf = new byte[1 << 16];
        try (FSDataInputStream in = fs.open(path)) {
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    @Override
    public void close() throws IOException {
        reader.close();
    }

}
