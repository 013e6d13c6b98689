{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "stackwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Release-wide name prefix. Per-service objects append "-<service>", so keep
room for it: 30 characters (StatefulSet names must stay within 52).
*/}}
{{- define "stackwatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 30 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 30 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 30 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "stackwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "stackwatch.labels" -}}
helm.sh/chart: {{ include "stackwatch.chart" . }}
{{ include "stackwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stackwatch
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels common to every pod of the release.
*/}}
{{- define "stackwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stackwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of a monitoring object: the common ones, the release-wide
additionalLabels, then the object's own. Call with (dict "root" $ "extra" map).
*/}}
{{- define "stackwatch.monitoringLabels" -}}
{{ include "stackwatch.labels" .root }}
{{- with .root.Values.additionalLabels }}
{{ toYaml . }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Per-service names and labels. Call with (dict "root" $ "name" $svcName).
*/}}
{{- define "stackwatch.serviceFullname" -}}
{{- printf "%s-%s" (include "stackwatch.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stackwatch.serviceSelectorLabels" -}}
{{ include "stackwatch.selectorLabels" .root }}
app.kubernetes.io/component: game-service
stackwatch.io/service: {{ .name }}
{{- end }}

{{- define "stackwatch.serviceLabels" -}}
{{ include "stackwatch.labels" .root }}
app.kubernetes.io/component: game-service
stackwatch.io/service: {{ .name }}
{{- end }}

{{/*
Image reference for one binary. Call with (dict "root" $ "binary" "gameserver").
*/}}
{{- define "stackwatch.image" -}}
{{- $img := .root.Values.image }}
{{- $ref := printf "%s/%s" $img.repository .binary }}
{{- with $img.registry }}{{ $ref = printf "%s/%s" . $ref }}{{ end }}
{{- if $img.digest }}
{{- printf "%s@%s" $ref $img.digest }}
{{- else }}
{{- printf "%s:%s" $ref (default .root.Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{- define "stackwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stackwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Secrets: the name of the Secret holding each value, the chart's own unless an
existing one is named.
*/}}
{{- define "stackwatch.ticketSecretName" -}}
{{- default (printf "%s-ticket" (include "stackwatch.fullname" .)) .Values.gameserver.ticketSecret.existingSecret }}
{{- end }}

{{- define "stackwatch.sidecarTokenSecretName" -}}
{{- default (printf "%s-sidecar-token" (include "stackwatch.fullname" .)) .Values.sidecar.token.existingSecret }}
{{- end }}

{{/*
A generated secret value that survives upgrades: reuse the value in the live
Secret when there is one (lookup returns nothing under helm template), else
make a new one. Call with (dict "root" $ "name" secretName "key" key).
*/}}
{{- define "stackwatch.persistentRandom" -}}
{{- $live := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if and $live $live.data (hasKey $live.data .key) }}
{{- index $live.data .key | b64dec }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}

{{/*
Namespace of a monitoring object: its own value, else the release namespace.
*/}}
{{- define "stackwatch.namespace" -}}
{{- default .root.Release.Namespace .ns }}
{{- end }}

{{/*
Enabled services, sorted by name: a dict name -> merged settings.
*/}}
{{- define "stackwatch.enabledServices" -}}
{{- $out := dict }}
{{- range $name, $svc := .Values.services }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "services.%s: the service name must be a DNS label (lower-case letters, digits, '-')" $name) }}
{{- end }}
{{- if and $svc (ne (toString $svc.enabled) "false") }}
{{- if not (has $svc.game (list "goldenclover" "wilddig" "forestteaparty")) }}
{{- fail (printf "services.%s.game must be goldenclover, wilddig or forestteaparty (got %q)" $name (toString $svc.game)) }}
{{- end }}
{{- $_ := set $out $name $svc }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
One volumeClaimTemplates entry. Call with
(dict "ctx" (dict "root" $ "name" svc) "name" claimName "persistence" settings).
*/}}
{{- define "stackwatch.volumeClaimTemplate" -}}
- apiVersion: v1
  kind: PersistentVolumeClaim
  metadata:
    name: {{ .name }}
    labels:
      {{- include "stackwatch.serviceSelectorLabels" .ctx | nindent 6 }}
    {{- with .persistence.annotations }}
    annotations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
  spec:
    accessModes:
      {{- toYaml .persistence.accessModes | nindent 6 }}
    {{- with .persistence.storageClass }}
    storageClassName: {{ if eq . "-" }}""{{ else }}{{ . }}{{ end }}
    {{- end }}
    resources:
      requests:
        storage: {{ .persistence.size }}
{{- end }}

{{/*
A webhookConfigs list from {url, urlSecret: {name, key}} as YAML, or nothing
when neither is set.
*/}}
{{- define "stackwatch.webhookConfigs" -}}
{{- $c := dict "sendResolved" true }}
{{- if .urlSecret.name }}
{{- $_ := set $c "urlSecret" (dict "name" .urlSecret.name "key" .urlSecret.key) }}
{{- else if .url }}
{{- $_ := set $c "url" .url }}
{{- end }}
{{- if or .urlSecret.name .url }}
{{- toYaml (list $c) }}
{{- end }}
{{- end }}
