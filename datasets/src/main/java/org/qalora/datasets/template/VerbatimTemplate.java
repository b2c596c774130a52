package org.qalora.datasets.template;

import org.qalora.datasets.read.SourceRecord;

/** FLAN v2: the {@code inputs} are already a templated prompt, used as the source unchanged. */
public record VerbatimTemplate() implements PromptTemplate {
    @Override
    public String source(SourceRecord r) {
        return r.input();
    }

    @Override
    public String describe() {
        return "verbatim";
    }
}
