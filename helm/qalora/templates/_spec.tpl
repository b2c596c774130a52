{{/*
The SparkApplication spec of one training run: the body of the SparkApplication (templates/sparkapplication.yaml)
and the template of the ScheduledSparkApplication (templates/scheduledsparkapplication.yaml), so the two never drift.
Rendered unindented; callers indent it with nindent.
*/}}
{{- define "qalora.sparkApplicationSpec" -}}
type: Java
mode: cluster
image: {{ .Values.image | quote }}
imagePullPolicy: {{ .Values.imagePullPolicy }}
mainClass: org.qalora.driver.cli.QaloraCli
mainApplicationFile: local:///opt/qalora/lib/qalora-driver.jar
sparkVersion: {{ .Values.sparkVersion | quote }}
arguments:
{{ include "qalora.trainArgs" . | indent 2 }}
restartPolicy:
  type: OnFailure
  onFailureRetries: {{ .Values.restart.onFailureRetries }}
  onFailureRetryInterval: {{ .Values.restart.onFailureRetryInterval }}
  onSubmissionFailureRetries: {{ .Values.restart.onSubmissionFailureRetries }}
  onSubmissionFailureRetryInterval: {{ .Values.restart.onSubmissionFailureRetryInterval }}
dynamicAllocation:
  enabled: false
{{- if .Values.batchScheduler }}
batchScheduler: {{ .Values.batchScheduler }}
{{- end }}
{{- if .Values.hadoopConfigMap }}
hadoopConfigMap: {{ .Values.hadoopConfigMap }}
{{- end }}
sparkConf:
  # GPU settings go here too (not only executor.gpu) so Spark's scheduler assigns one GPU per task.
  spark.executor.resource.gpu.amount: "1"
  spark.executor.resource.gpu.vendor: {{ .Values.executor.gpuVendor | quote }}
  spark.executor.resource.gpu.discoveryScript: /opt/qalora/deploy/gpu-discovery.sh
  spark.task.resource.gpu.amount: "1"
  spark.task.cpus: {{ .Values.executor.cores | quote }}
  spark.executor.memoryOverhead: {{ .Values.executor.memoryOverhead | quote }}
  spark.serializer: org.apache.spark.serializer.KryoSerializer
  spark.kryo.registrator: org.qalora.driver.spark.QaloraKryoRegistrator
  spark.speculation: "false"
  spark.task.maxFailures: "4"
  spark.locality.wait: "0s"
  spark.driver.extraJavaOptions: {{ include "qalora.javaOptions" . | quote }}
  spark.executor.extraJavaOptions: {{ trim (printf "%s %s" (include "qalora.javaOptions" .) .Values.executor.javaOptions) | quote }}
  {{- range $k, $v := .Values.sparkConf }}
  {{ $k }}: {{ $v | quote }}
  {{- end }}
{{- if or .Values.hadoopDelegationTokenSecret .Values.modelCache.enabled }}
volumes:
  {{- if .Values.modelCache.enabled }}
  - name: model-cache
    emptyDir:
      sizeLimit: {{ .Values.modelCache.sizeLimit }}
  {{- end }}
{{- end }}
driver:
  cores: {{ .Values.driver.cores }}
  memory: {{ .Values.driver.memory | quote }}
  serviceAccount: {{ .Values.serviceAccount }}
  labels:
    app.kubernetes.io/name: qalora
    app.kubernetes.io/component: driver
  {{- if .Values.hadoopDelegationTokenSecret }}
  secrets:
    - name: {{ .Values.hadoopDelegationTokenSecret }}
      path: /mnt/hadoop-token
      secretType: HadoopDelegationToken
  {{- end }}
executor:
  instances: {{ .Values.slots }}
  cores: {{ .Values.executor.cores }}
  memory: {{ .Values.executor.memory | quote }}
  labels:
    app.kubernetes.io/name: qalora
    app.kubernetes.io/component: executor
  gpu:
    name: {{ printf "%s/gpu" .Values.executor.gpuVendor | quote }}
    quantity: 1
  {{- if .Values.modelCache.enabled }}
  volumeMounts:
    - name: model-cache
      mountPath: /cache
  {{- end }}
  {{- if .Values.hadoopDelegationTokenSecret }}
  secrets:
    - name: {{ .Values.hadoopDelegationTokenSecret }}
      path: /mnt/hadoop-token
      secretType: HadoopDelegationToken
  {{- end }}
{{- end }}
