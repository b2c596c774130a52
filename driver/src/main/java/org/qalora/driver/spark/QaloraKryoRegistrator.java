package org.qalora.driver.spark;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import org.apache.spark.serializer.KryoRegistrator;
import org.qalora.datasets.prepare.PrepareKryoRegistrator;
import org.qalora.driver.eval.EvalItem;
import org.qalora.driver.eval.EvalOutcome;
import org.qalora.driver.rounds.AveragedPart;
import org.qalora.driver.rounds.InitialStateTask;
import org.qalora.driver.rounds.EvalMetrics;
import org.qalora.driver.rounds.SlotAssignment;
import org.qalora.driver.rounds.SlotMetrics;
import org.qalora.driver.rounds.UpdateAverager;
import org.qalora.driver.state.SegmentDigests;

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
        kryo.register(AveragedPart.class, new AveragedPartSerializer());
        kryo.register(AveragedPart[].class);
        kryo.register(InitialStateTask.Written.class, new InitialStateWrittenSerializer());
        kryo.register(InitialStateTask.Written[].class);
        kryo.register(double[].class);
        kryo.register(double[][].class);
        kryo.register(float[].class);
        kryo.register(float[][].class); // Spark registers float[] but not float[][]
        kryo.register(int[].class);
        kryo.register(long[].class);
        kryo.register(String[].class);
        kryo.register(Object[].class);
    }

    static final class InitialStateWrittenSerializer extends Serializer<InitialStateTask.Written> {
        @Override
        public void write(Kryo kryo, Output out, InitialStateTask.Written w) {
            out.writeLong(w.bytes());
            out.writeString(w.sha256());
            out.writeLong(w.step());
        }

        @Override
        public InitialStateTask.Written read(Kryo kryo, Input in, Class<InitialStateTask.Written> type) {
            return new InitialStateTask.Written(in.readLong(), in.readString(), in.readLong());
        }
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
            writeDigests(out, m.update());
        }

        @Override
        public SlotMetrics read(Kryo kryo, Input in, Class<SlotMetrics> type) {
            int slot = in.readInt();
            int attempt = in.readInt();
            String executor = in.readString();
            String device = in.readString();
            long tokens = in.readLong();
            double lossSum = in.readDouble();
            long millis = in.readLong();
            return new SlotMetrics(slot, attempt, executor, device, tokens, lossSum, millis, readDigests(in));
        }
    }

    static final class AveragedPartSerializer extends Serializer<AveragedPart> {
        @Override
        public void write(Kryo kryo, Output out, AveragedPart p) {
            out.writeInt(p.part());
            out.writeString(p.file());
            out.writeLong(p.bytes());
            out.writeString(p.sha256());
            out.writeLong(p.step());
            out.writeLong(p.totalTokens());
            out.writeBoolean(p.stats() != null);
            if (p.stats() != null) {
                UpdateAverager.KeyStats k = p.stats();
                writeInts(out, k.keyIndex());
                out.writeInt(k.squares().length);
                for (double[] row : k.squares()) {
                    writeDoubles(out, row);
                }
                writeDoubles(out, k.meanSquares());
                writeInts(out, k.pairIndex());
                writeDoubles(out, k.discordance());
            }
            out.writeInt(p.refusedSlot());
            out.writeString(p.refusal());
            out.writeString(p.executorId());
            out.writeLong(p.millis());
        }

        @Override
        public AveragedPart read(Kryo kryo, Input in, Class<AveragedPart> type) {
            int part = in.readInt();
            String file = in.readString();
            long bytes = in.readLong();
            String sha = in.readString();
            long step = in.readLong();
            long tokens = in.readLong();
            UpdateAverager.KeyStats stats = null;
            if (in.readBoolean()) {
                int[] keyIndex = readInts(in);
                double[][] squares = new double[in.readInt()][];
                for (int i = 0; i < squares.length; i++) {
                    squares[i] = readDoubles(in);
                }
                double[] meanSquares = readDoubles(in);
                int[] pairIndex = readInts(in);
                stats = new UpdateAverager.KeyStats(keyIndex, squares, meanSquares, pairIndex, readDoubles(in));
            }
            int refusedSlot = in.readInt();
            String refusal = in.readString();
            String executor = in.readString();
            return new AveragedPart(part, file, bytes, sha, step, tokens, stats, refusedSlot, refusal, executor,
                    in.readLong());
        }
    }

    private static void writeDoubles(Output out, double[] a) {
        out.writeInt(a.length);
        out.writeDoubles(a);
    }

    private static double[] readDoubles(Input in) {
        return in.readDoubles(in.readInt());
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

    private static void writeDigests(Output out, SegmentDigests d) {
        out.writeString(d.header());
        out.writeInt(d.tensors().length);
        for (int i = 0; i < d.tensors().length; i++) {
            out.writeString(d.tensors()[i]);
            out.writeString(d.crc32c()[i]);
        }
    }

    private static SegmentDigests readDigests(Input in) {
        String header = in.readString();
        int n = in.readInt();
        String[] names = new String[n];
        String[] sums = new String[n];
        for (int i = 0; i < n; i++) {
            names[i] = in.readString();
            sums[i] = in.readString();
        }
        return new SegmentDigests(header, names, sums);
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
