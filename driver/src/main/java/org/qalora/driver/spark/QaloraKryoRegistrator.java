package org.qalora.driver.spark;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import com.esotericsoftware.kryo.serializers.JavaSerializer;
import java.util.List;
import org.apache.spark.serializer.KryoRegistrator;
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
 * <p>The datasets module's prepare job broadcasts its per-file task and collects per-file results; those classes
 * are package-private there and are Java-serializable object graphs (settings, tokenizer bytes, templates), so they
 * are registered by name with Kryo's {@link JavaSerializer}: one registration covers the whole graph.
 */
public final class QaloraKryoRegistrator implements KryoRegistrator {
    /** Classes of other modules shipped through Spark's serializer, serialized with Java serialization. */
    static final List<String> JAVA_SERIALIZED = List.of(
            "org.qalora.datasets.prepare.FileTask",
            "org.qalora.datasets.prepare.FileResult",
            "org.qalora.datasets.prepare.InputUnit");

    @Override
    public void registerClasses(Kryo kryo) {
        for (String name : JAVA_SERIALIZED) {
            Class<?> c = load(name);
            kryo.register(c, new JavaSerializer());
            kryo.register(java.lang.reflect.Array.newInstance(c, 0).getClass());
        }
        // Lists of those (the prepare job collects per-file lists of input splits): JDK immutable lists through Java
        // serialization (they have no no-arg constructor), ArrayList through Kryo's collection serializer.
        kryo.register(java.util.ArrayList.class);
        kryo.register(List.of(1).getClass(), new JavaSerializer());
        kryo.register(List.of(1, 2, 3).getClass(), new JavaSerializer());
        kryo.register(SlotAssignment.class, new SlotAssignmentSerializer());
        kryo.register(SlotAssignment[].class);
        kryo.register(SlotMetrics.class, new SlotMetricsSerializer());
        kryo.register(SlotMetrics[].class);
        kryo.register(double[].class);
        kryo.register(float[].class);
        kryo.register(float[][].class); // Spark registers float[] but not float[][]
        kryo.register(int[].class);
        kryo.register(long[].class);
        kryo.register(String[].class);
        kryo.register(Object[].class);
    }

    private static Class<?> load(String name) {
        try {
            return Class.forName(name, false, Thread.currentThread().getContextClassLoader() != null
                    ? Thread.currentThread().getContextClassLoader() : QaloraKryoRegistrator.class.getClassLoader());
        } catch (ClassNotFoundException e) {
            throw new IllegalStateException("Kryo registration: class " + name + " is not on the classpath (was it "
                    + "renamed? update QaloraKryoRegistrator)", e);
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
}
