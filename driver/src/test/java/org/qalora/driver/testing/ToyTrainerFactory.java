package org.qalora.driver.testing;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.qalora.driver.rounds.SlotAssignment;
import org.qalora.driver.rounds.SlotTrainer;
import org.qalora.driver.rounds.SlotTrainerFactory;
import org.qalora.driver.state.AdapterTensors;

/**
 * TEST ONLY: a deterministic toy trainer with the shape of QA-LoRA's (per module an A [r, cols] and a B [out, r])
 * and real AdamW steps on a least-squares objective |B A - T|^2, where each (round, slot) sees its own target T =
 * shared + slot-specific noise, and trains a slot-dependent number of "tokens". Fast enough to test the rounds,
 * averaging, checkpoints, resume and faults in seconds; the end-to-end tests use the real trainer.
 */
public final class ToyTrainerFactory implements SlotTrainerFactory {
    private static final long serialVersionUID = 1L;
    private static final String[] MODULES = {"self_attn.q_proj", "mlp.down_proj"};
    private static final int OUT = 6, RANK = 2, COLS = 4;
    private final long dataSeed;
    private final String nanAt; // "round:slot:step" where the loss turns NaN, or ""
    private final float lr;

    public ToyTrainerFactory(long dataSeed, String nanAt, float lr) {
        this.dataSeed = dataSeed;
        this.nanAt = nanAt;
        this.lr = lr;
    }

    @Override public String identity() { return "toy:" + dataSeed + ":" + nanAt + ":" + lr; }

    @Override public String planHash() { return "toy-plan-" + dataSeed; }

    @Override
    public AdapterTensors initialState(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        Map<String, AdapterTensors.Tensor> t = new LinkedHashMap<>();
        for (String m : MODULES) {
            String p = "base_model.model.model.layers.0." + m;
            float[] a = new float[RANK * COLS];
            for (int i = 0; i < a.length; i++) {
                a[i] = (float) (rnd.nextGaussian() * 0.5);
            }
            t.put(p + ".lora_A.weight", tensor(new long[] {RANK, COLS}, a));
            t.put(p + ".lora_B.weight", tensor(new long[] {OUT, RANK}, new float[OUT * RANK])); // B = 0, as LoRA
        }
        return new AdapterTensors(t, 0);
    }

    private static AdapterTensors.Tensor tensor(long[] shape, float[] w) {
        return new AdapterTensors.Tensor(shape, w, new float[w.length], new float[w.length]);
    }

    @Override
    public SlotTrainer open(String device) {
        return new SlotTrainer() {
            @Override
            public SlotOutcome train(SlotAssignment assignment, AdapterTensors start) {
                return ToyTrainerFactory.this.train(assignment, start);
            }

            @Override
            public EvalOutcome evaluate(AdapterTensors state, int part, int parts) {
                return ToyTrainerFactory.this.evaluate(state, part, parts);
            }
        };
    }

    /**
     * The toy's held-out loss: |B A - shared target|^2 (no batch noise), as if part p of the held-out data had
     * 7 + p target tokens of that loss.
     */
    private SlotTrainer.EvalOutcome evaluate(AdapterTensors state, int part, int parts) {
        double loss = 0;
        for (String m : MODULES) {
            String p = "base_model.model.model.layers.0." + m;
            float[] aw = state.tensor(p + ".lora_A.weight").weights(), bw = state.tensor(p + ".lora_B.weight").weights();
            SplittableRandom shared = new SplittableRandom(dataSeed ^ m.hashCode());
            for (int o = 0; o < OUT; o++) {
                for (int c = 0; c < COLS; c++) {
                    double y = 0;
                    for (int j = 0; j < RANK; j++) {
                        y += bw[o * RANK + j] * aw[j * COLS + c];
                    }
                    double d = y - shared.nextGaussian();
                    loss += d * d / (OUT * COLS);
                }
            }
        }
        long tokens = 7 + part;
        return new SlotTrainer.EvalOutcome(loss * tokens, tokens);
    }

