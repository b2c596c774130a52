package org.qalora.datasets.tokenize;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.TokenizersLibrary;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A Hugging Face {@code tokenizer.json} run by the HF tokenizers Rust library through DJL, so ids are the ones
 * {@code transformers} produces for the same file (the same code does the work).
 *
 * <p>DJL extracts its bundled native library ({@code native/lib/linux-x86_64/cpu/libtokenizers.so} inside the
 * tokenizers jar) into its cache directory ({@code ~/.djl.ai/tokenizers}, or {@code $DJL_CACHE_DIR}). It would
 * try to download a library only for flavors it does not bundle (CUDA builds); we set {@code ai.djl.offline=true}
 * unless the caller chose otherwise, so a missing library is an immediate error instead of a network call.
 *
 * <p>Special tokens come from the {@code added_tokens} of tokenizer.json; which one is BOS / EOS / PAD from the
 * {@code tokenizer_config.json} next to it when there is one ({@code <s>}, {@code </s>}, no pad otherwise).
 * Added tokens are matched in the raw text even with {@code addSpecialTokens=false}, exactly as HF does: that is
 * how {@code tokenizer(output + "</s>", add_special_tokens=False)} ends a target with the EOS id.
 */
public final class TextTokenizer implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();
    /** One native tokenizer per distinct tokenizer.json per JVM: Spark tasks of one executor share it. */
    private static final Map<String, TextTokenizer> SHARED = new ConcurrentHashMap<>();

    private final HuggingFaceTokenizer hf;
    private final String sha256;
    private final String bosToken;
    private final String eosToken;
    private final int bosId;
    private final int eosId;
    private final int padId;
    private final java.util.BitSet byteTokens; // ids of byte-fallback pieces <0xNN>

    private TextTokenizer(byte[] tokenizerJson, byte[] tokenizerConfigOrNull, String sourceName) {
        if (System.getProperty("ai.djl.offline") == null) {
            System.setProperty("ai.djl.offline", "true");
        }
        this.sha256 = sha256Hex(tokenizerJson);
        JsonNode tok;
        JsonNode cfg;
        try {
            tok = JSON.readTree(tokenizerJson);
            cfg = tokenizerConfigOrNull == null ? JSON.createObjectNode() : JSON.readTree(tokenizerConfigOrNull);
        } catch (IOException e) {
            throw new IllegalArgumentException(sourceName + ": not a valid tokenizer.json / tokenizer_config.json: "
                    + e.getMessage(), e);
        }
        if (!tok.has("model")) {
            throw new IllegalArgumentException(sourceName + ": not a Hugging Face tokenizer.json (no \"model\" key)");
        }
        if (!tok.isObject() || !cfg.isObject()) {
            throw new IllegalArgumentException(sourceName + ": tokenizer.json and tokenizer_config.json must be JSON objects");
        }
        this.bosToken = tokenName(cfg.get("bos_token"), "<s>", "bos_token", sourceName);
        this.eosToken = tokenName(cfg.get("eos_token"), "</s>", "eos_token", sourceName);
        String padToken = tokenName(cfg.get("pad_token"), null, "pad_token", sourceName);
        this.bosId = addedTokenId(tok, bosToken, sourceName);
        this.eosId = addedTokenId(tok, eosToken, sourceName);
        // No pad token (LLaMA): pad with 0. Padding positions are masked by labels -100 and sit after the EOS, so
        // under a causal mask they never influence a real position; the id only has to be a valid row.
        this.padId = padToken == null ? 0 : addedTokenId(tok, padToken, sourceName);
        this.byteTokens = new java.util.BitSet();
        for (var it = tok.path("model").path("vocab").fields(); it.hasNext(); ) {
            var e = it.next();
            if (e.getKey().matches("<0x[0-9A-Fa-f]{2}>") && e.getValue().canConvertToInt() && e.getValue().asInt() >= 0) {
                byteTokens.set(e.getValue().asInt());
            }
        }
        try {
            // We truncate ourselves (source and target separately, as QLoRA's collator does), so the native side
            // must neither truncate nor pad nor post-edit the text.
            this.hf = HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(tokenizerJson), Map.of(
                    "truncation", "false", "padding", "false", "addSpecialTokens", "true",
                    "cleanupTokenizationSpaces", "false", "maxLength", "-1"));
        } catch (IOException e) {
            throw new UncheckedIOException(sourceName + ": cannot load tokenizer", e);
        } catch (RuntimeException e) {
            // The native tokenizers library rejects a structurally wrong tokenizer.json with a bare RuntimeException.
            throw new IllegalArgumentException(sourceName + ": not a loadable Hugging Face tokenizer.json: " + e.getMessage(), e);
        }
    }

    /** Loads a tokenizer from the bytes of tokenizer.json and (optionally, may be null) tokenizer_config.json. */
    public static TextTokenizer load(byte[] tokenizerJson, byte[] tokenizerConfigOrNull, String sourceName) {
        return new TextTokenizer(tokenizerJson, tokenizerConfigOrNull, sourceName);
    }

    /**
     * Loads {@code location} (tokenizer.json on any Hadoop FileSystem) and the tokenizer_config.json beside it, if
     * there is one, shared per JVM.
     */
    public static TextTokenizer open(String location, org.apache.hadoop.conf.Configuration conf) throws IOException {
        org.apache.hadoop.fs.Path p = new org.apache.hadoop.fs.Path(location);
        org.apache.hadoop.fs.FileSystem fs = p.getFileSystem(conf);
        if (!fs.exists(p)) {
            throw new IllegalArgumentException(location + ": no such tokenizer file (give the path of tokenizer.json)");
        }
        byte[] json;
        try (var in = fs.open(p)) {
            json = in.readAllBytes();
        }
        org.apache.hadoop.fs.Path cfg = new org.apache.hadoop.fs.Path(p.getParent(), "tokenizer_config.json");
        byte[] config = null;
        if (fs.exists(cfg)) {
            try (var in = fs.open(cfg)) {
                config = in.readAllBytes();
            }
        }
        return shared(json, config, location);
    }

    /** Like {@link #load} but returns one instance per JVM for identical bytes; callers must not close it. */
    public static TextTokenizer shared(byte[] tokenizerJson, byte[] tokenizerConfigOrNull, String sourceName) {
        String key = sha256Hex(tokenizerJson) + "/" + (tokenizerConfigOrNull == null ? "-" : sha256Hex(tokenizerConfigOrNull));
        return SHARED.computeIfAbsent(key, k -> new TextTokenizer(tokenizerJson, tokenizerConfigOrNull, sourceName));
    }

    /**
     * Token ids of {@code text}; with {@code addSpecialTokens} the tokenizer's post-processor adds BOS.
     *
     * <p>Calls DJL's JNI layer for the ids alone. DJL's {@link HuggingFaceTokenizer#encode} builds a full
     * {@link Encoding}: eight JNI calls per text that also copy every token's string, char span, type, word id and
     * masks into Java objects we never read. {@link #encodeWithDjlEncoding} is that reference path;
     * {@code TokenizerParityTest} checks both give the same ids, the benchmark compares their speed. (Our
     * {@code HuggingFaceTokenizer} has no lower-casing or accent stripping configured, which is the only thing its
     * {@code encode} does to the text before the native call.)
     */
    public int[] encode(String text, boolean addSpecialTokens) {
        long encoding = TokenizersLibrary.LIB.encode(hf.getHandle(), text, addSpecialTokens);
        try {
            return toInts(TokenizersLibrary.LIB.getTokenIds(encoding));
        } finally {
            TokenizersLibrary.LIB.deleteEncoding(encoding);
        }
    }

    /** The same ids through DJL's public {@link Encoding} API: the reference for {@link #encode}. */
    public int[] encodeWithDjlEncoding(String text, boolean addSpecialTokens) {
        return toInts(hf.encode(text, addSpecialTokens, false).getIds());
    }

    private static int[] toInts(long[] ids) {
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    /**
     * Token ids of many texts in one native call; the ids are exactly those of {@link #encode} one by one. The HF
     * library spreads a batch over its own thread pool (rayon, one thread per core). prepare does not use it: on
     * busy cores it measured slower than one call per record (docs/PERFORMANCE.md, datasets section).
     */
    public int[][] encodeBatch(String[] texts, boolean addSpecialTokens) {
        long[] encodings = TokenizersLibrary.LIB.batchEncode(hf.getHandle(), texts, addSpecialTokens);
        int[][] out = new int[encodings.length][];
        try {
            for (int k = 0; k < encodings.length; k++) {
                out[k] = toInts(TokenizersLibrary.LIB.getTokenIds(encodings[k]));
            }
        } finally {
            for (long e : encodings) {
                TokenizersLibrary.LIB.deleteEncoding(e);
            }
        }
        return out;
    }

    /** Text of {@code ids}, special tokens kept (HF {@code decode(ids)} with default arguments). */
    public String decode(int[] ids) {
        long[] l = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            l[i] = ids[i];
        }
        return hf.decode(l, false);
    }

    /**
     * True for a byte-fallback piece ({@code <0xNN>}). The decoder turns a run of them into text only as a whole
     * (an invalid run becomes one U+FFFD per byte), so text decoded while the last token is one may still change.
     */
    public boolean isByteToken(int id) { return id >= 0 && byteTokens.get(id); }

    public String bosToken() { return bosToken; }
    public String eosToken() { return eosToken; }
    public int bosId() { return bosId; }
    public int eosId() { return eosId; }
    public int padId() { return padId; }
    /** SHA-256 of the tokenizer.json bytes: part of a prepared dataset's settings hash. */
    public String sha256() { return sha256; }

    @Override
    public void close() {
        hf.close();
    }

    private static String tokenName(JsonNode node, String fallback, String field, String sourceName) {
        if (node == null || node.isNull()) {
            return fallback;
        }
        // tokenizer_config.json writes a token either as a string or as an AddedToken object with "content".
        if (node.isTextual()) {
            return node.asText();
        }
        if (node.isObject() && node.path("content").isTextual()) {
            return node.get("content").asText();
        }
        throw new IllegalArgumentException(sourceName + ": tokenizer_config.json field \"" + field
                + "\" must be a string or an object with a string \"content\", got " + node);
    }

    private static int addedTokenId(JsonNode tok, String content, String sourceName) {
        for (JsonNode t : tok.path("added_tokens")) {
            if (content.equals(t.path("content").asText())) {
                return tokenId(t.get("id"), "added_tokens id of \"" + content + "\"", sourceName);
            }
        }
        JsonNode vocab = tok.path("model").path("vocab");
        if (vocab.has(content)) {
            return tokenId(vocab.get(content), "model.vocab[\"" + content + "\"]", sourceName);
        }
        throw new IllegalArgumentException(sourceName + ": special token \"" + content
                + "\" is neither an added token nor in the vocabulary; fix tokenizer_config.json");
    }

    private static int tokenId(JsonNode id, String field, String sourceName) {
        if (id == null || !id.isIntegralNumber() || !id.canConvertToInt() || id.asInt() < 0) {
            throw new IllegalArgumentException(sourceName + ": " + field + " must be a non-negative integer, got " + id);
        }
        return id.asInt();
    }

    static String sha256Hex(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

}
