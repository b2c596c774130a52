#!/usr/bin/env bash
# qalora train on Kubernetes (spark-submit directly; see helm/qalora for the spark-operator way), e.g.:
#   K8S_MASTER=k8s://https://api.cluster:6443 IMAGE=registry/qalora:0.1.0 SLOTS=4 deploy/spark-submit-k8s.sh \
#     --model hdfs://namenode:8020/models/llama-7b --data hdfs://namenode:8020/data/alpaca.jsonl \
#     --output hdfs://namenode:8020/runs/alpaca-7b --rounds 50
# The image (deploy/Dockerfile) holds the jars and the discovery script; executors ask for nvidia.com/gpu.
set -euo pipefail
: "${K8S_MASTER:?set K8S_MASTER=k8s://https://<api-server>:<port>}"
: "${IMAGE:?set IMAGE to the qalora image built from deploy/Dockerfile}"
: "${SPARK_HOME:?set SPARK_HOME to a Spark 4.2 (Scala 2.13) installation, e.g. /opt/spark-4.2.0-bin-hadoop3}"
slots="${SLOTS:-4}"
java_flags="$(grep -Ev '^[[:space:]]*(#|$)' "$(dirname "${BASH_SOURCE[0]}")/conf/jvm-flags" | paste -sd' ' -)"  # the one list
executor_java_flags="$java_flags${EXECUTOR_JAVA_OPTIONS:+ $EXECUTOR_JAVA_OPTIONS}"  # as in common.sh
exec "$SPARK_HOME/bin/spark-submit" \
  --master "$K8S_MASTER" --deploy-mode cluster \
  --name qalora-train \
  --class org.qalora.driver.cli.QaloraCli \
  --conf spark.kubernetes.container.image="$IMAGE" \
  --conf spark.kubernetes.namespace="${NAMESPACE:-default}" \
  --conf spark.kubernetes.authenticate.driver.serviceAccountName="${SERVICE_ACCOUNT:-spark}" \
  --conf spark.executor.instances="$slots" \
  --conf spark.executor.cores=4 --conf spark.task.cpus=4 --conf spark.executor.memory=24g \
  --conf spark.executor.memoryOverhead=8g \
  --conf spark.executor.resource.gpu.amount=1 \
  --conf spark.executor.resource.gpu.vendor=nvidia.com \
  --conf spark.executor.resource.gpu.discoveryScript=/opt/qalora/deploy/gpu-discovery.sh \
  --conf spark.task.resource.gpu.amount=1 \
  --conf spark.dynamicAllocation.enabled=false \
  --conf spark.serializer=org.apache.spark.serializer.KryoSerializer \
  --conf spark.kryo.registrator=org.qalora.driver.spark.QaloraKryoRegistrator \
  --conf "spark.driver.extraJavaOptions=$java_flags" \
  --conf "spark.executor.extraJavaOptions=$executor_java_flags" \
  local:///opt/qalora/lib/qalora-driver.jar train --slots "$slots" "$@"
