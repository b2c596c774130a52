package org.qalora.worker.generate;

/**
 * How the next token is chosen from the logits: greedy (argmax, {@code temperature = 0}) or sampled from
 * {@code softmax(logits / temperature)} restricted to the nucleus, the smallest set of most probable tokens whose
 * probability reaches {@code topP} (Holtzman et al. 2019). Sampling is seeded: prompt {@code i} draws from its own
 * stream derived from ({@code seed}, i), so its output depends neither on the other prompts nor on the process.
 */
public record Sampling(double temperature, double topP, long seed) {
    public static final Sampling GREEDY = new Sampling(0, 1, 0);

    public Sampling {
        if (!(temperature >= 0) || !Double.isFinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number >= 0 (0 = greedy), got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top-p must be in (0, 1], got " + topP);
        }
    }

    public boolean greedy() { return temperature == 0; }
}
