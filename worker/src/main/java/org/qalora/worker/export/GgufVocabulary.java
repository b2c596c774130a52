package org.qalora.worker.export;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.qalora.quant.gguf.GgufMetadata;

/**
 * An HF {@code tokenizer.json} of the LLaMA / Mistral kind (SentencePiece BPE with byte fallback) as llama.cpp's
 * {@code "llama"} vocabulary: the token strings, scores and types, the special ids and whether BOS / EOS are added.
 *
 * <p><b>Scores.</b> llama.cpp's SentencePiece tokenizer splits text into characters and repeatedly joins the adjacent
 * pair whose joined text is a token with the highest score (the leftmost on ties). HF's BPE instead joins the pair
 * that comes first in {@code merges}. We give every token the score {@code -rank} of the first merge that produces
 * it, so the two agree whenever (a) every split of a token into two tokens is a listed merge (llama.cpp can join any
 * such pair) and (b) the merges producing one token have adjacent ranks (llama.cpp ranks them together). Both hold
 * for tokenizers converted from SentencePiece models, which list every such pair in the order of the merged piece;
 * {@link #mergeGaps()} counts the pairs where they do not. Tokens no merge produces (single characters, byte pieces,
 * special tokens) are never the result of a join, so their score only has to exist: 0. (convert_hf_to_gguf.py's
 * LlamaHfVocab gives every token -1000, which makes llama.cpp join pairs left to right instead of in merge order.)
 *
 * <p><b>Types</b> follow SentencePiece and gguf-py's {@code TokenType}: NORMAL 1, UNKNOWN 2 (the model's
 * {@code unk_token}), CONTROL 3 (added tokens marked special), USER_DEFINED 4 (other added tokens), UNUSED 5 (the
 * {@code [PADn]} rows when config.json's vocab_size exceeds the tokenizer), BYTE 6 ({@code <0xNN>}).
 *
 * <p><b>Special ids</b> are resolved as our {@code TextTokenizer} resolves them: {@code bos_token} / {@code eos_token}
 * / {@code pad_token} of tokenizer_config.json ({@code <s>}, {@code </s>}, none by default). Whether BOS / EOS are
 * added comes from the {@code post_processor} template, which is what the HF library (and so our encode) applies.
 */
public final class GgufVocabulary {
    public static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String SPACE = "\u2581";

    private final List<String> tokens;
    private final float[] scores;
    private final int[] types;
    private final int bosId, eosId, unkId, padId;
    private final boolean addBos, addEos;
    private final int mergeGaps;

    private GgufVocabulary(List<String> tokens, float[] scores, int[] types, int bosId, int eosId, int unkId, int padId,
                           boolean addBos, boolean addEos, int mergeGaps) {
        this.tokens = tokens;
        this.scores = scores;
        this.types = types;
        this.bosId = bosId;
        this.eosId = eosId;
        this.unkId = unkId;
        this.padId = padId;
        this.addBos = addBos;
        this.addEos = addEos;
        this.mergeGaps = mergeGaps;
    }

