package org.qalora.e2e;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.SparkContext;
import org.apache.spark.resource.ResourceProfile;
import org.apache.spark.resource.TaskResourceRequest;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerResourceProfileAdded;
import org.apache.spark.scheduler.SparkListenerStageSubmitted;
import org.apache.spark.scheduler.SparkListenerTaskEnd;

/**
 * A Spark listener that records, for every stage submitted while it listens, its job group and the task CPUs of
 * its resource profile, and for every task its executor and run interval: what a test needs to see which task
 * resources a stage ran with and how many of its tasks one executor ran at once.
 */
final class StageResourceRecorder extends SparkListener implements AutoCloseable {
    /** One stage as submitted: its job group ({@code spark.jobGroup.id}) and its resource profile id. */
    record Stage(int id, String jobGroup, int profileId) {}

    /** One finished task of a stage: where and when it ran (launch and finish, epoch milliseconds). */
    record Task(int stageId, String executor, long launched, long finished) {}

    private final SparkContext sc;
    private final Map<Integer, Stage> stages = new ConcurrentHashMap<>();
    private final Map<Integer, Integer> profileTaskCpus = new ConcurrentHashMap<>();
    private final List<Task> tasks = java.util.Collections.synchronizedList(new ArrayList<>());

    StageResourceRecorder(SparkContext sc) {
        this.sc = sc;
        profileTaskCpus.put(ResourceProfile.DEFAULT_RESOURCE_PROFILE_ID(), sc.getConf().getInt("spark.task.cpus", 1));
        sc.addSparkListener(this);
    }

    @Override
    public void onResourceProfileAdded(SparkListenerResourceProfileAdded event) {
        ResourceProfile rp = event.resourceProfile();
        TaskResourceRequest cpus = rp.taskResourcesJMap().get(ResourceProfile.CPUS());
        profileTaskCpus.put(rp.id(), cpus == null ? sc.getConf().getInt("spark.task.cpus", 1) : (int) cpus.amount());
    }

    @Override
    public void onStageSubmitted(SparkListenerStageSubmitted event) {
        String group = event.properties() == null ? null : event.properties().getProperty("spark.jobGroup.id");
        stages.put(event.stageInfo().stageId(),
                new Stage(event.stageInfo().stageId(), group, event.stageInfo().resourceProfileId()));
    }

    @Override
    public void onTaskEnd(SparkListenerTaskEnd event) {
        tasks.add(new Task(event.stageId(), event.taskInfo().executorId(), event.taskInfo().launchTime(),
                event.taskInfo().finishTime()));
    }

    /** The stages whose job group starts with {@code prefix}, in submission order. */
    List<Stage> stagesOf(String prefix) {
        return stages.values().stream().filter(s -> s.jobGroup() != null && s.jobGroup().startsWith(prefix))
                .sorted(java.util.Comparator.comparingInt(Stage::id)).toList();
    }

    /** The CPUs a task of {@code stage} asked for (its profile's, else {@code spark.task.cpus}). */
    int taskCpus(Stage stage) {
        Integer cpus = profileTaskCpus.get(stage.profileId());
        if (cpus == null) {
            throw new IllegalStateException("no resource profile " + stage.profileId() + " was seen for " + stage);
        }
        return cpus;
    }

    /** The most tasks of {@code stage} that one executor was running at the same moment. */
    int mostConcurrentOnOneExecutor(Stage stage) {
        List<Task> mine;
        synchronized (tasks) {
            mine = tasks.stream().filter(t -> t.stageId() == stage.id()).toList();
        }
        int most = 0;
        for (Task t : mine) { // the running count peaks at some task's launch
            long running = mine.stream().filter(o -> o.executor().equals(t.executor())
                    && o.launched() <= t.launched() && o.finished() >= t.launched()).count();
            most = Math.max(most, (int) running);
        }
        return most;
    }

    /** Waits until every event posted so far has reached the listeners (they arrive asynchronously). */
    void flush() throws java.util.concurrent.TimeoutException {
        sc.listenerBus().waitUntilEmpty(30_000);
    }

    @Override
    public void close() {
        sc.removeSparkListener(this);
    }
}
