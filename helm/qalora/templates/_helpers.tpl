{{/*
The train flags, one list item each: every key of .Values.train is a setting of `qalora train`
(org.qalora.driver.config.TrainSetting) in camel case and becomes its flag in kebab case (stepsPerRound:
--steps-per-round); a list repeats the flag per item, a true boolean renders --flag (false renders nothing: every boolean
setting defaults to off), an unset (null) or empty value renders nothing and leaves the command's default. .Values.slots also sizes the executors, so it is
top-level. extraArgs are passed as they are. HelmChartTest checks this against the declaration.
*/}}
{{- define "qalora.trainArgs" -}}
- train
- --slots
- {{ .Values.slots | quote }}
{{- range $key, $value := .Values.train }}
{{- if ne $key "extraArgs" }}
{{- $flag := kebabcase $key }}
{{- if kindIs "slice" $value }}
{{- range $value }}
- --{{ $flag }}
- {{ . | quote }}
{{- end }}
{{- else if kindIs "bool" $value }}
{{- if $value }}
- --{{ $flag }}
{{- end }}
{{- else if kindIs "float64" $value }}
{{- /* YAML numbers reach a template as float64: print a whole one as an integer (a long seed, not 4.2e+10) */}}
- --{{ $flag }}
- {{ if eq $value (floor $value) }}{{ $value | int64 | quote }}{{ else }}{{ $value | quote }}{{ end }}
{{- else if and (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
- --{{ $flag }}
- {{ $value | quote }}
{{- end }}
{{- end }}
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
