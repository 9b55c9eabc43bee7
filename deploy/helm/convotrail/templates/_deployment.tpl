{{/*
A stateless process (sink, intake, read API, lag exporter): a Deployment, its Service
and its PodDisruptionBudget. Called with a dict:
  root       the chart's root context
  component  the component's name (labels, object names)
  values     the component's values (replicas, resources, pdb); valuesKey their key
  args       the container's args: the convotrail subcommand and its options
  port       the port serving /healthz, /readyz and /metrics; portName its name
  probeHost  a Host header for the probes (the API's allow-list), or empty
  env        more env entries (YAML), e.g. the database URL
  mounts, volumes  more volumeMounts and volumes (YAML)
  serviceType      the Service's type
*/}}
{{- define "convotrail.deployment" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $name := include "convotrail.componentName" $ctx -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "convotrail.labels" $ctx | nindent 4 }}
spec:
  type: {{ .serviceType | default "ClusterIP" }}
  selector:
    {{- include "convotrail.selectorLabels" $ctx | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ .port }}
      targetPort: {{ .portName }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "convotrail.labels" $ctx | nindent 4 }}
spec:
  replicas: {{ .values.replicas | default 1 }}
  selector:
    matchLabels:
      {{- include "convotrail.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "convotrail.labels" $ctx | nindent 8 }}
      annotations:
        {{- include "convotrail.podAnnotations" $root | nindent 8 }}
    spec:
      {{- include "convotrail.podCommon" $root | nindent 6 }}
      {{- with .values.terminationGracePeriodSeconds }}
      terminationGracePeriodSeconds: {{ . }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "convotrail.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          env:
            {{- include "convotrail.env" $root | nindent 12 }}
            - name: CONVOTRAIL_HOME
              value: /var/lib/convotrail
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
          ports:
            - name: {{ .portName }}
              containerPort: {{ .port }}
          {{- include "convotrail.probes" (dict "port" .portName "host" .probeHost) | nindent 10 }}
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "convotrail.scratchVolumeMounts" $root | nindent 12 }}
            {{- with include "convotrail.caVolumeMounts" $root }}{{ . | trim | nindent 12 }}{{- end }}
            {{- with .mounts }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        {{- include "convotrail.scratchVolumes" $root | nindent 8 }}
        {{- with include "convotrail.caVolumes" $root }}{{ . | trim | nindent 8 }}{{- end }}
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "convotrail.labels" $ctx | nindent 4 }}
spec:
  {{- include "convotrail.pdbSpec" (dict "pdb" .values.pdb "what" .valuesKey) | nindent 2 }}
  selector:
    matchLabels:
      {{- include "convotrail.selectorLabels" $ctx | nindent 6 }}
{{- end -}}
