package org.qalora.driver.eval;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.qalora.datasets.read.ReadResult;
import org.qalora.datasets.read.RecordFormat;
import org.qalora.datasets.read.RecordReader;
import org.qalora.datasets.read.RecordReaders;
import org.qalora.datasets.read.RecordValidator;
import org.qalora.datasets.read.SourceRecord;
import org.qalora.datasets.template.AlpacaTemplate;
import org.qalora.datasets.template.PromptTemplate;
import org.qalora.datasets.template.VerbatimTemplate;
import org.qalora.datasets.tokenize.EncodedExample;
import org.qalora.datasets.tokenize.ExampleEncoder;
import org.qalora.datasets.tokenize.TextTokenizer;

/**
 * {@code eval --data}: Alpaca or FLAN records, templated and tokenized exactly as {@code prepare} does for training
 * (Alpaca records get qa-lora's Alpaca prompt, FLAN records are used verbatim; BOS + source, then output + EOS).
 * <ul>
 *   <li>loss: the mean cross-entropy over all target tokens of all records (a token-weighted mean, not a mean of
 *       per-record means), natural log;</li>
 *   <li>exact match: the greedy generation from BOS + source, decoded, equals the record's output once both are
 *       stripped of surrounding whitespace.</li>
 * </ul>
 */
public final class RecordEval {
    private final List<SourceRecord> records;
    private final List<EvalItem> items;

    private RecordEval(List<SourceRecord> records, List<EvalItem> items) {
        this.records = records;
        this.items = items;
    }

    /** Reads every file in order; the first bad record stops the evaluation, naming file, line and field. */
    public static RecordEval read(List<String> files, RecordFormat format, TextTokenizer tokenizer,
                                  ExampleEncoder.Settings encoding, Configuration conf) throws IOException {
        ExampleEncoder encoder = new ExampleEncoder(tokenizer, encoding);
        PromptTemplate alpaca = AlpacaTemplate.QALORA;
        PromptTemplate verbatim = new VerbatimTemplate();
        List<SourceRecord> records = new ArrayList<>();
        List<EvalItem> items = new ArrayList<>();
        for (String file : files) {
            if (!new org.apache.hadoop.fs.Path(file).getFileSystem(conf).exists(new org.apache.hadoop.fs.Path(file))) {
                throw new IllegalArgumentException(file + ": no such data file");
            }
            try (RecordReader reader = RecordReaders.open(file, conf, format, RecordValidator.Limits.DEFAULT)) {
                for (ReadResult r = reader.next(); r != null; r = reader.next()) {
                    if (!r.isOk()) {
                        throw new IllegalArgumentException(r.bad().message());
                    }
                    SourceRecord rec = r.record();
                    String source = (rec.instruction() == null ? verbatim : alpaca).source(rec);
                    EncodedExample e = encoder.encode(source, rec.output());
                    int promptLength = e.numTokens() - e.numTargetTokens();
                    items.add(new EvalItem(items.size(), Arrays.copyOf(e.inputIds(), promptLength),
                            Arrays.copyOfRange(e.inputIds(), promptLength, e.numTokens())));
                    records.add(rec);
                }
            }
        }
        if (items.isEmpty()) {
            throw new IllegalArgumentException(String.join(", ", files) + " holds no record");
        }
        return new RecordEval(records, items);
    }

    public List<EvalItem> items() { return items; }

    /**
     * The result file's content: {@code exact_match} and {@code loss} (null when not asked for), {@code records},
     * and the counts behind them.
     */
    public Map<String, Object> summarize(List<EvalOutcome> outcomes, TextTokenizer tokenizer, EvalTask task) {
        if (outcomes.size() != items.size()) {
            throw new IllegalStateException(outcomes.size() + " outcomes for " + items.size() + " records");
        }
        double lossSum = 0;
        long tokens = 0;
        int matches = 0;
        for (int i = 0; i < outcomes.size(); i++) {
            EvalOutcome o = outcomes.get(i);
            lossSum += o.lossSum();                   // in record order: the same sum locally and on a cluster
            tokens += o.targetTokens();
            if (task.generate() && tokenizer.decode(o.generated()).strip().equals(records.get(i).output().strip())) {
                matches++;
            }
        }
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("exact_match", task.generate() ? (double) matches / records.size() : null);
        r.put("loss", task.loss() ? lossSum / tokens : null);
        r.put("records", records.size());
        if (task.generate()) {
            r.put("exact_matches", matches);
        }
        if (task.loss()) {
            r.put("target_tokens", tokens);
        }
        return r;
    }

}
