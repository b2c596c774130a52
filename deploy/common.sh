# Shared by the spark-submit scripts: locates the application jar and its dependency jars (built by
# `mvn -B -DskipTests package -pl driver -am`), and the Java 25 flags. Sourced, not run.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# spark-submit comes from a Spark installation, not from this repository: say which one, instead of bash's
# "SPARK_HOME: unbound variable".
if [[ -z "${SPARK_HOME:-}" || ! -x "${SPARK_HOME}/bin/spark-submit" ]]; then
  echo "SPARK_HOME ${SPARK_HOME:+($SPARK_HOME) }does not point at a Spark installation: these scripts need Spark 4.2" \
    "(Scala 2.13), e.g. spark-4.2.0-bin-hadoop3.tgz from https://archive.apache.org/dist/spark/spark-4.2.0/ unpacked" \
    "to /opt, then: export SPARK_HOME=/opt/spark-4.2.0-bin-hadoop3. (bin/qalora train needs no Spark installation.)" >&2
  exit 2
fi
if [[ -f "$SPARK_HOME/RELEASE" ]] && ! grep -q 'Spark 4\.2' "$SPARK_HOME/RELEASE"; then
  echo "warning: $SPARK_HOME is $(head -n 1 "$SPARK_HOME/RELEASE"); qalora is built against Spark 4.2 (Scala 2.13)" >&2
fi
app_jar="$(ls "$root"/driver/target/driver-*.jar 2>/dev/null | grep -v -- '-tests.jar' | head -n 1 || true)"
if [[ -z "$app_jar" ]]; then
  echo "build first: (cd $root && mvn -B -DskipTests package -pl driver -am)" >&2
  exit 1
fi
# Ship only what the Spark installation lacks: a jar of driver/target/lib whose artifact (its file name less the
# version) is not in $SPARK_HOME/jars. Spark's own dependencies (Netty, Jackson, Arrow, ...: most of the 230 MB of lib/)
# would otherwise be fetched by every executor again, only to be shadowed by Spark's copies (parent-first).
if [[ ! -d "$SPARK_HOME/jars" ]]; then
  echo "$SPARK_HOME/jars is missing: SPARK_HOME must be an unpacked Spark distribution" >&2
  exit 2
fi
dep_jars="$(awk '
  function artifact(path) { sub(/.*\//, "", path); sub(/-[0-9][^\/]*[.]jar$/, "", path); return path }
  FNR == NR { spark[artifact($0)] = 1; next }
  !(artifact($0) in spark)' <(ls "$SPARK_HOME/jars") <(ls "$root"/driver/target/lib/*.jar) | paste -sd, -)"
java_flags="$(grep -Ev '^[[:space:]]*(#|$)' "$root/deploy/conf/jvm-flags" | paste -sd' ' -)"  # the one list of JVM flags
# EXECUTOR_JAVA_OPTIONS: more JVM options for the executors only, e.g. -XX:G1HeapRegionSize=64m for executors that
# train a 7B-sized model on the CPU (README, "7B"); too large a region for a small driver heap, hence executors only.
executor_java_flags="$java_flags${EXECUTOR_JAVA_OPTIONS:+ $EXECUTOR_JAVA_OPTIONS}"
