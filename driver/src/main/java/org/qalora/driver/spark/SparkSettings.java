package org.qalora.driver.spark;

import org.apache.spark.SparkConf;

/**
 * The Spark settings every qalora job needs, applied under whatever the user or spark-submit set (user settings
 * win, except where noted). Why each: speculation would run a slot twice and waste a GPU; retries (maxFailures)
 * are how a lost executor is survived; locality wait only delays tasks whose input is a tiny assignment; Kryo with
 * our registrator keeps task results small.
 */
public final class SparkSettings {
    private SparkSettings() {}

    public static SparkConf apply(SparkConf conf, String defaultMaster, String appName) {
        conf.setIfMissing("spark.master", defaultMaster);
        conf.setIfMissing("spark.app.name", appName);
        conf.setIfMissing("spark.serializer", "org.apache.spark.serializer.KryoSerializer");
        conf.setIfMissing("spark.kryo.registrator", QaloraKryoRegistrator.class.getName());
        conf.setIfMissing("spark.kryo.registrationRequired", "true");
        // Rounds are synchronous: a duplicate speculative slot is pure waste (and a second GPU).
        conf.set("spark.speculation", "false");
        conf.setIfMissing("spark.task.maxFailures", "4");
        conf.setIfMissing("spark.locality.wait", "0s");
        // Fixed slots: executors coming and going would change nothing but the speed, and cost model loads.
        conf.setIfMissing("spark.dynamicAllocation.enabled", "false");
        conf.setIfMissing("spark.ui.showConsoleProgress", "false");
        return conf;
    }
}
