#!/usr/bin/env bash
# qalora train through spark-submit on this machine (local[N]), e.g.:
#   deploy/spark-submit-local.sh --model /models/llama-7b-gptq --data /data/alpaca.jsonl --output /runs/a
# Needs SPARK_HOME (Spark 4.2, Scala 2.13) and Java 25. Local mode runs its executors inside the driver's JVM, so
# EXECUTOR_JAVA_OPTIONS (common.sh) does not apply here: pass such options with --driver-java-options instead.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec "$SPARK_HOME/bin/spark-submit" \
  --master "local[*,4]" \
  --class org.qalora.driver.cli.QaloraCli \
  --properties-file "$root/deploy/conf/spark-defaults.conf" \
  --conf spark.executor.resource.gpu.amount=0 --conf spark.task.resource.gpu.amount=0 \
  --driver-java-options "$java_flags" \
  --jars "$dep_jars" \
  "$app_jar" train "$@"
