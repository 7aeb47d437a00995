{{- define "ms.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}{{ .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 55 | trimSuffix "-" }}{{ end }}
{{- end -}}
{{- /* The selector (immutable once created) and pod labels: the model's labels plus the role, as upstream. */ -}}
{{- define "ms.decodeLabels" -}}
{{- toYaml (merge (dict "llm-d.ai/role" "decode") .Values.modelArtifacts.labels) }}
{{- end -}}
{{- /* uri -> (model argument, HF_HUB_CACHE) as upstream: pvc+hf://<claim>/<cache path>/<org>/<model> */ -}}
{{- define "ms.model" -}}
{{- $uri := .Values.modelArtifacts.uri -}}
{{- if hasPrefix "pvc+hf://" $uri -}}
{{- $parts := splitList "/" (trimPrefix "pvc+hf://" $uri) -}}
{{- $n := len $parts -}}
{{- if lt $n 3 }}{{ fail (printf "modelArtifacts.uri %s: expected pvc+hf://<claim>/<path>/<org>/<model>" $uri) }}{{ end -}}
{{- printf "%s/%s" (index $parts (sub $n 2)) (index $parts (sub $n 1)) -}}
{{- else if hasPrefix "hf://" $uri -}}{{ trimPrefix "hf://" $uri }}
{{- else if hasPrefix "pvc://" $uri -}}{{ printf "%s/%s" .Values.modelArtifacts.mountPath (rest (splitList "/" (trimPrefix "pvc://" $uri)) | join "/") }}
{{- else }}{{ fail "arguments for oci:// not implemented" }}{{ end -}}
{{- end -}}
