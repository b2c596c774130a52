package org.qalora.driver.rounds;

import java.io.Serializable;
import org.qalora.driver.state.AdapterTensors;

/**
 * Ships to executors inside the round's closure and opens a {@link SlotTrainer} there. Opening is expensive (it
 * loads the base model), so executors cache the opened trainer by {@link #identity()} and device.
 */
public interface SlotTrainerFactory extends Serializable {

    /** Identifies the base model and trainer settings: equal identities may share a cached trainer. */
    String identity();

    /** Opens a trainer on {@code device} ("cpu", or a GPU address from the task's resources). */
    SlotTrainer open(String device);

    /** The state round 1 starts from, derived from {@code seed} only. Runs on the driver. */
    AdapterTensors initialState(long seed);

    /** Hash of the data plan (which micro-batches each round and slot trains): recorded in every round manifest. */
    String planHash();
}
