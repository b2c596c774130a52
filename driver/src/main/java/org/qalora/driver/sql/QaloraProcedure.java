package org.qalora.driver.sql;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.connector.catalog.procedures.BoundProcedure;
import org.apache.spark.sql.connector.catalog.procedures.ProcedureParameter;
import org.apache.spark.sql.connector.catalog.procedures.UnboundProcedure;
import org.apache.spark.sql.connector.read.Scan;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.AtomicType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.Decimal;
import org.apache.spark.sql.types.NullType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;
import org.qalora.driver.config.InvalidSettingsException;
import org.qalora.driver.config.TrainSetting;

/**
 * What the qalora procedures share: the parameter list, binding it to a call's arguments, and reading the argument
 * row Spark evaluated into Java values by parameter name (absent when the call left it NULL).
 *
 * <p>Each parameter is bound to the SQL type of the argument as the call wrote it, so that Spark inserts no implicit
 * cast: its procedure-argument coercion would turn {@code rounds => 1.5} into 1 without a word and refuse
 * {@code rounds => 'many'} with a cast error that does not say which argument. The values are converted here instead,
 * by the same rules as a job file's ({@link TrainSetting#convert}), and an error names the procedure and the
 * parameter. A list parameter takes an {@code ARRAY<STRING>} or one comma-separated string.
 */
abstract class QaloraProcedure implements UnboundProcedure {
    private final String name;
    private final String description;

    QaloraProcedure(String name, String description) {
        this.name = name;
        this.description = description;
    }

    /** The parameters, required ones first (Spark fills the optional ones it is not given with their defaults). */
    abstract List<SqlParameter> parameters();

    /** Runs on the calling session with the arguments by parameter name, converted to their kinds. */
    abstract ResultRows call(SparkSession spark, Map<String, Object> args);

    @Override
    public String name() { return name; }

    @Override
    public String description() { return description; }

    /** How errors name this procedure: {@code CALL qalora.system.train}. */
    String callName() { return "CALL qalora." + QaloraProcedureCatalog.NAMESPACE + "." + name; }

    /**
     * {@code inputType} has one field per argument as written: a named argument's field carries its name, the
     * positional ones (which SQL puts first) are {@code param0}, {@code param1}, ... at their positions.
     */
    @Override
    public BoundProcedure bind(StructType inputType) {
        List<SqlParameter> params = parameters();
        ProcedureParameter[] bound = new ProcedureParameter[params.size()];
        for (int i = 0; i < bound.length; i++) {
            SqlParameter p = params.get(i);
            DataType given = argumentType(inputType, p.name(), i);
            bound[i] = p.spark(given == null || given instanceof NullType ? DataTypes.StringType : checked(p, given));
        }
        return new Bound(bound);
    }

    private static DataType argumentType(StructType inputType, String name, int position) {
        for (StructField f : inputType.fields()) {
            if (f.name().equalsIgnoreCase(name) || f.name().equals("param" + position)) {
                return f.dataType();
            }
        }
        return null;
    }

    /** The argument's own type where the parameter can read it: a scalar, or an array of strings for a list. */
    private DataType checked(SqlParameter p, DataType given) {
        boolean list = p.kind() == TrainSetting.Kind.STRINGS;
        if (given instanceof AtomicType || list && given instanceof ArrayType a
                && a.elementType() instanceof org.apache.spark.sql.types.StringType) {
            return given;
        }
        throw new InvalidSettingsException(callName() + ": " + p.name() + " takes " + (list
                ? "an ARRAY<STRING> or a comma-separated STRING" : "a single value") + ", got a value of type "
                + given.sql());
    }

    private final class Bound implements BoundProcedure {
        private final ProcedureParameter[] parameters;

        Bound(ProcedureParameter[] parameters) { this.parameters = parameters; }

        @Override
        public String name() { return name; }

        @Override
        public String description() { return description; }

        @Override
        public ProcedureParameter[] parameters() { return parameters; }

        @Override
        public boolean isDeterministic() { return false; }

        @Override
        public Iterator<Scan> call(InternalRow input) {
            Map<String, Object> args = new LinkedHashMap<>();
            List<SqlParameter> declared = QaloraProcedure.this.parameters();
            for (int i = 0; i < parameters.length; i++) {
                if (input.isNullAt(i)) {
                    continue;
                }
                SqlParameter p = declared.get(i);
                Object value = javaValue(input.get(i, parameters[i].dataType()));
                if (p.kind() == TrainSetting.Kind.STRINGS && value instanceof String s) {
                    value = Arrays.stream(s.split(",")).map(String::trim).filter(x -> !x.isEmpty()).toList();
                }
                args.put(p.name(), TrainSetting.convert(p.kind(), value, callName() + ": " + p.name()));
            }
            List<Scan> out = new ArrayList<>();
            out.add(QaloraProcedure.this.call(SparkSession.active(), args));
            return out.iterator();
        }
    }

    /** Spark's internal value as a plain Java one (String, BigDecimal, List of String, boxed primitives). */
    private static Object javaValue(Object v) {
        return switch (v) {
            case UTF8String s -> s.toString();
            case Decimal d -> d.toJavaBigDecimal();
            case ArrayData a -> {
                List<String> values = new ArrayList<>();
                for (int k = 0; k < a.numElements(); k++) {
                    values.add(a.isNullAt(k) ? null : a.getUTF8String(k).toString());
                }
                yield values;
            }
            default -> v;
        };
    }

}
