{{/* Names and labels shared by every resource of the chart. */}}
{{- define "barometre.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "barometre.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component: include "barometre.selector" (list . "api") */}}
{{- define "barometre.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "barometre.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The settings every barometre process reads (services/common/settings.py), as EnvVars. */}}
{{- define "barometre.env" -}}
- name: BAROMETRE_KAFKA_BOOTSTRAP
  value: {{ .Values.kafka.bootstrap | quote }}
- name: BAROMETRE_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
- name: BAROMETRE_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.saslMechanism | quote }}
- name: BAROMETRE_KAFKA_PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: BAROMETRE_KAFKA_REPLICATION
  value: {{ .Values.kafka.replication | quote }}
- name: BAROMETRE_KAFKA_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: BAROMETRE_CLICKHOUSE_URL
  value: {{ .Values.clickhouse.url | quote }}
- name: BAROMETRE_CLICKHOUSE_DATABASE
  value: {{ .Values.clickhouse.database | quote }}
{{- with .Values.clickhouse.cluster }}
- name: BAROMETRE_CLICKHOUSE_CLUSTER
  value: {{ . | quote }}
{{- end }}
- name: BAROMETRE_DATA_DIR
  value: /var/lib/barometre
- name: BAROMETRE_CACHE_DIR
  value: /var/lib/barometre/cache
- name: BAROMETRE_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: BAROMETRE_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: BAROMETRE_BOOTSTRAP_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ .Values.secretName | quote }}, key: bootstrap-token}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* One service's Kafka and ClickHouse logins: include "barometre.logins" (list . "api") */}}
{{- define "barometre.logins" -}}
{{- $root := index . 0 -}}
{{- $role := index . 1 -}}
{{- $ch := index $root.Values.clickhouse.users $role -}}
- name: BAROMETRE_CLICKHOUSE_USER
  value: {{ printf "barometre_%s" $role | quote }}
- name: BAROMETRE_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $root.Values.clickhouse.secretName | quote }}, key: {{ $ch.secretKey | quote }}}
{{- with (index $root.Values.kafka.users $role) }}
- name: BAROMETRE_KAFKA_SASL_USERNAME
  value: {{ .name | quote }}
- name: BAROMETRE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .secretName | quote }}, key: {{ .secretKey | quote }}}
{{- end }}
{{- end -}}

{{/* Probes on a service's /healthz (alive) and /readyz (ready: its dependencies answer). */}}
{{- define "barometre.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* What every barometre pod shares: security, a writable state directory, scheduling. */}}
{{- define "barometre.podCommon" -}}
{{- $root := index . 0 -}}
{{- $svc := index . 1 -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: state
    emptyDir: {}
  - name: tmp
    emptyDir: {}
{{- end -}}

{{- define "barometre.mounts" -}}
volumeMounts:
  - {name: state, mountPath: /var/lib/barometre}
  - {name: tmp, mountPath: /tmp}
{{- end -}}
