{{/*
Names, labels and the pieces every workload shares: the environment (Kafka, the
registry, the topics, credentials from Secrets), the security contexts and the
writable volumes. Each workload's template only says what is its own.
*/}}

{{- define "convotrail.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "convotrail.fullname" -}}
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

{{/* A component's object name: <fullname>-<component>, e.g. convotrail-worker-bounces. */}}
{{- define "convotrail.componentName" -}}
{{- printf "%s-%s" (include "convotrail.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "convotrail.selectorLabels" -}}
app.kubernetes.io/name: {{ include "convotrail.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "convotrail.labels" -}}
{{ include "convotrail.selectorLabels" . }}
app.kubernetes.io/part-of: convotrail
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "convotrail.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "convotrail.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "convotrail.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The chart's own Secret: every credential given inline in the values. */}}
{{- define "convotrail.secretName" -}}
{{- include "convotrail.fullname" . -}}
{{- end -}}

{{/* Consumer group (and transactional.id prefix) of a worker: the processors' app ids
(the app_id in each processor's shell.py), behind the topic prefix as the code puts it. */}}
{{- define "convotrail.workerGroup" -}}
{{- $apps := dict "conversation" "convotrail-conversations" "bounces" "convotrail-bounces" "receipts" "convotrail-receipts" -}}
{{- printf "%s%s" .root.Values.topics.prefix (get $apps .worker) -}}
{{- end -}}

{{- define "convotrail.saslOn" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end -}}
{{- end -}}

{{- define "convotrail.tlsOn" -}}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}true{{ end -}}
{{- end -}}

{{/* Where the SASL credentials are: the chart's Secret (inline) or yours. */}}
{{- define "convotrail.saslSecretName" -}}
{{- if .Values.kafka.sasl.username -}}
{{- include "convotrail.secretName" . -}}
{{- else if .Values.kafka.sasl.existingSecret -}}
{{- .Values.kafka.sasl.existingSecret -}}
{{- else -}}
{{- fail (printf "kafka.securityProtocol=%s needs credentials: set kafka.sasl.username and kafka.sasl.password, or kafka.sasl.existingSecret (keys KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD)" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- end -}}

{{/* The environment every convotrail process reads (convotrail/settings.py,
convotrail/clients.py): Kafka (KAFKA_<librdkafka setting>), the registry
(SCHEMA_REGISTRY_<setting>), the topics. Credentials only by secretKeyRef. */}}
{{- define "convotrail.env" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if include "convotrail.saslOn" . }}
- name: KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "convotrail.saslSecretName" . }}
      key: KAFKA_SASL_USERNAME
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "convotrail.saslSecretName" . }}
      key: KAFKA_SASL_PASSWORD
{{- end }}
{{- if .Values.kafka.tls.caSecret }}
- name: KAFKA_SSL_CA_LOCATION
  value: /etc/convotrail/kafka-ca/{{ .Values.kafka.tls.caKey }}
{{- end }}
{{- range $name, $value := .Values.kafka.config }}
- name: {{ printf "KAFKA_%s" ($name | upper | replace "." "_") }}
  value: {{ $value | toString | quote }}
{{- end }}
- name: SCHEMA_REGISTRY_URL
  value: {{ .Values.schemaRegistry.url | quote }}
{{- if or .Values.schemaRegistry.basicAuth.userInfo .Values.schemaRegistry.basicAuth.existingSecret }}
- name: SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO
  valueFrom:
    secretKeyRef:
      name: {{ ternary (include "convotrail.secretName" .) .Values.schemaRegistry.basicAuth.existingSecret (not (empty .Values.schemaRegistry.basicAuth.userInfo)) }}
      key: SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO
{{- end }}
{{- if .Values.schemaRegistry.tls.caSecret }}
- name: SCHEMA_REGISTRY_SSL_CA_LOCATION
  value: /etc/convotrail/registry-ca/{{ .Values.schemaRegistry.tls.caKey }}
{{- end }}
- name: CONVOTRAIL_TOPIC_PREFIX
  value: {{ .Values.topics.prefix | quote }}
- name: CONVOTRAIL_PARTITIONS
  value: {{ .Values.topics.partitions | quote }}
- name: CONVOTRAIL_REPLICATION_FACTOR
  value: {{ .Values.topics.replicationFactor | quote }}
- name: CONVOTRAIL_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
{{- end -}}

{{- define "convotrail.databaseEnv" -}}
- name: CONVOTRAIL_DATABASE_URL
  valueFrom:
    secretKeyRef:
{{- if .Values.database.url }}
      name: {{ include "convotrail.secretName" . }}
      key: CONVOTRAIL_DATABASE_URL
{{- else if .Values.database.existingSecret }}
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.existingSecretKey }}
{{- else }}
{{- fail "database: set database.url or database.existingSecret (the sink and the read API share one database)" }}
{{- end }}
{{- end -}}

{{/* The CA bundles, mounted where the env above points. */}}
{{- define "convotrail.caVolumeMounts" -}}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/convotrail/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.schemaRegistry.tls.caSecret }}
- name: registry-ca
  mountPath: /etc/convotrail/registry-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "convotrail.caVolumes" -}}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: {{ .Values.kafka.tls.caKey }}
{{- end }}
{{- if .Values.schemaRegistry.tls.caSecret }}
- name: registry-ca
  secret:
    secretName: {{ .Values.schemaRegistry.tls.caSecret }}
    items:
      - key: {{ .Values.schemaRegistry.tls.caKey }}
        path: {{ .Values.schemaRegistry.tls.caKey }}
{{- end }}
{{- end -}}

{{/* The read-only root filesystem leaves /tmp and CONVOTRAIL_HOME writable. */}}
{{- define "convotrail.scratchVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /var/lib/convotrail
{{- end -}}

{{- define "convotrail.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
- name: home
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{/* Pod-level settings every workload shares. */}}
{{- define "convotrail.podCommon" -}}
serviceAccountName: {{ include "convotrail.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Annotations that roll the pods when the chart's Secret changes. */}}
{{- define "convotrail.podAnnotations" -}}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* HTTP probes on a named port. */}}
{{- define "convotrail.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
    {{- with .host }}
    httpHeaders:
      - name: Host
        value: {{ . | quote }}
    {{- end }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .port }}
    {{- with .host }}
    httpHeaders:
      - name: Host
        value: {{ . | quote }}
    {{- end }}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* A PodDisruptionBudget's spec: one of maxUnavailable and minAvailable. */}}
{{- define "convotrail.pdbSpec" -}}
{{- $pdb := .pdb | default dict -}}
{{- if and (hasKey $pdb "maxUnavailable") (hasKey $pdb "minAvailable") (not (kindIs "invalid" $pdb.maxUnavailable)) (not (kindIs "invalid" $pdb.minAvailable)) -}}
{{- fail (printf "%s.pdb sets both maxUnavailable and minAvailable: a PodDisruptionBudget takes one (set the other to null)" .what) -}}
{{- end -}}
{{- $spec := dict -}}
{{- range $key, $value := $pdb -}}
{{- if not (kindIs "invalid" $value) -}}
{{- $_ := set $spec $key $value -}}
{{- end -}}
{{- end -}}
{{- if not $spec -}}
{{- fail (printf "%s.pdb: set maxUnavailable or minAvailable" .what) -}}
{{- end -}}
{{- toYaml $spec -}}
{{- end -}}
