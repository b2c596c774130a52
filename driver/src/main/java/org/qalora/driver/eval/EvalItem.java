package org.qalora.driver.eval;

import java.io.Serializable;

/**
 * One unit of evaluation, already tokenized on the driver (executors need no tokenizer).
 *
 * @param index  the item's place in the input: results are reported and summed in this order
 * @param prompt BOS + the templated source (a record), or the whole MMLU prompt
 * @param target the target ids (the output + EOS, as training tokenizes it); empty for MMLU
 */
public record EvalItem(int index, int[] prompt, int[] target) implements Serializable {}
