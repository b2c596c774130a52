package org.qalora.driver.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.spark.SparkConf;
import org.junit.jupiter.api.Test;

class SparkSettingsTest {
    private static SparkConf conf(String master) {
        return new SparkConf(false).set("spark.master", master);
    }

    @Test
    void aGpuRunTakesOneGpuPerTaskOnlyWhereExecutorsHaveGpusAndTheUserSaidNothing() {
        SparkConf withGpus = conf("yarn").set("spark.executor.resource.gpu.amount", "2");
        assertEquals("1", SparkSettings.applyDevice(withGpus, true).get("spark.task.resource.gpu.amount"));
        SparkConf userSet = conf("yarn").set("spark.executor.resource.gpu.amount", "2")
                .set("spark.task.resource.gpu.amount", "0.5");
        assertEquals("0.5", SparkSettings.applyDevice(userSet, true).get("spark.task.resource.gpu.amount"));
        assertFalse(SparkSettings.applyDevice(conf("yarn"), true).contains("spark.task.resource.gpu.amount"));
        assertFalse(SparkSettings.applyDevice(conf("yarn").set("spark.executor.resource.gpu.amount", "1"), false)
                .contains("spark.task.resource.gpu.amount"), "auto/cpu: untouched");
        assertFalse(SparkSettings.applyDevice(conf("local[2]").set("spark.executor.resource.gpu.amount", "1"), true)
                .contains("spark.task.resource.gpu.amount"), "local mode: untouched");
    }

    @Test
    void localMasters() {
        for (String m : new String[] {"local", "local[*]", "local[4]", "local[2,3]", "local-cluster[2,1,1024]"}) {
            assertTrue(SparkSettings.isLocalMaster(m), m);
        }
        for (String m : new String[] {"yarn", "k8s://https://api:6443", "spark://host:7077", "", "localhost"}) {
            assertFalse(SparkSettings.isLocalMaster(m), m);
        }
    }
}
