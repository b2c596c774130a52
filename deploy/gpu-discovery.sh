#!/usr/bin/env bash
# Spark resource discovery script for GPUs (spark.{worker,executor,driver}.resource.gpu.discoveryScript).
# Prints the one JSON line Spark expects: {"name":"gpu","addresses":["0","1",...]}.
# Honours CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES when set (a container or YARN may restrict the devices),
# else asks nvidia-smi for every GPU index. With no GPU it prints an empty list, so a misconfigured node shows up
# as "executor has 0 gpu" in the Spark UI rather than as a crashed executor.
set -euo pipefail

visible="${CUDA_VISIBLE_DEVICES:-${NVIDIA_VISIBLE_DEVICES:-}}"
if [[ -n "$visible" && "$visible" != "all" && "$visible" != "none" && "$visible" != "void" ]]; then
  addrs="$visible"
elif command -v nvidia-smi >/dev/null 2>&1; then
  addrs="$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr -d ' ' | paste -sd, -)"
else
  addrs=""
fi

json=""
IFS=',' read -ra list <<< "$addrs"
for a in "${list[@]}"; do
  [[ -z "$a" ]] && continue
  json+="${json:+,}\"$a\""
done
echo "{\"name\":\"gpu\",\"addresses\":[${json}]}"
