package org.qalora.worker.train;

import org.qalora.worker.adapter.Pooling;

/**
 * Optimizer and schedule settings of {@link LocalTrainer}.
 *
 * @param learningRate peak learning rate
 * @param weightDecay  decoupled (AdamW) weight decay
 * @param maxGradNorm  clip the global gradient norm to this (PyTorch clip_grad_norm_); 0 disables clipping
 * @param warmupSteps  linear warmup steps
 * @param totalSteps   steps of the whole run, for linear/cosine decay
 * @param recompute    keep only each layer's input and recompute its activations in backward
 * @param scheduleStart the global step the schedule starts at: a warm-started run continues the optimizer's step
 *                      count (Adam's bias correction belongs to its moments) but runs its own warmup and decay over
 *                      its own {@code totalSteps}, so global step {@code scheduleStart + s} uses the rate of step s
 */
public record TrainingConfig(double learningRate, double beta1, double beta2, double eps, double weightDecay,
                             double maxGradNorm, Schedule schedule, long warmupSteps, long totalSteps,
                             boolean recompute, long scheduleStart) implements java.io.Serializable {
    /** A schedule from global step 0 (a run that does not warm-start). */
    public TrainingConfig(double learningRate, double beta1, double beta2, double eps, double weightDecay,
                          double maxGradNorm, Schedule schedule, long warmupSteps, long totalSteps, boolean recompute) {
        this(learningRate, beta1, beta2, eps, weightDecay, maxGradNorm, schedule, warmupSteps, totalSteps, recompute, 0);
    }

    /** Plain LoRA's usual rate (qa-lora's and QLoRA's scripts). */
    public static final double LORA_LEARNING_RATE = 2e-4;

    public TrainingConfig {
        if (!(learningRate >= 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0)
                || !(weightDecay >= 0) || !(maxGradNorm >= 0) || warmupSteps < 0 || totalSteps < 0 || scheduleStart < 0) {
            throw new IllegalArgumentException("invalid training config " + TrainingConfig.class.getSimpleName()
                    + "[lr " + learningRate + ", betas " + beta1 + "/" + beta2 + ", eps " + eps + ", wd " + weightDecay
                    + ", clip " + maxGradNorm + ", warmup " + warmupSteps + ", total " + totalSteps + "]");
        }
    }

    /**
     * The default learning rate for a pooling convention. Adam's step size is independent of the gradient's scale,
     * so what changes between conventions is how strongly a given change of A moves the output: with mean pooling
     * the pooled inputs are ~1/sqrt(g) of an input's size (an average of g roughly independent values), and
     * the project's measurement on a small pretrained LLaMA found mean pooling trains well only at ~5x plain LoRA's rate, hence
     * LoRA 2e-4 -> mean 1e-3. Sum pooling (~sqrt(g) larger inputs) and PEFT's mean x (in/g) work at LoRA's rate,
     * and so does plain LoRA ({@link Pooling#NONE}).
     */
    public static double defaultLearningRate(Pooling pooling) {
        return switch (pooling) {
            case MEAN -> 5 * LORA_LEARNING_RATE;
            case SUM, PEFT, NONE -> LORA_LEARNING_RATE;
        };
    }

    /**
     * qa-lora's recipe: AdamW betas 0.9/0.999, eps 1e-8, no weight decay, clip 0.3, constant schedule, with the
     * pooling's default learning rate.
     */
    public static TrainingConfig defaults(Pooling pooling, long totalSteps) {
        return new TrainingConfig(defaultLearningRate(pooling), 0.9, 0.999, 1e-8, 0.0, 0.3, Schedule.CONSTANT, 0,
                totalSteps, false);
    }

    public TrainingConfig withLearningRate(double lr) {
        return new TrainingConfig(lr, beta1, beta2, eps, weightDecay, maxGradNorm, schedule, warmupSteps, totalSteps, recompute, scheduleStart);
    }

    /** The learning-rate schedule and its linear warmup ({@code qalora train --lr-schedule, --warmup-steps}). */
    public TrainingConfig withSchedule(Schedule newSchedule, long warmup) {
        return new TrainingConfig(learningRate, beta1, beta2, eps, weightDecay, maxGradNorm, newSchedule, warmup,
                totalSteps, recompute, scheduleStart);
    }

    public TrainingConfig withRecompute(boolean on) {
        return new TrainingConfig(learningRate, beta1, beta2, eps, weightDecay, maxGradNorm, schedule, warmupSteps,
                totalSteps, on, scheduleStart);
    }

    /** The same settings with the schedule starting at global step {@code start} (a warm start). */
    public TrainingConfig withScheduleStart(long start) {
        return new TrainingConfig(learningRate, beta1, beta2, eps, weightDecay, maxGradNorm, schedule, warmupSteps,
                totalSteps, recompute, start);
    }

    /** The learning rate of the optimizer step with 0-based global index {@code s} (s >= scheduleStart). */
    public double learningRateAt(long s) {
        return learningRate * schedule.multiplier(s - scheduleStart, warmupSteps, totalSteps);
    }
}
