{{- define "omnihooks.name" -}}{{ .Release.Name }}-omnihooks{{- end -}}
{{- define "omnihooks.labels" -}}
app.kubernetes.io/name: omnihooks
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "omnihooks.secretName" -}}
{{- if .Values.secrets.existingSecret }}{{ .Values.secrets.existingSecret }}{{ else }}{{ include "omnihooks.name" . }}{{ end -}}
{{- end -}}

{{- /*
Kafka security for one principal: `omnihooks.kafkaEnv`, `omnihooks.kafkaMounts` and
`omnihooks.kafkaVolumes` take (dict "root" $ "principal" NAME), NAME one of kafka.principals'
keys. Passwords and keys reach the pod as files from Secrets (KAFKA_*_FILE, *_LOCATION),
never as values in the manifest or the environment.
*/ -}}
{{- define "omnihooks.kafkaEnv" -}}
{{- $k := .root.Values.kafka -}}
{{- $p := index $k.principals .principal -}}
{{- if ne $k.securityProtocol "PLAINTEXT" }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ $k.securityProtocol | quote }}
{{- end }}
{{- if hasPrefix "SASL_" $k.securityProtocol }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  value: {{ $p.username | quote }}
- name: KAFKA_SASL_PASSWORD_FILE
  value: /etc/omnihooks/kafka-password/{{ $p.passwordSecret.key }}
{{- end }}
{{- if has $k.securityProtocol (list "SSL" "SASL_SSL") }}
{{- if $k.tls.caSecret.name }}
- name: KAFKA_SSL_CA_LOCATION
  value: /etc/omnihooks/kafka-ca/{{ $k.tls.caSecret.key }}
{{- end }}
{{- if $p.certificateSecret }}
- name: KAFKA_SSL_CERTIFICATE_LOCATION
  value: /etc/omnihooks/kafka-user/user.crt
- name: KAFKA_SSL_KEY_LOCATION
  value: /etc/omnihooks/kafka-user/user.key
{{- end }}
- name: KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM
  value: {{ $k.tls.endpointIdentification | quote }}
{{- end }}
{{- end -}}

{{- define "omnihooks.kafkaMounts" -}}
{{- $k := .root.Values.kafka -}}
{{- $p := index $k.principals .principal -}}
{{- if hasPrefix "SASL_" $k.securityProtocol }}
- name: kafka-password
  mountPath: /etc/omnihooks/kafka-password
  readOnly: true
{{- end }}
{{- if and (has $k.securityProtocol (list "SSL" "SASL_SSL")) $k.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/omnihooks/kafka-ca
  readOnly: true
{{- end }}
{{- if and (has $k.securityProtocol (list "SSL" "SASL_SSL")) $p.certificateSecret }}
- name: kafka-user
  mountPath: /etc/omnihooks/kafka-user
  readOnly: true
{{- end }}
{{- end -}}

{{- define "omnihooks.kafkaVolumes" -}}
{{- $k := .root.Values.kafka -}}
{{- $p := index $k.principals .principal -}}
{{- if hasPrefix "SASL_" $k.securityProtocol }}
- name: kafka-password
  secret:
    secretName: {{ $p.passwordSecret.name | quote }}
    items: [{key: {{ $p.passwordSecret.key | quote }}, path: {{ $p.passwordSecret.key | quote }}}]
{{- end }}
{{- if and (has $k.securityProtocol (list "SSL" "SASL_SSL")) $k.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ $k.tls.caSecret.name | quote }}
    items: [{key: {{ $k.tls.caSecret.key | quote }}, path: {{ $k.tls.caSecret.key | quote }}}]
{{- end }}
{{- if and (has $k.securityProtocol (list "SSL" "SASL_SSL")) $p.certificateSecret }}
- name: kafka-user
  secret:
    secretName: {{ $p.certificateSecret | quote }}
    items: [{key: user.crt, path: user.crt}, {key: user.key, path: user.key}]
{{- end }}
{{- end -}}
