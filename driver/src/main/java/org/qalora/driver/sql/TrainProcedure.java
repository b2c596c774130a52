package org.qalora.driver.sql;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.qalora.driver.api.QaloraTraining;
import org.qalora.driver.api.TrainingResult;
import org.qalora.driver.config.InvalidSettingsException;
import org.qalora.driver.config.TrainSetting;
import org.slf4j.LoggerFactory;

/**
 * {@code CALL qalora.system.train(output => '..', model => '..', data => '..', rounds => 4, ...)}: {@code qalora train}
 * on the calling session through the notebook API ({@link QaloraTraining}), so it resumes, extends and refuses exactly
 * as the command does. The parameters are the {@link TrainSetting}s a session may set, named as the flags with
 * underscores ({@code steps_per_round}); {@code output} is required (a run directory relative to wherever the server
 * runs would be no use), the rest default to the command's defaults. It returns the per-round metrics, the columns of
 * {@link TrainingResult#metrics()}.
 */
final class TrainProcedure extends QaloraProcedure {
    static final String NAME = "train";

    TrainProcedure() {
        super(NAME, "qalora train on this session: quantize if needed, prepare, training rounds, merge, publish; "
                + "returns the per-round metrics");
    }

    /** The SQL name of a setting: the flag with underscores. */
    static String sqlName(TrainSetting s) { return s.flag().replace('-', '_'); }

    @Override
    List<SqlParameter> parameters() {
        List<SqlParameter> params = new ArrayList<>();
        params.add(parameter(TrainSetting.OUTPUT, true));
        for (TrainSetting s : TrainSetting.values()) {
            if (s.onSession() && s != TrainSetting.OUTPUT) {
                params.add(parameter(s, false));
            }
        }
        params.add(new SqlParameter("force", TrainSetting.Kind.BOOLEAN, false, "use an output directory that holds "
                + "other files, or restart there a run that never committed a round (the --force of qalora train)"));
        return params;
    }

    private static SqlParameter parameter(TrainSetting s, boolean required) {
        return new SqlParameter(sqlName(s), s.kind(), required, s.help());
    }

    @Override
    ResultRows call(SparkSession spark, Map<String, Object> args) {
        QaloraTraining training = QaloraTraining.on(spark).progress(LoggerFactory.getLogger(TrainProcedure.class)::info);
        for (TrainSetting s : TrainSetting.values()) {
            if (args.containsKey(sqlName(s))) {
                training.set(s, args.get(sqlName(s)));
            }
        }
        training.force(Boolean.TRUE.equals(args.get("force")));
        Dataset<Row> metrics;
        try {
            metrics = training.fit().metrics();
        } catch (InvalidSettingsException e) {   // name what the user called, not the builder it runs through
            throw new InvalidSettingsException(callName() + ": bad train settings", e.problems());
        }
        return new ResultRows(metrics.schema(), metrics.queryExecution().executedPlan().executeCollect());
    }
}
