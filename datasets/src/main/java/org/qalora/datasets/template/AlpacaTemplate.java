package org.qalora.datasets.template;

import org.qalora.datasets.read.SourceRecord;

/**
 * The Alpaca prompts, character for character as qa-lora's and QLoRA's {@code PROMPT_DICT}: chosen by whether the
 * input is empty. Those end with {@code "### Response: "} (a trailing space); the original Stanford Alpaca
 * template ends with {@code "### Response:"}. With the LLaMA/Mistral SentencePiece tokenizer the trailing space
 * becomes a lone {@code ▁} token (id 28705 with the bundled tokenizer) at the end of the source, and the target,
 * tokenized separately, starts with its own {@code ▁}-prefixed word either way. {@link #QALORA} keeps qa-lora's
 * behaviour; {@link #STANFORD} is the original.
 */
public record AlpacaTemplate(boolean responseTrailingSpace) implements PromptTemplate {

    public static final AlpacaTemplate QALORA = new AlpacaTemplate(true);
    public static final AlpacaTemplate STANFORD = new AlpacaTemplate(false);

    static final String WITH_INPUT_HEAD = "Below is an instruction that describes a task, paired with an input that "
            + "provides further context. Write a response that appropriately completes the request.\n\n"
            + "### Instruction:\n";
    static final String NO_INPUT_HEAD = "Below is an instruction that describes a task. Write a response that "
            + "appropriately completes the request.\n\n### Instruction:\n";

    @Override
    public String source(SourceRecord r) {
        if (r.instruction() == null) {
            throw new IllegalArgumentException(r.recordId() + ": the Alpaca template needs an \"instruction\" field");
        }
        String tail = responseTrailingSpace ? "\n\n### Response: " : "\n\n### Response:";
        if (r.input() == null || r.input().isEmpty()) {
            return NO_INPUT_HEAD + r.instruction() + tail;
        }
        return WITH_INPUT_HEAD + r.instruction() + "\n\n### Input:\n" + r.input() + tail;
    }

    @Override
    public String describe() {
        return responseTrailingSpace ? "alpaca-qalora" : "alpaca-stanford";
    }
}
