package org.qalora.driver.rounds;

import org.apache.spark.SparkConf;
import org.apache.spark.resource.ResourceProfile;
import org.apache.spark.resource.ResourceProfileBuilder;
import org.apache.spark.resource.TaskResourceRequests;

/**
 * The task resources of a round's averaging stage. A training task takes a whole executor (its GPU and
 * {@code spark.task.cpus} = the executor's cores, as the Helm chart and the deploy scripts set), so without more
 * the averaging tasks would also run one at a time per executor, each summing with the executor's kernel threads:
 * P/E tasks in a row. An averaging task needs no GPU and is mostly reads, checksums and float64 sums, so it asks
 * for {@code cpus} CPUs and no GPU through a Spark task resource profile (stage-level scheduling without dynamic
 * allocation: the tasks reuse the executors that are there), and an executor of C cores runs C / cpus of them at
 * once. The averaged bits do not depend on which task runs where or when.
 *
 * <p>Spark supports task resource profiles without dynamic allocation on standalone (and {@code local-cluster}),
 * YARN and Kubernetes. Elsewhere (local mode: one JVM, where the tasks already share the slots' threads), with
 * dynamic allocation on (Spark would start new executors for the profile), or when the training tasks take no
 * more CPUs than asked, the stage keeps the default profile.
 */
public record AveragingStageResources(ResourceProfile profile, String reason) {
    /** The Spark configuration key that turns dynamic allocation on. */
    private static final String DYNAMIC_ALLOCATION = "spark.dynamicAllocation.enabled";

    /** True when the stage gets its own task profile (else it runs with the job's default task resources). */
    public boolean ownProfile() {
        return profile != null;
    }

    /**
     * Decides the averaging stage's task resources for an application configured by {@code conf}, with
     * {@code cpus} CPUs per averaging task ({@code train --averaging-task-cpus}; 0: as the training tasks).
     */
    public static AveragingStageResources decide(SparkConf conf, int cpus) {
        if (cpus < 0) {
            throw new IllegalArgumentException("averaging task CPUs must be >= 0 (0: as the training tasks), got "
                    + cpus);
        }
        String master = conf.get("spark.master", "");
        int taskCpus = conf.getInt("spark.task.cpus", 1);
        if (cpus == 0) {
            return new AveragingStageResources(null, "--averaging-task-cpus 0: averaging tasks take what training "
                    + "tasks take (spark.task.cpus " + taskCpus + ")");
        }
        if (!(master.startsWith("spark://") || master.startsWith("local-cluster") || master.equals("yarn")
                || master.startsWith("k8s://"))) {
            return new AveragingStageResources(null, "master " + master + " runs no task resource profiles: "
                    + "averaging tasks take what training tasks take (spark.task.cpus " + taskCpus + ")");
        }
        if (conf.getBoolean(DYNAMIC_ALLOCATION, false)) {
            return new AveragingStageResources(null, DYNAMIC_ALLOCATION + " is on, so a task resource profile "
                    + "would start executors of its own: averaging tasks take what training tasks take "
                    + "(spark.task.cpus " + taskCpus + ")");
        }
        if (cpus >= taskCpus) {
            return new AveragingStageResources(null, "averaging tasks take spark.task.cpus " + taskCpus
                    + " CPUs (--averaging-task-cpus " + cpus + " asks no fewer)");
        }
        ResourceProfile profile = new ResourceProfileBuilder().require(new TaskResourceRequests().cpus(cpus)).build();
        // Without spark.executor.cores (standalone: an executor takes its worker's cores) the count is the cluster's.
        String executorCores = conf.get("spark.executor.cores", null);
        String atOnce = executorCores == null ? "its cores / " + cpus
                : Integer.toString(Integer.parseInt(executorCores.trim()) / cpus);
        return new AveragingStageResources(profile, "averaging tasks take " + cpus + " CPU" + (cpus == 1 ? "" : "s")
                + " and no GPU each (training tasks: spark.task.cpus " + taskCpus + "), so an executor runs up to "
                + atOnce + " of them at once");
    }
}