    private SlotTrainer.SlotOutcome train(SlotAssignment a, AdapterTensors start) {
        Map<String, float[][]> w = new LinkedHashMap<>(); // key -> {weights, m, v} copies
        for (String k : start.keys()) {
            AdapterTensors.Tensor t = start.tensor(k);
            w.put(k, new float[][] {t.weights().clone(), t.adamM().clone(), t.adamV().clone()});
        }
        long tokens = 10 + (a.slot() * 7L + a.round() * 3L) % 5;
        double lossSum = 0;
        double[] stepLosses = new double[a.steps()];
        long step = start.step();
        for (int s = 0; s < a.steps(); s++) {
            step++;
            double loss = 0;
            for (String m : MODULES) {
                String p = "base_model.model.model.layers.0." + m;
                float[][] aw = w.get(p + ".lora_A.weight");
                float[][] bw = w.get(p + ".lora_B.weight");
                double[] target = target(m, a, s);
                float[] gA = new float[RANK * COLS];
                float[] gB = new float[OUT * RANK];
                for (int o = 0; o < OUT; o++) {
                    for (int c = 0; c < COLS; c++) {
                        double y = 0;
                        for (int j = 0; j < RANK; j++) {
                            y += bw[0][o * RANK + j] * aw[0][j * COLS + c];
                        }
                        double d = y - target[o * COLS + c];
                        loss += d * d / (OUT * COLS);
                        for (int j = 0; j < RANK; j++) {
                            gB[o * RANK + j] += (float) (2 * d * aw[0][j * COLS + c] / (OUT * COLS));
                            gA[j * COLS + c] += (float) (2 * d * bw[0][o * RANK + j] / (OUT * COLS));
                        }
                    }
                }
                adamw(aw, gA, step);
                adamw(bw, gB, step);
            }
            if (nanAt.equals(a.round() + ":" + a.slot() + ":" + s)) {
                loss = Double.NaN;
            }
            if (!Double.isFinite(loss)) {
                throw new SlotTrainer.NonFiniteLossError(a.round(), a.slot(), s, step, "loss " + loss);
            }
            stepLosses[s] = loss;
            lossSum += loss * tokens / a.steps();
        }
        Map<String, AdapterTensors.Tensor> out = new LinkedHashMap<>();
        for (String k : start.keys()) {
            float[][] x = w.get(k);
            out.put(k, new AdapterTensors.Tensor(start.tensor(k).shape().clone(), x[0], x[1], x[2]));
        }
        return new SlotTrainer.SlotOutcome(new AdapterTensors(out, step), tokens, lossSum, a.steps(), stepLosses);
    }

    /** The (round, slot, step) target: a shared matrix plus small noise particular to that batch. */
    private double[] target(String module, SlotAssignment a, int localStep) {
        SplittableRandom shared = new SplittableRandom(dataSeed ^ module.hashCode());
        SplittableRandom noise = new SplittableRandom(a.seed() * 31 + localStep);
        double[] t = new double[OUT * COLS];
        for (int i = 0; i < t.length; i++) {
            t[i] = shared.nextGaussian() + 0.1 * noise.nextGaussian();
        }
        return t;
    }

    private void adamw(float[][] p, float[] g, long step) {
        double b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
        for (int i = 0; i < g.length; i++) {
            p[0][i] *= (float) (1 - lr * wd);
            p[1][i] = (float) (b1 * p[1][i] + (1 - b1) * g[i]);
            p[2][i] = (float) (b2 * p[2][i] + (1 - b2) * g[i] * g[i]);
            double mh = p[1][i] / (1 - Math.pow(b1, step));
            double vh = p[2][i] / (1 - Math.pow(b2, step));
            p[0][i] -= (float) (lr * mh / (Math.sqrt(vh) + eps));
        }
    }
}
