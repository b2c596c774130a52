package org.qalora.worker.train;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.qalora.quant.util.SplitMix64;
import org.qalora.worker.adapter.AdapterSlot;
import org.qalora.worker.adapter.QaloraAdapter;
import org.qalora.worker.adapter.QaloraConfig;
import org.qalora.worker.backend.Backend;
import org.qalora.worker.backend.Tensor;
import org.qalora.worker.model.ActivationPlan;
import org.qalora.worker.model.LlamaModel;
import org.qalora.worker.model.LlamaPass;

/**
 * Runs optimizer steps of QA-LoRA training on one frozen base model, without Spark. Each step accumulates the
 * gradients of its micro-batches (normalised by the step's total number of target tokens, so the result equals
 * one big batch), clips them by global norm, then applies PyTorch AdamW. Deterministic: the same state, batches
 * and seed give bit-identical results.
 */
public final class LocalTrainer {
    private final LlamaModel base;
    private final QaloraConfig adapterConfig;
    private final TrainingConfig config;

    private ActivationPlan plan; // the last micro-batch shape's buffers, reused while the shape repeats

    public LocalTrainer(LlamaModel base, QaloraConfig adapter, TrainingConfig config) {
        QaloraAdapter.checkFits(base, adapter);
        this.base = base;
        this.adapterConfig = adapter;
        this.config = config;
    }

    /**
     * @param start the adapter (and optimizer) state to continue from
     * @param steps each element is one optimizer step made of its micro-batches
     * @param seed  run seed; dropout masks derive from (seed, global step, micro-batch, layer, projection)
     * @throws NonFiniteLossException naming the global step whose loss or gradient is not finite
     *
     * <p>Calls on one instance are serialised (they share the activation buffers); Spark tasks that share a trainer
     * on an executor take turns, which costs nothing since they would compete for the same backend threads.
     */
    public TrainResult run(AdapterState start, List<List<MicroBatch>> steps, long seed) {
        return run(start, false, steps, seed);
    }

    /**
     * As {@link #run}, training in {@code start}'s own arrays (on the CPU; a GPU uploads them): the caller hands the
     * state over and must not use it afterwards. The result's arrays are the trainer's too, not copies. An executor
     * that reads a round's start state for each run so holds the adapter's weights and moments once while training,
     * where {@link #run} holds the caller's copy beside the trainer's (at LLaMA-7B widths 32 MiB per layer).
     */
    public TrainResult runConsuming(AdapterState start, List<List<MicroBatch>> steps, long seed) {
        return run(start, true, steps, seed);
    }

