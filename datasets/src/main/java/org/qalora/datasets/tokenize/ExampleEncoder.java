package org.qalora.datasets.tokenize;

import java.io.Serializable;
import java.util.Arrays;

/**
 * Tokenizes (source, target) pairs the way QLoRA's and qa-lora's {@code DataCollatorForCausalLM} does:
 * <pre>
 *   src = tokenizer(source, max_length=source_max_len, truncation=True)                   # BOS, no EOS
 *   tgt = tokenizer(target + eos, max_length=target_max_len, truncation=True, add_special_tokens=False)
 *   input_ids = src ++ tgt;  labels = [-100]*len(src) ++ tgt   (labels = input_ids when train_on_source)
 * </pre>
 * Truncation keeps the beginning of each part, so a target longer than {@code targetMaxLen} loses its EOS.
 */
public final class ExampleEncoder {

    /** Lengths and masking; qa-lora's defaults are 1024 / 256 / false. */
    public record Settings(int sourceMaxLen, int targetMaxLen, boolean trainOnSource) implements Serializable {
        public static final Settings QALORA = new Settings(1024, 256, false);

        public Settings {
            if (sourceMaxLen < 1 || targetMaxLen < 1) {
                throw new IllegalArgumentException("source and target max lengths must be >= 1, got "
                        + sourceMaxLen + " / " + targetMaxLen);
            }
        }
    }

    private final TextTokenizer tokenizer;
    private final Settings settings;

    public ExampleEncoder(TextTokenizer tokenizer, Settings settings) {
        this.tokenizer = tokenizer;
        this.settings = settings;
    }

    public EncodedExample encode(String source, String target) {
        // The EOS string is appended to the text (not the id to the ids) because that is what the reference
        // does; the added-token matcher turns it into the EOS id.
        return combine(tokenizer.encode(source, true), tokenizer.encode(target + tokenizer.eosToken(), false));
    }

    /** {@link #encode} for many pairs at once (two native calls in all; see {@link TextTokenizer#encodeBatch}). */
    public EncodedExample[] encodeBatch(String[] sources, String[] targets) {
        String[] withEos = new String[targets.length];
        for (int i = 0; i < targets.length; i++) {
            withEos[i] = targets[i] + tokenizer.eosToken();
        }
        int[][] src = tokenizer.encodeBatch(sources, true);
        int[][] tgt = tokenizer.encodeBatch(withEos, false);
        EncodedExample[] out = new EncodedExample[sources.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = combine(src[i], tgt[i]);
        }
        return out;
    }

    private EncodedExample combine(int[] src, int[] tgt) {
        if (src.length > settings.sourceMaxLen()) {
            src = Arrays.copyOf(src, settings.sourceMaxLen());
        }
        if (tgt.length > settings.targetMaxLen()) {
            tgt = Arrays.copyOf(tgt, settings.targetMaxLen());
        }
        int[] ids = new int[src.length + tgt.length];                  // [S + T]
        System.arraycopy(src, 0, ids, 0, src.length);
        System.arraycopy(tgt, 0, ids, src.length, tgt.length);
        int[] labels;                                                  // [S + T]
        if (settings.trainOnSource()) {
            labels = ids.clone();
        } else {
            labels = new int[ids.length];
            Arrays.fill(labels, 0, src.length, EncodedExample.IGNORE);
            System.arraycopy(tgt, 0, labels, src.length, tgt.length);
        }
        int numTarget = settings.trainOnSource() ? ids.length : tgt.length;
        return new EncodedExample(ids, labels, numTarget);
    }
}
