# Shared by the spark-submit scripts: locates the application jar and its dependency jars (built by
# `mvn -B -DskipTests package -pl driver -am`), and the Java 25 flags. Sourced, not run.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
app_jar="$(ls "$root"/driver/target/driver-*.jar 2>/dev/null | grep -v -- '-tests.jar' | head -n 1 || true)"
if [[ -z "$app_jar" ]]; then
  echo "build first: (cd $root && mvn -B -DskipTests package -pl driver -am)" >&2
  exit 1
fi
# Spark already brings Spark and Hadoop; ship only what it lacks.
dep_jars="$(ls "$root"/driver/target/lib/*.jar | grep -Ev '/(spark-|hadoop-client-|scala-)' | paste -sd, -)"
java_flags="$(grep '^spark.executor.extraJavaOptions' "$root/deploy/conf/spark-defaults.conf" | sed 's/^[^ ]* *//')"