    /**
     * Reads the tokenizer. {@code where} names tokenizer.json in errors; {@code configOrNull} is tokenizer_config.json;
     * {@code modelVocab} is config.json's vocab_size (the vocabulary is padded to it, and may not exceed it).
     */
    public static GgufVocabulary read(byte[] tokenizerJson, byte[] configOrNull, String where, int modelVocab) {
        JsonNode tok = parse(tokenizerJson, where);
        JsonNode cfg = configOrNull == null ? JSON.createObjectNode() : parse(configOrNull, where + " (tokenizer_config.json)");
        JsonNode model = tok.path("model");
        if (!"BPE".equals(model.path("type").asText()) || !model.path("byte_fallback").asBoolean(false)) {
            throw refuse(where, "model is " + model.path("type").asText("missing") + (model.path("byte_fallback")
                    .asBoolean(false) ? "" : " without byte_fallback"), "a SentencePiece-style BPE with byte_fallback");
        }
        checkNormalization(tok, where);

        Map<String, Integer> vocab = new HashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = model.path("vocab").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            vocab.put(e.getKey(), id(e.getValue(), where, "model.vocab[\"" + e.getKey() + "\"]"));
        }
        Map<Integer, JsonNode> added = new HashMap<>();
        for (JsonNode t : tok.path("added_tokens")) {
            added.put(id(t.get("id"), where, "added_tokens id of " + t.path("content")), t);
        }
        int size = 0;
        for (int id : vocab.values()) {
            size = Math.max(size, id + 1);
        }
        for (int id : added.keySet()) {
            size = Math.max(size, id + 1);
        }
        if (size > modelVocab) {
            throw new IllegalArgumentException(where + " has ids up to " + (size - 1) + " but config.json's vocab_size is "
                    + modelVocab + ": the embedding table has no rows for them; use the model's own tokenizer");
        }
        String[] text = new String[modelVocab];
        int[] types = new int[modelVocab];
        float[] scores = new float[modelVocab];
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            text[e.getValue()] = e.getKey();
            types[e.getValue()] = e.getKey().matches("<0x[0-9A-Fa-f]{2}>") ? BYTE : NORMAL;
        }
        for (Map.Entry<Integer, JsonNode> e : added.entrySet()) {
            text[e.getKey()] = e.getValue().path("content").asText();
            types[e.getKey()] = e.getValue().path("special").asBoolean(false) ? CONTROL : USER_DEFINED;
        }
        int pads = 0;
        for (int i = 0; i < modelVocab; i++) {
            if (text[i] == null) {
                if (i < size) {
                    throw new IllegalArgumentException(where + ": no token has id " + i + " (ids must be 0.." + (size - 1)
                            + " without gaps)");
                }
                text[i] = "[PAD" + (++pads) + "]";          // convert_hf_to_gguf's name for rows past the tokenizer
                types[i] = UNUSED;
            }
        }
        int unk = -1;
        if (model.hasNonNull("unk_token")) {
            Integer u = vocab.get(model.get("unk_token").asText());
            if (u == null) {
                throw new IllegalArgumentException(where + ": model.unk_token " + model.get("unk_token")
                        + " is not in model.vocab");
            }
            unk = u;
            types[unk] = UNKNOWN;
        }
        int gaps = scoreMerges(model.path("merges"), vocab, scores, where);

        String bos = tokenName(cfg.get("bos_token"), "<s>", "bos_token", where);
        String eos = tokenName(cfg.get("eos_token"), "</s>", "eos_token", where);
        String pad = tokenName(cfg.get("pad_token"), null, "pad_token", where);
        int bosId = specialId(bos, vocab, added, where), eosId = specialId(eos, vocab, added, where);
        int padId = pad == null ? -1 : specialId(pad, vocab, added, where);
        boolean[] addBosEos = template(tok.get("post_processor"), bos, eos, where);
        return new GgufVocabulary(List.of(text), scores, types, bosId, eosId, unk, padId, addBosEos[0], addBosEos[1],
                gaps);
    }

    /**
     * Only the LLaMA/Mistral normalization is exported: prepend "▁" and turn spaces into "▁", no pre-tokenizer. That
     * is llama.cpp's add_space_prefix with escaped whitespace; anything else would tokenize differently there.
     */
    private static void checkNormalization(JsonNode tok, String where) {
        JsonNode n = tok.path("normalizer");
        List<JsonNode> steps = new ArrayList<>();
        if ("Sequence".equals(n.path("type").asText())) {
            n.path("normalizers").forEach(steps::add);
        } else if (!n.isMissingNode() && !n.isNull()) {
            steps.add(n);
        }
        boolean ok = steps.size() == 2
                && "Prepend".equals(steps.get(0).path("type").asText()) && SPACE.equals(steps.get(0).path("prepend").asText())
                && "Replace".equals(steps.get(1).path("type").asText())
                && " ".equals(steps.get(1).path("pattern").path("String").asText(null))
                && SPACE.equals(steps.get(1).path("content").asText());
        JsonNode pre = tok.get("pre_tokenizer");
        if (!ok || (pre != null && !pre.isNull())) {
            throw refuse(where, "normalizer " + n + " with pre_tokenizer " + pre,
                    "the LLaMA normalizer (Prepend \"\u2581\", Replace \" \" by \"\u2581\") and no pre_tokenizer");
        }
    }

    private static IllegalArgumentException refuse(String where, String found, String needed) {
        return new IllegalArgumentException(where + ": " + found + " cannot be written as llama.cpp's SentencePiece"
                + " (\"llama\") vocabulary, which needs " + needed + " to tokenize as HF does; export a model whose"
                + " tokenizer.json is of the LLaMA-2 / Mistral kind");
    }

    /** Fills scores with -(first merge rank); returns how many listed merges break conditions (a) or (b). */
    private static int scoreMerges(JsonNode merges, Map<String, Integer> vocab, float[] scores, String where) {
        Map<String, Integer> firstRank = new HashMap<>();
        Map<String, Integer> lastRank = new HashMap<>();
        Set<String> pairs = new HashSet<>();
        int rank = 0;
        for (JsonNode m : merges) {
            String[] pair;
            if (m.isTextual()) {
                pair = m.asText().split(" ", -1);
            } else if (m.isArray() && m.size() == 2) {
                pair = new String[] {m.get(0).asText(), m.get(1).asText()};
            } else {
                pair = null;
            }
            if (pair == null || pair.length != 2) {
                throw new IllegalArgumentException(where + ": merge " + rank + " is " + m + ", not a pair of tokens");
            }
            String joined = pair[0] + pair[1];
            Integer id = vocab.get(joined);
            if (id == null) {
                throw new IllegalArgumentException(where + ": merge " + rank + " " + m + " makes \"" + joined
                        + "\", which is not in model.vocab");
            }
            firstRank.putIfAbsent(joined, rank);
            lastRank.put(joined, rank);
            pairs.add(pair[0] + "\u0000" + pair[1]);
            rank++;
        }
        for (Map.Entry<String, Integer> e : firstRank.entrySet()) {
            // float holds every integer up to 2^24 exactly: far more merges than any LLaMA vocabulary has.
            scores[vocab.get(e.getKey())] = (float) -e.getValue();
        }
        int gaps = 0;
        // (b): merges of one token spread over ranks that other tokens' merges interleave.
        Map<String, Integer> perToken = new HashMap<>();
        for (String p : pairs) {
            perToken.merge(p.replace("\u0000", ""), 1, Integer::sum);
        }
        for (Map.Entry<String, Integer> e : firstRank.entrySet()) {
            if (lastRank.get(e.getKey()) - e.getValue() + 1 != perToken.get(e.getKey())) {
                gaps++;
            }
        }
        // (a): a split of a token into two tokens that no merge lists.
        for (String t : vocab.keySet()) {
            int[] cps = t.codePoints().toArray();
            for (int k = 1; k < cps.length; k++) {
                String l = new String(cps, 0, k), r = new String(cps, k, cps.length - k);
                if (vocab.containsKey(l) && vocab.containsKey(r) && !pairs.contains(l + "\u0000" + r)) {
                    gaps++;
                }
            }
        }
        return gaps;
    }

    private static boolean[] template(JsonNode post, String bos, String eos, String where) {
        if (post == null || post.isNull()) {
            return new boolean[] {false, false};
        }
        List<JsonNode> processors = new ArrayList<>();
        if ("Sequence".equals(post.path("type").asText())) {
            post.path("processors").forEach(processors::add);
        } else {
            processors.add(post);
        }
        boolean[] result = {false, false};
        for (JsonNode p : processors) {
            if (!"TemplateProcessing".equals(p.path("type").asText())) {
                throw refuse(where, "post_processor " + p.path("type"), "a TemplateProcessing post_processor (BOS"
                        + " and/or EOS around the text)");
            }
            JsonNode single = p.path("single");
            for (int i = 0; i < single.size(); i++) {
                JsonNode item = single.get(i);
                if (item.has("Sequence")) {
                    continue;
                }
                String special = item.path("SpecialToken").path("id").asText(null);
                if (i == 0 && bos.equals(special)) {
                    result[0] = true;
                } else if (i == single.size() - 1 && eos.equals(special)) {
                    result[1] = true;
                } else {
                    throw refuse(where, "post_processor template " + single, "at most BOS first and EOS last");
                }
            }
        }
        return result;
    }

    private static int specialId(String content, Map<String, Integer> vocab, Map<Integer, JsonNode> added, String where) {
        for (Map.Entry<Integer, JsonNode> e : added.entrySet()) {
            if (content.equals(e.getValue().path("content").asText())) {
                return e.getKey();
            }
        }
        Integer id = vocab.get(content);
        if (id == null) {
            throw new IllegalArgumentException(where + ": special token \"" + content + "\" is neither an added token nor"
                    + " in the vocabulary; fix tokenizer_config.json");
        }
        return id;
    }

    private static String tokenName(JsonNode node, String fallback, String field, String where) {
        if (node == null || node.isNull()) {
            return fallback;
        }
        if (node.isTextual()) {
            return node.asText();
        }
        if (node.isObject() && node.path("content").isTextual()) {
            return node.get("content").asText();
        }
        throw new IllegalArgumentException(where + ": tokenizer_config.json field \"" + field + "\" must be a string or"
                + " an object with a string \"content\", got " + node);
    }

    private static int id(JsonNode v, String where, String field) {
        if (v == null || !v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < 0) {
            throw new IllegalArgumentException(where + ": " + field + " must be a non-negative integer, got " + v);
        }
        return v.asInt();
    }

    private static JsonNode parse(byte[] bytes, String where) {
        try {
            JsonNode n = JSON.readTree(bytes);
            if (n == null || !n.isObject()) {
                throw new IllegalArgumentException(where + ": not a JSON object");
            }
            return n;
        } catch (IOException e) {
            throw new IllegalArgumentException(where + ": not valid JSON (" + e.getMessage() + ")", e);
        }
    }

    /** Writes the tokenizer.ggml.* keys. */
    public void addTo(GgufMetadata m) {
        m.putString("tokenizer.ggml.model", "llama");
        m.putString("tokenizer.ggml.pre", "default");
        m.putStrings("tokenizer.ggml.tokens", tokens);
        m.putFloat32s("tokenizer.ggml.scores", scores);
        m.putInt32s("tokenizer.ggml.token_type", types);
        m.putUint32("tokenizer.ggml.bos_token_id", bosId);
        m.putUint32("tokenizer.ggml.eos_token_id", eosId);
        if (unkId >= 0) {
            m.putUint32("tokenizer.ggml.unknown_token_id", unkId);
        }
        if (padId >= 0) {
            m.putUint32("tokenizer.ggml.padding_token_id", padId);
        }
        m.putBool("tokenizer.ggml.add_bos_token", addBos);
        m.putBool("tokenizer.ggml.add_eos_token", addEos);
        m.putBool("tokenizer.ggml.add_space_prefix", true);      // the Prepend "▁" normalizer checked above
    }

    public int size() { return tokens.size(); }
    public List<String> tokens() { return tokens; }
    public float[] scores() { return scores.clone(); }
    public int[] types() { return types.clone(); }
    public int bosId() { return bosId; }
    public int eosId() { return eosId; }
    public int unkId() { return unkId; }
    public int padId() { return padId; }
    public boolean addBos() { return addBos; }
    public boolean addEos() { return addEos; }

    /** Merge pairs where llama.cpp's score order may join differently from HF's merge order (0 for our tokenizer). */
    public int mergeGaps() { return mergeGaps; }

    @Override
    public String toString() {
        return "GgufVocabulary[" + tokens.size() + " tokens, bos " + bosId + ", eos " + eosId + ", unk " + unkId
                + ", merge gaps " + mergeGaps + ", types " + Arrays.stream(types).distinct().sorted().boxed().toList() + "]";
    }
}
