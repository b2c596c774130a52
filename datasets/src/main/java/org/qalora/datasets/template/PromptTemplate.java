package org.qalora.datasets.template;

import org.qalora.datasets.read.SourceRecord;

import java.io.Serializable;

/** Turns a record into the source text the model is conditioned on (the target is the record's output). */
public interface PromptTemplate extends Serializable {
    String source(SourceRecord record);

    /** A short, stable description that goes into the prepared dataset's settings hash. */
    String describe();
}
