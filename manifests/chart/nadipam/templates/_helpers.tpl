{{/* Names and labels shared by every template. */}}

{{- define "nadipam.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nadipam.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "nadipam.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "nadipam.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "nadipam.serverSelector" -}}
app.kubernetes.io/name: {{ include "nadipam.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "nadipam.agentSelector" -}}
app.kubernetes.io/name: {{ include "nadipam.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node-agent
{{- end -}}

{{- define "nadipam.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "nadipam.mutatingName" -}}
{{- printf "nadipam-mutating%s" .Values.webhook.nameSuffix -}}
{{- end -}}

{{- define "nadipam.validatingName" -}}
{{- printf "nadipam-validating%s" .Values.webhook.nameSuffix -}}
{{- end -}}

{{/* The Issuer names the cert-manager templates create (as the server's --cert-mode=cert-manager does). */}}
{{- define "nadipam.caName" -}}
{{- printf "%s-ca" .Values.certs.secretName -}}
{{- end -}}

{{/* clientConfig of one webhook entry: the Service, or webhook.url. Call with (dict "root" $ "path" "/x"). */}}
{{- define "nadipam.clientConfig" -}}
{{- if .root.Values.webhook.url -}}
url: {{ printf "%s%s" (trimSuffix "/" .root.Values.webhook.url) .path | quote }}
{{- else -}}
service:
  name: {{ .root.Values.service.name }}
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
  port: {{ .root.Values.service.port }}
{{- end -}}
{{- end -}}

{{/* True (non-empty) when an extra SAN is an IP address. */}}
{{- define "nadipam.isIP" -}}
{{- if or (regexMatch "^[0-9]+(\\.[0-9]+){3}$" .) (contains ":" .) }}true{{ end -}}
{{- end -}}

{{- define "nadipam.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "nadipam.containerSecurityContext" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
{{- end -}}
