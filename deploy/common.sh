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
# Spark already brings Spark and Hadoop; ship only what it lacks.
dep_jars="$(ls "$root"/driver/target/lib/*.jar | grep -Ev '/(spark-|hadoop-client-|scala-)' | paste -sd, -)"
java_flags="$(grep -Ev '^[[:space:]]*(#|$)' "$root/deploy/conf/jvm-flags" | paste -sd' ' -)"  # the one list of JVM flags
