#!/usr/bin/env bash
# qalora train on a Spark standalone cluster with GPUs, e.g.:
#   SPARK_MASTER=spark://master:7077 SLOTS=4 deploy/spark-submit-standalone.sh \
#     --model hdfs://namenode:8020/models/llama-7b --data hdfs://namenode:8020/data/alpaca.jsonl \
#     --output hdfs://namenode:8020/runs/alpaca-7b --rounds 50
# The driver runs here (client mode); one executor per GPU slot. Each Worker finds its GPUs with
# deploy/gpu-discovery.sh, set in the Worker's own configuration (conf/spark-defaults.conf or SPARK_WORKER_OPTS):
#   spark.worker.resource.gpu.amount=<GPUs>  spark.worker.resource.gpu.discoveryScript=/opt/qalora/deploy/gpu-discovery.sh
# EXECUTOR_CORES (4) and EXECUTOR_MEMORY (24g) size each executor; a slot's task takes all of its cores.
# SparkSubmitStandaloneTest runs this script against a real Master and Worker.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
: "${SPARK_MASTER:?set SPARK_MASTER=spark://<master-host>:<port>}"
slots="${SLOTS:-4}"
cores="${EXECUTOR_CORES:-4}"
exec "$SPARK_HOME/bin/spark-submit" \
  --master "$SPARK_MASTER" --deploy-mode client \
  --class org.qalora.driver.cli.QaloraCli \
  --properties-file "$root/deploy/conf/spark-defaults.conf" \
  --total-executor-cores "$((slots * cores))" --executor-cores "$cores" \
  --executor-memory "${EXECUTOR_MEMORY:-24g}" \
  --conf spark.task.cpus="$cores" \
  --conf spark.executor.resource.gpu.amount=1 \
  --conf spark.task.resource.gpu.amount=1 \
  --driver-java-options "$java_flags" \
  --conf "spark.executor.extraJavaOptions=$executor_java_flags" \
  --jars "$dep_jars" \
  "$app_jar" train --slots "$slots" "$@"
