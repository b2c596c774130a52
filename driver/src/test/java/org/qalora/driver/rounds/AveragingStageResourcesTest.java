package org.qalora.driver.rounds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.spark.SparkConf;
import org.apache.spark.resource.ResourceProfile;
import org.apache.spark.resource.TaskResourceProfile;
import org.junit.jupiter.api.Test;

/**
 * Which averaging stages get a task resource profile of their own: only where Spark runs one on the executors that
 * are there (standalone and local-cluster, YARN, Kubernetes, with dynamic allocation off) and where it asks for
 * fewer CPUs than a training task takes. (TrainOnClusterTest runs it on real executors.)
 */
class AveragingStageResourcesTest {
    private static SparkConf conf(String master, int taskCpus) {
        return new SparkConf(false).set("spark.master", master).set("spark.task.cpus", Integer.toString(taskCpus));
    }

    @Test
    void clusterManagersWithoutDynamicAllocationGetOneCpuTasksWithoutGpus() {
        for (String master : new String[] {"spark://host:7077", "local-cluster[2,4,1024]", "yarn", "k8s://https://k:6443"}) {
            AveragingStageResources r = AveragingStageResources.decide(conf(master, 4), 1);
            assertTrue(r.ownProfile(), master);
            assertTrue(r.profile() instanceof TaskResourceProfile, "reuses the executors that are there: " + master);
            assertEquals(1.0, r.profile().taskResourcesJMap().get(ResourceProfile.CPUS()).amount(), master);
            assertEquals(1, r.profile().taskResourcesJMap().size(), "no GPU: " + r.profile().taskResourcesJMap());
            assertTrue(r.reason().contains("up to its cores / 1 of them at once"), r.reason());
        }
        // Executors of 16 cores running 2 training tasks of 8 CPUs: 8 averaging tasks of 2 CPUs at once.
        AveragingStageResources two = AveragingStageResources.decide(conf("yarn", 8)
                .set("spark.executor.cores", "16"), 2);
        assertEquals(2.0, two.profile().taskResourcesJMap().get(ResourceProfile.CPUS()).amount());
        assertTrue(two.reason().contains("up to 8 of them at once"), two.reason());
    }

    @Test
    void elsewhereTheStageKeepsTheTrainingTasksResourcesAndSaysWhy() {
        AveragingStageResources local = AveragingStageResources.decide(conf("local[4]", 1), 1);
        assertFalse(local.ownProfile());
        assertTrue(local.reason().contains("master local[4] runs no task resource profiles"), local.reason());

        SparkConf dynamic = conf("yarn", 4).set("spark.dynamicAllocation.enabled", "true");
        AveragingStageResources d = AveragingStageResources.decide(dynamic, 1);
        assertFalse(d.ownProfile());
        assertTrue(d.reason().contains("spark.dynamicAllocation.enabled is on"), d.reason());

        AveragingStageResources same = AveragingStageResources.decide(conf("yarn", 1), 1);
        assertFalse(same.ownProfile(), "a training task already takes 1 CPU");
        assertTrue(same.reason().contains("asks no fewer"), same.reason());

        AveragingStageResources off = AveragingStageResources.decide(conf("yarn", 4), 0);
        assertFalse(off.ownProfile());
        assertTrue(off.reason().startsWith("--averaging-task-cpus 0"), off.reason());

        assertThrows(IllegalArgumentException.class, () -> AveragingStageResources.decide(conf("yarn", 4), -1));
    }
}
