#!/usr/bin/env bash
# qalora train on YARN with GPUs, paths on HDFS, e.g.:
#   SLOTS=8 deploy/spark-submit-yarn.sh \
#     --model hdfs:///models/llama-7b --data hdfs:///data/alpaca.jsonl --output hdfs:///runs/alpaca-7b \
#     --rounds 50 --steps-per-round 16
# One executor per GPU slot: SLOTS executors x 1 GPU, dynamic allocation off (the rounds need a fixed set).
# YARN must have GPU scheduling on (yarn.resource-types=yarn.io/gpu); Spark maps spark.executor.resource.gpu to it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
slots="${SLOTS:-4}"
exec "$SPARK_HOME/bin/spark-submit" \
  --master yarn --deploy-mode cluster \
  --class org.qalora.driver.cli.QaloraCli \
  --properties-file "$root/deploy/conf/spark-defaults.conf" \
  --num-executors "$slots" --executor-cores 4 --executor-memory 24g \
  --conf spark.task.cpus=4 \
  --conf spark.executor.resource.gpu.amount=1 \
  --conf spark.task.resource.gpu.amount=1 \
  --conf spark.executor.resource.gpu.discoveryScript=./gpu-discovery.sh \
  --conf spark.yarn.maxAppAttempts=3 \
  --files "$root/deploy/gpu-discovery.sh" \
  --driver-java-options "$java_flags" \
  --conf "spark.executor.extraJavaOptions=$executor_java_flags" \
  --jars "$dep_jars" \
  "$app_jar" train --slots "$slots" "$@"
