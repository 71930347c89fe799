{{/* The name of most objects: the release name, with the chart's name added unless the release name has it. */}}
{{- define "dify-upgrade-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dify-upgrade-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end -}}

{{- define "dify-upgrade-operator.labels" -}}
{{ include "dify-upgrade-operator.selectorLabels" . }}
app.kubernetes.io/part-of: dify-upgrade-operator
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "dify-upgrade-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "dify-upgrade-operator.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The image: a digest wins over the tag; the tag defaults to the chart's appVersion. */}}
{{- define "dify-upgrade-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap of the compatibility matrix the manager is told about, as namespace/name; empty when none. */}}
{{- define "dify-upgrade-operator.compatibilityConfigMap" -}}
{{- if .Values.compatibility.matrix -}}
{{- printf "%s/%s-compatibility" .Release.Namespace (include "dify-upgrade-operator.fullname" .) -}}
{{- else if .Values.compatibility.existingConfigMap -}}
{{- .Values.compatibility.existingConfigMap -}}
{{- end -}}
{{- end -}}

{{/*
The rules of a role in config/rbac, from the chart's copy in files/rbac
(`make manifests` copies them; test/release fails when a copy differs).
manager-role's (role.yaml) are generated from the controller's RBAC markers.
*/}}
{{- define "dify-upgrade-operator.rules" -}}
{{- $role := .ctx.Files.Get (printf "files/rbac/%s" .file) | fromYaml -}}
{{- toYaml $role.rules -}}
{{- end -}}

{{/* The cluster-scoped resources among the manager's rules. */}}
{{- define "dify-upgrade-operator.clusterScopedResources" -}}
nodes storageclasses ingressclasses
{{- end -}}

{{/* The manager's rules for a Role: those about cluster-scoped resources left out (a Role cannot grant them). */}}
{{- define "dify-upgrade-operator.namespacedRules" -}}
{{- $role := .Files.Get "files/rbac/role.yaml" | fromYaml -}}
{{- $clusterScoped := splitList " " (include "dify-upgrade-operator.clusterScopedResources" .) -}}
{{- $rules := list -}}
{{- range $role.rules -}}
{{- $resources := list -}}
{{- range .resources -}}
{{- if not (has . $clusterScoped) -}}
{{- $resources = append $resources . -}}
{{- end -}}
{{- end -}}
{{- if $resources -}}
{{- $rules = append $rules (merge (dict "resources" $resources) (omit . "resources")) -}}
{{- end -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end -}}

{{/* The manager's rules about cluster-scoped resources only, for a ClusterRole beside the Roles. */}}
{{- define "dify-upgrade-operator.clusterScopedRules" -}}
{{- $role := .Files.Get "files/rbac/role.yaml" | fromYaml -}}
{{- $clusterScoped := splitList " " (include "dify-upgrade-operator.clusterScopedResources" .) -}}
{{- $rules := list -}}
{{- range $role.rules -}}
{{- $resources := list -}}
{{- range .resources -}}
{{- if has . $clusterScoped -}}
{{- $resources = append $resources . -}}
{{- end -}}
{{- end -}}
{{- if $resources -}}
{{- $rules = append $rules (merge (dict "resources" $resources) (omit . "resources")) -}}
{{- end -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end -}}
