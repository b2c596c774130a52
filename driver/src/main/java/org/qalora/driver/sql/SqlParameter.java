package org.qalora.driver.sql;

import org.apache.spark.sql.connector.catalog.procedures.ProcedureParameter;
import org.apache.spark.sql.types.DataType;
import org.qalora.driver.config.TrainSetting;

/**
 * One parameter of a qalora procedure: its SQL name, the kind of value it takes (read as a train setting of that kind
 * is read: {@link TrainSetting#convert}), whether a call must give it, and its comment. An optional parameter
 * defaults to NULL, which the procedure reads as "not given": the setting keeps the command's default.
 */
record SqlParameter(String name, TrainSetting.Kind kind, boolean required, String comment) {

    /** Spark's parameter, of the SQL type the call's argument has (see {@link QaloraProcedure#bind}). */
    ProcedureParameter spark(DataType boundType) {
        ProcedureParameter.Builder b = ProcedureParameter.in(name, boundType).comment(comment);
        return (required ? b : b.defaultValue("NULL")).build();
    }
}
