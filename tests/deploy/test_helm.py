"""The Helm chart (deploy/helm/convotrail) as a cluster would take it.

`helm lint --strict`, then one `helm template` per values file (the defaults, the
production example, and every credential inline with every option on), each rendered
document validated offline against the Kubernetes schemas of a pinned release
(kubernetes-validate, strict) or, for KEDA's and prometheus-operator's kinds, against
their CRDs. Then the project's own rules on the rendered objects: probes, resources,
budgets, stable worker identity, autoscaling within the partitions, secrets kept in
Secrets, and container args that the real CLI accepts.

helm comes from `make tools` (deploy/tools/install-tools.sh). Without it these tests
skip locally and fail under CI=true.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support import helm as h

HERE = Path(__file__).resolve().parent
VALUES = {
    "defaults": (),
    "production": (h.CHART / "values-production.yaml",),
    "inline-secrets": (HERE / "values-inline-secrets.yaml",),
}
WORKERS = ("conversation", "bounces", "receipts")
LONG_RUNNING = ("Deployment", "StatefulSet")


@pytest.fixture(scope="module")
def helm() -> str:
    found = h.helm_path()
    if found is None:
        reason = "helm is not installed: run `make tools` (deploy/tools/install-tools.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def renders(helm: str) -> dict[str, list[h.Document]]:
    """One `helm template` per values file, shared by every test of the module."""
    found = {}
    for values, files in VALUES.items():
        result = h.run_helm(helm, *h.template_args(*files))
        assert result.returncode == 0, result.stderr
        found[values] = h.documents(result.stdout)
    return found


@pytest.fixture(params=list(VALUES))
def rendered(
    request: pytest.FixtureRequest, renders: dict[str, list[h.Document]]
) -> tuple[str, list[h.Document]]:
    return request.param, renders[request.param]


def test_chart_lints_strictly(helm: str) -> None:
    for files in VALUES.values():
        args = ["lint", "--strict", str(h.CHART), "--kube-version", h.KUBERNETES_VERSION]
        for path in files:
            args += ["--values", str(path)]
        result = h.run_helm(helm, *args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_every_document_is_valid_for_kubernetes(rendered: tuple[str, list[h.Document]]) -> None:
    _, docs = rendered
    crds = h.crd_schemas()
    problems = []
    for doc in docs:
        schema = crds.get((doc["apiVersion"], doc["kind"]))
        if schema is not None:
            problems += [f"{h.name(doc)}: {error}" for error in h.crd_errors(doc, schema)]
            continue
        try:
            kubernetes_validate.validate(doc, h.KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            problems.append(f"{h.name(doc)}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{h.name(doc)}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_custom_resources_are_checked_against_their_crds() -> None:
    # The vendored CRDs refuse what the API server would: a misspelt field, a wrong type.
    schemas = h.crd_schemas()
    scaled = schemas[("keda.sh/v1alpha1", "ScaledObject")]
    good = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "w"},
        "spec": {
            "scaleTargetRef": {"name": "w", "kind": "StatefulSet"},
            "maxReplicaCount": 6,
            "triggers": [{"type": "kafka", "metadata": {"lagThreshold": "10"}}],
        },
    }
    assert h.crd_errors(good, scaled) == []
    misspelt = json.loads(json.dumps(good))
    misspelt["spec"]["maxReplicas"] = misspelt["spec"].pop("maxReplicaCount")
    assert any("maxReplicas" in error for error in h.crd_errors(misspelt, scaled))
    not_a_string = json.loads(json.dumps(good))
    not_a_string["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 10
    assert h.crd_errors(not_a_string, scaled)
    assert ("monitoring.coreos.com/v1", "ServiceMonitor") in schemas
    assert ("keda.sh/v1alpha1", "TriggerAuthentication") in schemas


def test_every_workload_has_probes_resources_and_a_budget(
    rendered: tuple[str, list[h.Document]],
) -> None:
    _, docs = rendered
    budgets = h.of_kind(docs, "PodDisruptionBudget")
    for workload in h.workloads(docs):
        for container in h.containers(workload):
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), (
                    f"{h.name(workload)} {container['name']}: no {part}"
                )
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert "/tmp" in mounts, h.name(workload)
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        if workload["kind"] not in LONG_RUNNING:
            continue
        for container in h.containers(workload, init=False):
            ports = {port["name"] for port in container["ports"]}
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                get = container[probe]["httpGet"]
                assert get["path"] == path, f"{h.name(workload)} {probe}"
                assert get["port"] in ports, f"{h.name(workload)} {probe} on an unknown port"
        labels = h.pod_labels(workload)
        covering = [pdb for pdb in budgets if h.selects(pdb["spec"]["selector"], labels)]
        assert len(covering) == 1, f"{h.name(workload)}: {len(covering)} budgets select it"


def test_workers_are_statefulsets_with_a_stable_identity_and_local_state(
    rendered: tuple[str, list[h.Document]],
) -> None:
    _, docs = rendered
    statefulsets = {doc["metadata"]["name"]: doc for doc in h.of_kind(docs, "StatefulSet")}
    assert set(statefulsets) == {f"{h.RELEASE}-worker-{worker}" for worker in WORKERS}
    for worker in WORKERS:
        sts = statefulsets[f"{h.RELEASE}-worker-{worker}"]
        spec = sts["spec"]
        assert spec["podManagementPolicy"] == "Parallel"
        (container,) = h.containers(sts)
        args = container["args"]
        assert args[:3] == ["worker", "--processor", worker]
        env = h.env_of(container)
        # The pod's name: the same after a restart, so the transactional.id fences.
        field = env["CONVOTRAIL_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert field == "metadata.name"
        (claim,) = spec["volumeClaimTemplates"]
        state = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}[
            claim["metadata"]["name"]
        ]
        assert env["CONVOTRAIL_HOME"]["value"] == state
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "restore time"
        assert spec["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_autoscaling_never_exceeds_the_partitions(
    rendered: tuple[str, list[h.Document]],
) -> None:
    from processors.conversation.shell import ConversationOptions
    from processors.delivery.shell import BounceOptions
    from processors.receipts.shell import ReceiptsOptions

    values, docs = rendered
    groups = {
        "conversation": ConversationOptions().app_id,
        "bounces": BounceOptions().app_id,
        "receipts": ReceiptsOptions().app_id,
    }
    statefulsets = {doc["metadata"]["name"]: doc for doc in h.of_kind(docs, "StatefulSet")}
    auths = {doc["metadata"]["name"]: doc for doc in h.of_kind(docs, "TriggerAuthentication")}
    scaled = h.of_kind(docs, "ScaledObject")
    assert bool(scaled) == (values != "defaults")
    for so in scaled:
        target = statefulsets[so["spec"]["scaleTargetRef"]["name"]]
        (container,) = h.containers(target)
        env = h.env_of(container)
        partitions = int(env["CONVOTRAIL_PARTITIONS"]["value"])
        prefix = env["CONVOTRAIL_TOPIC_PREFIX"]["value"]
        assert so["spec"]["maxReplicaCount"] <= partitions, h.name(so)
        assert "replicas" not in target["spec"], "KEDA owns the replicas, not helm upgrades"
        worker = container["args"][2]
        for trigger in so["spec"]["triggers"]:
            meta = trigger["metadata"]
            assert meta["consumerGroup"] == prefix + groups[worker]
            assert meta["topic"].startswith(prefix)
            assert meta["allowIdleConsumers"] == "false"
            assert meta["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]["value"]
            if "KAFKA_SASL_USERNAME" in env:
                auth = auths[trigger["authenticationRef"]["name"]]
                refs = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
                secret = env["KAFKA_SASL_USERNAME"]["valueFrom"]["secretKeyRef"]["name"]
                assert refs["username"]["name"] == refs["password"]["name"] == secret
    for sts in statefulsets.values():
        (container,) = h.containers(sts)
        partitions = int(h.env_of(container)["CONVOTRAIL_PARTITIONS"]["value"])
        assert sts["spec"].get("replicas", 0) <= partitions, h.name(sts)


@pytest.mark.parametrize(
    ("sets", "refusal"),
    [
        (
            [
                "workers.bounces.autoscaling.enabled=true",
                "workers.bounces.autoscaling.maxReplicas=7",
            ],
            "workers.bounces.autoscaling.maxReplicas=7 exceeds topics.partitions=6",
        ),
        (
            ["workers.receipts.replicas=12"],
            "workers.receipts.replicas=12 exceeds topics.partitions=6",
        ),
    ],
)
def test_template_refuses_more_replicas_than_partitions(
    helm: str, sets: Sequence[str], refusal: str
) -> None:
    result = h.run_helm(helm, *h.template_args(sets=sets))
    assert result.returncode != 0
    assert refusal in result.stderr
    assert "Kafka gives each to one consumer of the group" in result.stderr


def _secret_values(docs: Sequence[h.Document]) -> set[str]:
    values = set()
    for secret in h.of_kind(docs, "Secret"):
        for encoded in secret.get("data", {}).values():
            values.add(base64.b64decode(encoded).decode())
    return values


def test_no_secret_value_outside_a_secret(rendered: tuple[str, list[h.Document]]) -> None:
    values, docs = rendered
    secrets = _secret_values(docs)
    if values == "inline-secrets":
        given = yaml.safe_load((HERE / "values-inline-secrets.yaml").read_text())
        sentinels = {s for s in h.walk_strings(given) if "sentinel-" in s}
        assert sentinels and all(any(s in value for value in secrets) for s in sentinels)
        secrets |= sentinels
    else:
        assert not secrets, "these values give no credential inline"
    secret_words = re.compile(r"PASSWORD|TOKEN|KEY|USER_INFO|DATABASE_URL|USERNAME")
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for value in secrets:
            for form in (value, base64.b64encode(value.encode()).decode()):
                assert form not in text, f"a secret value in {h.name(doc)}"
        if doc["kind"] in h.WORKLOAD_KINDS:
            for container in h.containers(doc):
                for env_name, entry in h.env_of(container).items():
                    if secret_words.search(env_name):
                        assert "secretKeyRef" in entry.get("valueFrom", {}), (
                            f"{h.name(doc)}: {env_name} is not read from a Secret"
                        )


def test_container_args_are_real_cli_commands(rendered: tuple[str, list[h.Document]]) -> None:
    _, docs = rendered
    seen = set()
    for workload in h.workloads(docs):
        for container in h.containers(workload):
            # The image's ENTRYPOINT is `convotrail`: args are the command line.
            assert "command" not in container, h.name(workload)
            refusal = h.cli_refusal(container["args"])
            assert refusal is None, f"{h.name(workload)} {container['name']}: {refusal}"
            seen.add(" ".join(arg for arg in container["args"][:2] if not arg.startswith("-")))
    assert {"worker", "sink", "delivery serve", "serve", "lag-exporter"} <= seen
    assert {"topics create", "schemas register"} <= seen


def test_every_convotrail_variable_is_one_the_code_reads(
    rendered: tuple[str, list[h.Document]],
) -> None:
    _, docs = rendered
    source = "\n".join(
        path.read_text()
        for package in ("convotrail", "connectors", "processors", "schemas")
        for path in (h.ROOT / package).rglob("*.py")
    )
    known = set(re.findall(r"\bCONVOTRAIL_[A-Z0-9_]+\b", source))
    used = {
        env_name
        for workload in h.workloads(docs)
        for container in h.containers(workload)
        for env_name in h.env_of(container)
        if env_name.startswith("CONVOTRAIL_")
    }
    assert used - known == set(), "variables no code reads"


def test_timer_policy_and_sns_certificate_are_files_where_the_code_reads_them(
    renders: dict[str, list[h.Document]],
) -> None:
    from processors.conversation.timers import policy_from_json

    docs = renders["inline-secrets"]
    (policy_map,) = [d for d in h.of_kind(docs, "ConfigMap") if "timer-policy" in h.name(d)]
    policy = policy_from_json(json.loads(policy_map["data"]["policy.json"]))
    assert policy.reminders_when_resolved == "fire"
    (sts,) = [d for d in h.of_kind(docs, "StatefulSet") if h.name(d).endswith("-conversation")]
    (container,) = h.containers(sts)
    path = h.env_of(container)["CONVOTRAIL_TIMER_POLICY"]["value"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert Path(path).parent == Path(mounts["timer-policy"])
    (intake,) = [d for d in h.of_kind(docs, "Deployment") if h.name(d).endswith("-intake")]
    (container,) = h.containers(intake)
    certificate = h.env_of(container)["CONVOTRAIL_SNS_CERTIFICATE"]["value"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert Path(certificate).parent == Path(mounts["sns-certificate"])


def test_services_and_policies_reach_the_ports_the_processes_serve(
    rendered: tuple[str, list[h.Document]],
) -> None:
    _, docs = rendered
    long_running = [w for w in h.workloads(docs) if w["kind"] in LONG_RUNNING]
    policies = h.of_kind(docs, "NetworkPolicy")
    services = h.of_kind(docs, "Service")
    for workload in long_running:
        labels = h.pod_labels(workload)
        ports = {p["name"] for c in h.containers(workload) for p in c.get("ports", [])}
        (service,) = [
            s for s in services if h.selects({"matchLabels": s["spec"]["selector"]}, labels)
        ]
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, h.name(workload)
        (policy,) = [p for p in policies if h.selects(p["spec"]["podSelector"], labels)]
        allowed = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
        assert allowed == ports, h.name(workload)
        egress = [port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]]
        assert 53 in egress, f"{h.name(workload)}: no DNS"
    monitors: list[dict[str, Any]] = h.of_kind(docs, "ServiceMonitor")
    for monitor in monitors:
        endpoint_ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
        service_ports = {p["name"] for s in services for p in s["spec"]["ports"]}
        assert endpoint_ports == service_ports
