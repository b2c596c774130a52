{{/* The train flags rendered from .Values.train, one list item each. */}}
{{- define "qalora.trainArgs" -}}
- train
- --model
- {{ .Values.train.model | quote }}
{{- range .Values.train.data }}
- --data
- {{ . | quote }}
{{- end }}
- --output
- {{ .Values.train.output | quote }}
{{- range .Values.train.evalData }}
- --eval-data
- {{ . | quote }}
{{- end }}
- --eval-every
- {{ .Values.train.evalEvery | quote }}
- --slots
- {{ .Values.slots | quote }}
- --rounds
- {{ .Values.train.rounds | quote }}
- --steps-per-round
- {{ .Values.train.stepsPerRound | quote }}
- --batch-size
- {{ .Values.train.batchSize | quote }}
- --group-by-length
- {{ .Values.train.groupByLength | quote }}
- --micro-batch-tokens
- {{ .Values.train.microBatchTokens | quote }}
- --seed
- {{ .Values.train.seed | quote }}
- --method
- {{ .Values.train.method | quote }}
- --bits
- {{ .Values.train.bits | quote }}
- --group-size
- {{ .Values.train.groupSize | quote }}
- --quantize
- {{ .Values.train.quantize | default "gptq" | quote }}
{{- if .Values.train.calibration }}
- --calibration
- {{ .Values.train.calibration | quote }}
{{- end }}
- --calibration-samples
- {{ .Values.train.calibrationSamples | default 128 | quote }}
- --calibration-tokens
- {{ .Values.train.calibrationTokens | default 2048 | quote }}
- --rank
- {{ .Values.train.rank | quote }}
- --alpha
- {{ .Values.train.alpha | quote }}
{{- if .Values.train.lr }}
- --lr
- {{ .Values.train.lr | quote }}
{{- end }}
- --lr-schedule
- {{ .Values.train.lrSchedule | default "constant" | quote }}
- --warmup-steps
- {{ .Values.train.warmupSteps | default 0 | quote }}
{{- if .Values.train.skipBadRecords }}
- --skip-bad-records
{{- end }}
{{- range .Values.train.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The Java 25 flags every qalora JVM needs (kept in sync with bin/qalora and the root pom). */}}
{{- define "qalora.javaOptions" -}}
-XX:+IgnoreUnrecognizedVMOptions --sun-misc-unsafe-memory-access=allow --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.lang.invoke=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/sun.nio.cs=ALL-UNNAMED --add-opens=java.base/sun.util.calendar=ALL-UNNAMED --add-opens=java.security.jgss/sun.security.krb5=ALL-UNNAMED -Djdk.reflect.useDirectMethodHandle=false -Dio.netty.tryReflectionSetAccessible=true -Dnet.bytebuddy.experimental=true
{{- end -}}

{{/* The namespace: .Values.namespace, else the release's (helm template without --namespace renders "default"). */}}
{{- define "qalora.namespace" -}}
{{- .Values.namespace | default .Release.Namespace | default "default" -}}
{{- end }}
