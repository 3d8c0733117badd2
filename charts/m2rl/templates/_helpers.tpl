{{/* Chart name, truncated to a DNS label. */}}
{{- define "m2rl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name: the release name (plus the chart name unless it contains it). */}}
{{- define "m2rl.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "m2rl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "m2rl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: m2rl
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "mlflow"). */}}
{{- define "m2rl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "m2rl.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "m2rl.componentLabels" -}}
{{ include "m2rl.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "m2rl.image" -}}
{{ printf "%s:%s" .repository .tag }}
{{- end }}

{{- define "m2rl.mlflowName" -}}{{ include "m2rl.fullname" . }}-mlflow{{- end }}
{{- define "m2rl.postgresName" -}}{{ include "m2rl.fullname" . }}-postgresql{{- end }}
{{- define "m2rl.minioName" -}}{{ include "m2rl.fullname" . }}-minio{{- end }}
{{- define "m2rl.rewardsName" -}}{{ include "m2rl.fullname" . }}-rewards{{- end }}

{{/* In-cluster URL of the MLflow Service. */}}
{{- define "m2rl.mlflowUrl" -}}
{{ printf "http://%s.%s.svc.cluster.local:%d" (include "m2rl.mlflowName" .) .Release.Namespace (int .Values.mlflow.port) }}
{{- end }}

{{/* The S3 endpoint URL every client uses: MinIO's Service, the external endpoint, or "" (AWS S3). */}}
{{- define "m2rl.s3Endpoint" -}}
{{- if .Values.minio.enabled -}}
{{ printf "http://%s.%s.svc.cluster.local:9000" (include "m2rl.minioName" .) .Release.Namespace }}
{{- else -}}
{{ .Values.s3.endpoint }}
{{- end -}}
{{- end }}

{{/* Non-secret S3 environment of a container that talks to the study bucket. */}}
{{- define "m2rl.s3Env" -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.existingSecret }}
      key: {{ .Values.s3.accessKeyKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.existingSecret }}
      key: {{ .Values.s3.secretKeyKey }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.s3.region | quote }}
{{- with include "m2rl.s3Endpoint" . }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ . | quote }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Container securityContext: non-root, no privilege escalation, every capability dropped. */}}
{{- define "m2rl.containerSecurity" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Pod securityContext from a (runAsUser, runAsGroup, fsGroup) mapping. */}}
{{- define "m2rl.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
fsGroup: {{ .fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "m2rl.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* Host headers MLflow accepts: the Service's DNS names (any port), localhost (port-forward), the ingress host. */}}
{{- define "m2rl.mlflowAllowedHosts" -}}
{{- $svc := include "m2rl.mlflowName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $hosts := list $svc (printf "%s:*" $svc) (printf "%s.%s" $svc $ns) (printf "%s.%s:*" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc:*" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) (printf "%s.%s.svc.cluster.local:*" $svc $ns) "localhost" "localhost:*" "127.0.0.1" "127.0.0.1:*" -}}
{{- if .Values.mlflow.ingress.enabled -}}
{{- $hosts = append $hosts .Values.mlflow.ingress.host -}}
{{- $hosts = append $hosts (printf "%s:*" .Values.mlflow.ingress.host) -}}
{{- end -}}
{{- $hosts = concat $hosts .Values.mlflow.allowedHosts -}}
{{ join "," $hosts }}
{{- end }}

{{/* Namespace of KFP's step pods (the launcher ServiceAccount and the kfp-launcher ConfigMap live there). */}}
{{- define "m2rl.runNamespace" -}}
{{ default .Release.Namespace .Values.kfp.runNamespace }}
{{- end }}
