{{- define "epp.name" -}}{{ printf "%s-epp" (.Release.Name | trunc 40 | trimSuffix "-") }}{{- end -}}
{{- define "epp.labels" -}}
inferencepool: {{ include "epp.name" . }}
app.kubernetes.io/name: {{ include "epp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
