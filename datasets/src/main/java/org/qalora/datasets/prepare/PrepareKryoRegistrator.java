package org.qalora.datasets.prepare;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.serializers.JavaSerializer;
import org.apache.spark.SparkConf;
import org.apache.spark.serializer.KryoRegistrator;
import org.apache.spark.serializer.KryoSerializer;

import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.List;

/**
 * Registers every class the prepare job ships through Spark's serializer, so it runs with
 * {@code spark.kryo.registrationRequired=true}: the broadcast {@link FileTask}, the {@link InputUnit}s it
 * parallelizes, the per-file lists of splits the split job collects (the large-JSONL path) and the
 * {@link FileResult}s. Task closures go through Java serialization and need nothing here.
 *
 * <p>These are Java-serializable object graphs (settings, tokenizer bytes, templates, shard entries), so each
 * goes through Kryo's {@link JavaSerializer}: one registration covers its whole graph. The driver's registrator
 * calls this one, so {@code qalora train} and {@code qalora prepare} register the same classes.
 */
public final class PrepareKryoRegistrator implements KryoRegistrator {

    @Override
    public void registerClasses(Kryo kryo) {
        for (Class<?> c : List.of(FileTask.class, FileResult.class, InputUnit.class)) {
            kryo.register(c, new JavaSerializer());
            kryo.register(Array.newInstance(c, 0).getClass());
        }
        // The lists of splits: ArrayList through Kryo's collection serializer; the JDK's immutable lists (List.of,
        // one or two elements and three or more) through Java serialization, as they have no no-arg constructor.
        kryo.register(ArrayList.class);
        kryo.register(List.of(1).getClass(), new JavaSerializer());
        kryo.register(List.of(1, 2, 3).getClass(), new JavaSerializer());
    }

    /**
     * Kryo with registration required and this registrator, under whatever the user or spark-submit set (their
     * settings win): what {@code qalora prepare} runs with when it starts its own Spark.
     */
    public static SparkConf apply(SparkConf conf) {
        conf.setIfMissing("spark.serializer", KryoSerializer.class.getName());
        conf.setIfMissing("spark.kryo.registrator", PrepareKryoRegistrator.class.getName());
        conf.setIfMissing("spark.kryo.registrationRequired", "true");
        return conf;
    }
}
