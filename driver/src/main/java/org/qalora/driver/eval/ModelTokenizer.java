package org.qalora.driver.eval;

import java.io.IOException;
import org.apache.hadoop.conf.Configuration;
import org.qalora.datasets.tokenize.TextTokenizer;
import org.qalora.driver.pipeline.TokenizerVocabulary;
import org.qalora.quant.config.LlamaConfig;
import org.qalora.quant.io.HadoopPaths;

/** The tokenizer of a model for generate and eval: {@code --tokenizer}, else the model directory's tokenizer.json. */
public final class ModelTokenizer {
    private ModelTokenizer() {}

    /** Loads it and checks every id it can produce fits the model's embedding table. */
    public static TextTokenizer open(String model, String tokenizer, Configuration conf) throws IOException {
        HadoopPaths paths = new HadoopPaths(conf);
        String location = tokenizer != null ? tokenizer : HadoopPaths.child(model, "tokenizer.json");
        if (!paths.exists(location)) {
            throw new IllegalArgumentException(location + " does not exist: " + (tokenizer != null
                    ? "--tokenizer must be an HF tokenizer.json"
                    : "the model directory has no tokenizer.json; give one with --tokenizer"));
        }
        int vocab = LlamaConfig.read(model, paths).vocabSize();
        TokenizerVocabulary.checkFits(paths.readAllBytes(location), location, vocab, model);
        return TextTokenizer.open(location, conf);
    }
}
