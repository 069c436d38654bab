{{/* Names, labels and the few values that several templates share. */}}

{{- define "ramsecrets.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ramsecrets.fullname" -}}
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

{{- define "ramsecrets.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ramsecrets.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ramsecrets.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ramsecrets.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: injector
{{- end }}

{{- define "ramsecrets.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ramsecrets.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* An image reference: repository, then @digest or :tag (the chart's appVersion by default). */}}
{{- define "ramsecrets.imageRef" -}}
{{- $img := index . 0 }}
{{- $root := index . 1 }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{- define "ramsecrets.image" -}}
{{- include "ramsecrets.imageRef" (list .Values.image .) }}
{{- end }}

{{/* Whether the injector talks to the API server: to patch its caBundle (tls.auto), or to
     read /version when injection.kubernetes_version does not say it. */}}
{{- define "ramsecrets.usesAPIServer" -}}
{{- if or (eq .Values.tls.mode "auto") (not .Values.injection.kubernetes_version) }}true{{ end }}
{{- end }}

{{/* What injected containers run: injectedImage when set, else the injector's own image. */}}
{{- define "ramsecrets.injectedImage" -}}
{{- if .Values.injectedImage.repository }}
{{- include "ramsecrets.imageRef" (list .Values.injectedImage .) }}
{{- else }}
{{- include "ramsecrets.image" . }}
{{- end }}
{{- end }}

{{- define "ramsecrets.webhookName" -}}
{{- include "ramsecrets.fullname" . }}
{{- end }}

{{- define "ramsecrets.tlsSecretName" -}}
{{- printf "%s-tls" (include "ramsecrets.fullname" .) }}
{{- end }}

{{/* The DNS names the serving certificate must carry: the Service as the API server calls it. */}}
{{- define "ramsecrets.serviceDNSNames" -}}
{{- $svc := include "ramsecrets.fullname" . }}
- {{ $svc }}
- {{ $svc }}.{{ .Release.Namespace }}
- {{ $svc }}.{{ .Release.Namespace }}.svc
- {{ $svc }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end }}

{{/* The injector's config file: the sources injected pods use and the inject: section. */}}
{{- define "ramsecrets.config" -}}
sources:
  {{- toYaml .Values.sources | nindent 2 }}
inject:
  listen: "0.0.0.0:{{ .Values.containerPort }}"
  image: {{ include "ramsecrets.injectedImage" . | quote }}
  tls:
    {{- if eq .Values.tls.mode "auto" }}
    auto:
      webhook: {{ include "ramsecrets.webhookName" . }}
      service: {{ include "ramsecrets.fullname" . }}
      namespace: {{ .Release.Namespace }}
    {{- else }}
    cert_file: /etc/ramsecrets-tls/tls.crt
    key_file: /etc/ramsecrets-tls/tls.key
    {{- end }}
  audience: {{ .Values.injection.audience | quote }}
  {{- with .Values.injection.kubernetes_version }}
  kubernetes_version: {{ . | quote }}
  {{- end }}
  {{- with .Values.injection.defaults }}
  defaults:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.injection.compat }}
  compat: {{ . | quote }}
  {{- end }}
  {{- with .Values.injection.compat_allow_tls_skip_verify }}
  compat_allow_tls_skip_verify: {{ . }}
  {{- end }}
{{- end }}
