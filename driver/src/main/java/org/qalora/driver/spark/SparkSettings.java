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

    /**
     * {@code --device gpu} or {@code gpu:N} on a cluster: when the user gave executors GPUs
     * ({@code spark.executor.resource.gpu.amount}) but did not say how many a task takes, each task (slot) takes
     * one ({@code spark.task.resource.gpu.amount=1}), so a slot runs on its own GPU and its address reaches the
     * backend. Nothing else is guessed: without executor GPUs, or in local mode, the settings stay as they are.
     */
    public static SparkConf applyDevice(SparkConf conf, boolean gpuRequested) {
        if (gpuRequested && !isLocalMaster(conf.get("spark.master", ""))
                && conf.contains("spark.executor.resource.gpu.amount")) {
            conf.setIfMissing("spark.task.resource.gpu.amount", "1");
        }
        return conf;
    }

    /** True for masters whose executors run on this machine: {@code local}, {@code local[..]}, {@code local-cluster[..]}. */
    public static boolean isLocalMaster(String master) {
        String m = master == null ? "" : master.trim();
        return m.equals("local") || m.startsWith("local[") || m.startsWith("local-cluster[");
    }
}
