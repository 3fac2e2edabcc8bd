{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "sg-churn-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "sg-churn-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sg-churn-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sg-churn-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sg-churn-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sg-churn-exporter.labels" -}}
helm.sh/chart: {{ include "sg-churn-exporter.chart" . }}
{{ include "sg-churn-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "sg-churn-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sg-churn-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sg-churn-exporter.image" -}}
{{- $repository := required "image.repository is required: build the image from the Dockerfile, push it to a registry the nodes can pull from (README, \"Build and push the image\") and set --set image.repository=<registry>/sg-churn-exporter" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Labels of the objects kube-prometheus-stack selects (ServiceMonitor, PrometheusRule, dashboard
ConfigMaps): release=<prometheusRelease> unless "", under the section's own labels (`extra`, which win).
*/}}
{{- define "sg-churn-exporter.monitoringLabels" -}}
{{- $labels := dict }}
{{- with .root.Values.prometheusRelease }}
{{- $_ := set $labels "release" . }}
{{- end }}
{{- $labels = merge (deepCopy (.extra | default dict)) $labels }}
{{- with $labels }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* Fixed paths and port shared by the image, the config and the pod spec. */}}
{{- define "sg-churn-exporter.port" -}}9877{{- end }}
{{- define "sg-churn-exporter.configDir" -}}/etc/sg-churn-exporter{{- end }}
{{- define "sg-churn-exporter.stateDir" -}}/var/lib/sg-churn-exporter{{- end }}

{{/* Pods that run: totalShards in sharded mode, else replicaCount. */}}
{{- define "sg-churn-exporter.replicas" -}}
{{- if .Values.sharding.enabled }}{{ int .Values.sharding.totalShards }}{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{/* HTTPS when the exporter serves TLS itself. */}}
{{- define "sg-churn-exporter.scheme" -}}
{{- if (.Values.config.web | default dict).tls_cert_file }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/*
config.yaml: .Values.config (its defaults are in values.yaml) plus the keys the chart owns because the
pod spec depends on them: where it listens and where the state volume is mounted.
*/}}
{{- define "sg-churn-exporter.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "listen_address" "0.0.0.0" }}
{{- $_ = set $cfg "listen_port" (int (include "sg-churn-exporter.port" .)) }}
{{- $state := deepCopy (.Values.config.state | default dict) }}
{{- $_ = set $state "path" (printf "%s/state.sqlite3" (include "sg-churn-exporter.stateDir" .)) }}
{{- $_ = set $cfg "state" $state }}
{{- /* YAML true/false in values: the exporter wants kubernetes.enabled as the string auto|true|false. */}}
{{- if hasKey $cfg "kubernetes" }}
{{- $k8s := deepCopy ($cfg.kubernetes | default dict) }}
{{- if hasKey $k8s "enabled" }}
{{- $_ = set $k8s "enabled" (toString $k8s.enabled) }}
{{- end }}
{{- $_ = set $cfg "kubernetes" $k8s }}
{{- end }}
{{- /* The landing page links runbooks where the alerts do: prometheusRule.runbookBaseUrl, unless set. */}}
{{- with .Values.prometheusRule.runbookBaseUrl }}
{{- $web := deepCopy ($cfg.web | default dict) }}
{{- if not (hasKey $web "runbook_base_url") }}
{{- $_ = set $web "runbook_base_url" . }}
{{- end }}
{{- $_ = set $cfg "web" $web }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* The pod template shared by the Deployment and the StatefulSet. */}}
{{- define "sg-churn-exporter.podTemplate" -}}
metadata:
  labels:
    {{- include "sg-churn-exporter.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "sg-churn-exporter.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: exporter
      image: {{ include "sg-churn-exporter.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
        - --config
        - {{ include "sg-churn-exporter.configDir" . }}/config.yaml
        {{- if .Values.sharding.enabled }}
        - --total-shards
        - {{ .Values.sharding.totalShards | int | quote }}
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      {{- if or .Values.sharding.enabled .Values.extraEnv }}
      env:
        {{- if .Values.sharding.enabled }}
        # The shard is the trailing ordinal of the pod name (HOSTNAME), e.g. ...-2 -> shard 2.
        - name: SGCHURN_SHARD_FROM_HOSTNAME
          value: "true"
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        - name: http-metrics
          containerPort: {{ include "sg-churn-exporter.port" . }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: http-metrics
          scheme: {{ include "sg-churn-exporter.scheme" . }}
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http-metrics
          scheme: {{ include "sg-churn-exporter.scheme" . }}
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: {{ include "sg-churn-exporter.configDir" . }}
          readOnly: true
        - name: state
          mountPath: {{ include "sg-churn-exporter.stateDir" . }}
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "sg-churn-exporter.fullname" . }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if not (and .Values.sharding.enabled .Values.persistence.enabled) }}
    - name: state
      {{- if .Values.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ .Values.persistence.existingClaim | default (printf "%s-state" (include "sg-churn-exporter.fullname" .)) }}
      {{- else if .Values.persistence.emptyDirSizeLimit }}
      emptyDir:
        sizeLimit: {{ .Values.persistence.emptyDirSizeLimit }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The PVC spec shared by the standalone claim and the StatefulSet's volumeClaimTemplates. */}}
{{- define "sg-churn-exporter.pvcSpec" -}}
accessModes:
  {{- toYaml .Values.persistence.accessModes | nindent 2 }}
{{- with .Values.persistence.storageClass }}
storageClassName: {{ if eq . "-" }}""{{ else }}{{ . | quote }}{{ end }}
{{- end }}
resources:
  requests:
    storage: {{ .Values.persistence.size | quote }}
{{- end }}
