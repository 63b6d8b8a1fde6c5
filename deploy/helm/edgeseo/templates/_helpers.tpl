{{- define "edgeseo.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "edgeseo.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "edgeseo.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The directories of rules/ that hold files, each becoming one ConfigMap. */}}
{{- define "edgeseo.ruleDirs" -}}
{{- $dirs := dict -}}
{{- range $path, $_ := .Files.Glob "rules/**" -}}
{{- $_ := set $dirs (dir $path) true -}}
{{- end -}}
{{- keys $dirs | sortAlpha | join "\n" -}}
{{- end -}}

{{/* ConfigMap name of a rules directory: stable, and valid whatever the directory is called. */}}
{{- define "edgeseo.ruleMap" -}}
{{- printf "%s-rules-%s" (include "edgeseo.fullname" .root) (sha256sum .dir | trunc 10) -}}
{{- end -}}

{{- define "edgeseo.adminSecret" -}}
{{- default (printf "%s-admin" (include "edgeseo.fullname" .)) .Values.admin.existingSecret -}}
{{- end -}}
