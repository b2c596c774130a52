package org.qalora.driver.spark;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import org.apache.spark.serializer.KryoRegistrator;
import org.qalora.datasets.prepare.PrepareKryoRegistrator;
import org.qalora.driver.eval.EvalItem;
import org.qalora.driver.eval.EvalOutcome;
import org.qalora.driver.rounds.EvalMetrics;
import org.qalora.driver.rounds.SlotAssignment;
import org.qalora.driver.rounds.SlotMetrics;

/**
 * Registers every class our jobs ship between JVMs through Spark's serializer (RDD elements and task results), so
 * that {@code spark.kryo.registrationRequired=true} holds and Kryo writes class ids instead of class names. The
 * task closures themselves go through Java serialization and need no registration. Tests run with registration
 * required, so a class missing here fails a test rather than slowing production silently.
 *
 * <p>Our messages are records, which Kryo's reflective FieldSerializer cannot build (records have no settable
 * fields), so each has an explicit serializer, field by field, in declaration order.
 *
 * <p>The datasets module's prepare job registers its own classes ({@link PrepareKryoRegistrator}); this one calls it,
 * so a train and a prepare under the same {@code spark.kryo.registrator} both run.
 */
public final class QaloraKryoRegistrator implements KryoRegistrator {
    @Override
    public void registerClasses(Kryo kryo) {
        new PrepareKryoRegistrator().registerClasses(kryo);
        kryo.register(SlotAssignment.class, new SlotAssignmentSerializer());
        kryo.register(SlotAssignment[].class);
        kryo.register(SlotMetrics.class, new SlotMetricsSerializer());
        kryo.register(SlotMetrics[].class);
        kryo.register(EvalItem.class, new EvalItemSerializer());
        kryo.register(EvalItem[].class);
        kryo.register(EvalItem[][].class);
        kryo.register(EvalOutcome.class, new EvalOutcomeSerializer());
        kryo.register(EvalOutcome[].class);
        kryo.register(EvalMetrics.class, new EvalMetricsSerializer());
        kryo.register(EvalMetrics[].class);
        kryo.register(double[].class);
        kryo.register(float[].class);
        kryo.register(float[][].class); // Spark registers float[] but not float[][]
        kryo.register(int[].class);
        kryo.register(long[].class);
        kryo.register(String[].class);
        kryo.register(Object[].class);
    }

    static final class SlotAssignmentSerializer extends Serializer<SlotAssignment> {
        @Override
        public void write(Kryo kryo, Output out, SlotAssignment a) {
            out.writeInt(a.round());
            out.writeInt(a.slot());
            out.writeInt(a.slots());
            out.writeInt(a.steps());
            out.writeLong(a.globalStep());
            out.writeLong(a.seed());
        }

        @Override
        public SlotAssignment read(Kryo kryo, Input in, Class<SlotAssignment> type) {
            return new SlotAssignment(in.readInt(), in.readInt(), in.readInt(), in.readInt(), in.readLong(), in.readLong());
        }
    }

    static final class SlotMetricsSerializer extends Serializer<SlotMetrics> {
        @Override
        public void write(Kryo kryo, Output out, SlotMetrics m) {
            out.writeInt(m.slot());
            out.writeInt(m.attempt());
            out.writeString(m.executorId());
            out.writeString(m.device());
            out.writeLong(m.targetTokens());
            out.writeDouble(m.lossSum());
            out.writeLong(m.trainMillis());
            out.writeString(m.updateSha256());
        }

        @Override
        public SlotMetrics read(Kryo kryo, Input in, Class<SlotMetrics> type) {
            int slot = in.readInt();
            int attempt = in.readInt();
            String executor = in.readString();
            String device = in.readString();
            long tokens = in.readLong();
            double lossSum = in.readDouble();
            return new SlotMetrics(slot, attempt, executor, device, tokens, lossSum, in.readLong(), in.readString());
        }
    }

    static final class EvalItemSerializer extends Serializer<EvalItem> {
        @Override
        public void write(Kryo kryo, Output out, EvalItem e) {
            out.writeInt(e.index());
            writeInts(out, e.prompt());
            writeInts(out, e.target());
        }

        @Override
        public EvalItem read(Kryo kryo, Input in, Class<EvalItem> type) {
            int index = in.readInt();
            int[] prompt = readInts(in);
            return new EvalItem(index, prompt, readInts(in));
        }
    }

    static final class EvalOutcomeSerializer extends Serializer<EvalOutcome> {
        @Override
        public void write(Kryo kryo, Output out, EvalOutcome o) {
            out.writeInt(o.index());
            out.writeDouble(o.lossSum());
            out.writeInt(o.targetTokens());
            writeInts(out, o.generated());
            out.writeInt(o.choiceLogits().length);
            out.writeFloats(o.choiceLogits());
        }

        @Override
        public EvalOutcome read(Kryo kryo, Input in, Class<EvalOutcome> type) {
            int index = in.readInt();
            double lossSum = in.readDouble();
            int tokens = in.readInt();
            int[] generated = readInts(in);
            return new EvalOutcome(index, lossSum, tokens, generated, in.readFloats(in.readInt()));
        }
    }

    private static void writeInts(Output out, int[] a) {
        out.writeInt(a.length);
        out.writeInts(a);
    }

    private static int[] readInts(Input in) {
        return in.readInts(in.readInt());
    }
    static final class EvalMetricsSerializer extends Serializer<EvalMetrics> {
        @Override
        public void write(Kryo kryo, Output out, EvalMetrics m) {
            out.writeInt(m.part());
            out.writeString(m.executorId());
            out.writeString(m.device());
            out.writeLong(m.targetTokens());
            out.writeDouble(m.lossSum());
            out.writeLong(m.millis());
        }

        @Override
        public EvalMetrics read(Kryo kryo, Input in, Class<EvalMetrics> type) {
            int part = in.readInt();
            String executor = in.readString();
            String device = in.readString();
            long tokens = in.readLong();
            double lossSum = in.readDouble();
            return new EvalMetrics(part, executor, device, tokens, lossSum, in.readLong());
        }
    }
}