    private synchronized TrainResult run(AdapterState start, boolean takeArrays, List<List<MicroBatch>> steps,
                                         long seed) {
        if (!start.config().equals(adapterConfig)) {
            throw new IllegalArgumentException("adapter state was made for " + start.config()
                    + " but this trainer trains " + adapterConfig);
        }
        Backend be = base.backend();
        QaloraAdapter adapter = QaloraAdapter.create(base, adapterConfig, start.weightMap(), true, takeArrays);
        Map<String, Tensor> m = new LinkedHashMap<>(), v = new LinkedHashMap<>();
        for (String key : start.keys()) {
            long[] s = start.shape(key);
            m.put(key, place(be, start.adamM(key), s, takeArrays));
            v.put(key, place(be, start.adamV(key), s, takeArrays));
        }
        // Every parameter with its gradient and moments, in key order (A then B per slot): one fused norm and one
        // fused AdamW per step.
        List<Tensor> params = new ArrayList<>(), gradients = new ArrayList<>();
        List<Tensor> moments1 = new ArrayList<>(), moments2 = new ArrayList<>();
        for (AdapterSlot s : adapter.slots()) {
            params.add(s.a);
            gradients.add(s.gradA);
            moments1.add(m.get(s.keyA()));
            moments2.add(v.get(s.keyA()));
            params.add(s.b);
            gradients.add(s.gradB);
            moments1.add(m.get(s.keyB()));
            moments2.add(v.get(s.keyB()));
        }
        long step = start.step();
        double lossSum = 0;
        long targetTokens = 0;
        double[] stepLosses = new double[steps.size()];
        for (int i = 0; i < steps.size(); i++) {
            long globalStep = step + 1;
            List<MicroBatch> micro = steps.get(i);
            List<int[]> targets = new ArrayList<>(micro.size());
            long stepTargets = 0;
            for (MicroBatch mb : micro) {
                int[] t = LlamaPass.shiftedTargets(mb.labels(), mb.batchSize(), mb.seqLen());
                targets.add(t);
                stepTargets += LlamaPass.countTargets(t);
            }
            if (stepTargets == 0) {
                throw new IllegalArgumentException("global step " + globalStep + " has no target tokens (every label "
                        + "is -100 after the causal shift): drop such batches before training");
            }
            adapter.zeroGradients();
            double stepLoss = 0;
            float gradScale = (float) (1.0 / stepTargets);
            for (int j = 0; j < micro.size(); j++) {
                MicroBatch mb = micro.get(j);
                ActivationPlan plan = plan(mb.batchSize(), mb.seqLen());
                long passSeed = passSeed(seed, globalStep, j);
                LlamaPass.forward(base, adapter, plan, mb.inputIds(), passSeed, null);
                stepLoss += LlamaPass.lossAndBackward(base, adapter, plan, targets.get(j), gradScale, passSeed);
            }
            if (!Double.isFinite(stepLoss)) {
                throw new NonFiniteLossException(globalStep, "loss " + stepLoss);
            }
            double norm = Math.sqrt(be.sumOfSquares(gradients));
            if (!Double.isFinite(norm)) {
                throw new NonFiniteLossException(globalStep, "gradient norm " + norm);
            }
            // torch.nn.utils.clip_grad_norm_: coef = max / (norm + 1e-6), clamped to 1.
            float clip = config.maxGradNorm() > 0 ? (float) Math.min(1.0, config.maxGradNorm() / (norm + 1e-6)) : 1f;
            double lr = config.learningRateAt(globalStep - 1);
            be.adamw(params, gradients, moments1, moments2, clip, lr, config.beta1(), config.beta2(), config.eps(),
                    config.weightDecay(), globalStep);
            stepLosses[i] = stepLoss / stepTargets;
            lossSum += stepLoss;
            targetTokens += stepTargets;
            step = globalStep;
        }
        // The trainer's tensors end here: their arrays become the result (released, not copied, on the CPU).
        Map<String, float[]> mm = new LinkedHashMap<>(), vv = new LinkedHashMap<>();
        for (String key : start.keys()) {
            mm.put(key, be.release(m.get(key)));
            vv.put(key, be.release(v.get(key)));
        }
        AdapterState end = new AdapterState(adapterConfig, start.shapeMap(), adapter.releaseWeights(), mm, vv, step);
        return new TrainResult(end, lossSum, targetTokens, steps.size(), stepLosses);
    }

    /** A moment on the backend: the caller's array itself ({@link Backend#adopt}) or a copy. */
    private static Tensor place(Backend be, float[] host, long[] shape, boolean take) {
        return take ? be.adopt(host, (int) shape[0], (int) shape[1]) : be.upload(host, (int) shape[0], (int) shape[1]);
    }

    /** Dropout seed of micro-batch {@code j} of a global step: a SplitMix64 mix of (seed, step, j). */
    static long passSeed(long seed, long globalStep, int j) {
        return SplitMix64.mix64(seed ^ (globalStep * SplitMix64.GOLDEN_GAMMA) ^ ((j + 1L) * 0xC2B2AE3D27D4EB4FL));
    }

    /**
     * Buffers for a micro-batch shape. Only one plan is kept: length-grouped batches come in many shapes, and
     * caching them all would multiply the activation memory; re-planning costs one allocation per shape change.
     */
    private ActivationPlan plan(int batch, int seqLen) {
        if (plan == null || plan.batch != batch || plan.seqLen != seqLen) {
            plan = null; // let the old buffers go before allocating the new ones
            plan = new ActivationPlan(base, adapterConfig, batch, seqLen, true, config.recompute(),
                    base.backend().logitChunkTokens());
        }
        return plan;
    }
}
