package org.qalora.quant.config;

/**
 * LLaMA 3.1 ("llama3") RoPE frequency scaling: wavelengths above {@code originalMaxPositionEmbeddings /
 * lowFreqFactor} are divided by {@code factor}, those below {@code originalMaxPositionEmbeddings / highFreqFactor}
 * are kept, and the band in between is interpolated (HF {@code _compute_llama3_parameters}).
 */
public record RopeScaling(double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositionEmbeddings) {
    public RopeScaling {
        if (!(factor > 0) || !(lowFreqFactor > 0) || !(highFreqFactor > lowFreqFactor) || originalMaxPositionEmbeddings <= 0) {
            throw new IllegalArgumentException("llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor"
                    + " and original_max_position_embeddings > 0, got factor=" + factor + ", low_freq_factor=" + lowFreqFactor
                    + ", high_freq_factor=" + highFreqFactor + ", original_max_position_embeddings=" + originalMaxPositionEmbeddings);
        }
    }
}
