{{- define "omnihooks.name" -}}{{ .Release.Name }}-omnihooks{{- end -}}
{{- define "omnihooks.labels" -}}
app.kubernetes.io/name: omnihooks
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "omnihooks.secretName" -}}
{{- if .Values.secrets.existingSecret }}{{ .Values.secrets.existingSecret }}{{ else }}{{ include "omnihooks.name" . }}{{ end -}}
{{- end -}}
