package org.qalora.driver.sql;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.connector.catalog.ProcedureCatalog;
import org.apache.spark.sql.connector.catalog.procedures.UnboundProcedure;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/**
 * The qalora procedures for sessions that only speak SQL (spark-sql, the Thrift server, Spark Connect), as a Spark 4
 * DSv2 procedure catalog. Configured with {@code spark.sql.catalog.qalora=org.qalora.driver.sql.QaloraProcedureCatalog}
 * it answers {@code CALL qalora.system.train(...)}, {@code CALL qalora.system.evaluate(...)} and
 * {@code CALL qalora.system.merge(...)}; each runs on the calling session, as the notebook API does.
 */
public final class QaloraProcedureCatalog implements ProcedureCatalog {
    /** The one namespace: {@code <catalog>.system.<procedure>}, as Iceberg and Delta name theirs. */
    public static final String NAMESPACE = "system";

    private static final Map<String, Supplier<UnboundProcedure>> PROCEDURES = Map.of(
            TrainProcedure.NAME, TrainProcedure::new,
            EvaluateProcedure.NAME, EvaluateProcedure::new,
            MergeProcedure.NAME, MergeProcedure::new);

    private String name;

    @Override
    public void initialize(String name, CaseInsensitiveStringMap options) {
        this.name = name;
    }

    @Override
    public String name() { return name; }

    @Override
    public UnboundProcedure loadProcedure(Identifier ident) {
        Supplier<UnboundProcedure> p = ident.namespace().length == 1
                && ident.namespace()[0].equalsIgnoreCase(NAMESPACE)
                ? PROCEDURES.get(ident.name().toLowerCase(Locale.ROOT)) : null;
        if (p == null) {
            throw new IllegalArgumentException("catalog " + name + " has no procedure "
                    + String.join(".", ident.namespace()) + "." + ident.name() + "; it has "
                    + PROCEDURES.keySet().stream().sorted().map(n -> name + "." + NAMESPACE + "." + n).toList());
        }
        return p.get();
    }

    @Override
    public Identifier[] listProcedures(String[] namespace) {
        if (!Arrays.equals(namespace, new String[] {NAMESPACE})) {
            return new Identifier[0];
        }
        List<String> names = PROCEDURES.keySet().stream().sorted().toList();
        return names.stream().map(n -> Identifier.of(new String[] {NAMESPACE}, n)).toArray(Identifier[]::new);
    }
}
