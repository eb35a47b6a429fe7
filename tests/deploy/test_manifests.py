"""Offline validation of what deploy/ ships: Helm output against Kubernetes schemas, KEDA and
Strimzi resources against the catalogue, the compose file against the README's names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.ops.manifests import strimzi_topics, strimzi_users
from streams.ops.topic_admin import WantedTopic, changelogs
from streams.settings import load_settings
from tests.support.files import REPO
from topics.catalogue import Topic, load_catalogue
from topics.roles import load_roles

CHART = REPO / "deploy" / "helm" / "omnihooks"
KUBERNETES_VERSION = "1.34.0"


def helm() -> str:
    """helm from OMNIHOOKS_HELM, PATH, or .cache/bin (test.sh builds it there with Go)."""
    for candidate in (os.environ.get("OMNIHOOKS_HELM"), shutil.which("helm"),
                      str(REPO / ".cache" / "bin" / "helm")):  # fmt: skip
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("helm is missing: ./test.sh installs it with `go install` into .cache/bin")


def render(*sets: str) -> list[dict[str, Any]]:
    args = [helm(), "template", "crm", str(CHART)]
    for value in sets:
        args += ["--set", value]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def validate(docs: list[dict[str, Any]], path: Path) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate, strict, on `docs` written to `path`."""
    path.write_text(yaml.safe_dump_all(docs))
    return subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict",
         "-k", KUBERNETES_VERSION, str(path)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_rendered_core_manifests_validate_against_kubernetes(tmp_path: Path) -> None:
    docs = render("settings.WEBHOOK_URL=https://crm.example.com/hook")
    core = [d for d in docs if d["apiVersion"] in ("v1", "apps/v1", "policy/v1")]
    assert {d["kind"] for d in core} == {
        "ConfigMap", "Secret", "StatefulSet", "Service", "PodDisruptionBudget",
    }  # fmt: skip
    done = validate(core, tmp_path / "core.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == len(core)


def test_workers_are_non_root_probed_and_split_by_role() -> None:
    docs = render()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}
    assert set(deployments) == {"crm-omnihooks-sessions", "crm-omnihooks-delivery"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["args"] == ["worker", "--role", name.rsplit("-", 1)[1]]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert pod["terminationGracePeriodSeconds"] >= 10
        names = {e["name"] for e in container["env"]}
        assert {"OMNIHOOKS_SECRET_TOKEN", "OMNIHOOKS_SIGNING_SECRET"} <= names


def test_keda_scales_each_role_up_to_the_partition_count() -> None:
    docs = render("partitions=24")
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    assert len(scaled) == 2
    for obj in scaled:
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        assert obj["spec"]["maxReplicaCount"] == 24
        [trigger] = obj["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        role = obj["metadata"]["name"].rsplit("-", 1)[1]
        assert trigger["metadata"]["consumerGroup"] == f"omnihooks-{role}"
        assert obj["spec"]["scaleTargetRef"]["name"] == f"crm-omnihooks-{role}"
    assert not [d for d in render("keda.enabled=false") if d["kind"] == "ScaledObject"]


def test_settings_reach_the_config_map_with_their_env_names() -> None:
    [config] = [d for d in render("settings.SEND_ON_CLOSE=true") if d["kind"] == "ConfigMap"]
    data = config["data"]
    assert data["OMNIHOOKS_SEND_ON_CLOSE"] == "true"
    assert data["KAFKA_BOOTSTRAP_SERVERS"] and data["OMNIHOOKS_PARTITIONS"] == "12"
    existing = render("secrets.existingSecret=mine")
    assert not [d for d in existing if d["kind"] == "Secret"]


def test_strimzi_topics_file_matches_the_catalogue_and_the_changelogs() -> None:
    shipped = (REPO / "deploy" / "strimzi" / "topics.yaml").read_text()
    settings, catalogue = load_settings(), load_catalogue()
    wanted = [WantedTopic.of(spec, "omnichannel.") for spec in catalogue.specs]
    wanted += changelogs(settings, catalogue, ["sessions", "delivery"])
    assert shipped == strimzi_topics(wanted, "kafka", None)
    topics = [d for d in yaml.safe_load_all(shipped) if d]
    assert (
        len(topics) == len(catalogue.specs) + 8
    )  # five session tables (relay's index too), three delivery ones
    for doc, spec in zip(topics, catalogue.specs, strict=False):
        assert doc["apiVersion"] == "kafka.strimzi.io/v1" and doc["kind"] == "KafkaTopic"
        assert doc["spec"]["topicName"] == spec.name("omnichannel.")
        assert doc["spec"]["partitions"] == spec.partitions
        assert doc["spec"]["config"]["cleanup.policy"] == spec.cleanup
    changelog = {d["spec"]["topicName"]: d["spec"] for d in topics[len(catalogue.specs) :]}
    rooms = changelog["omnihooks-sessions-rooms-changelog"]
    assert rooms["partitions"] == catalogue[Topic.ROOMS].partitions
    assert rooms["config"]["cleanup.policy"] == "compact"
    assert (
        changelog["omnihooks-delivery-settled-jobs-changelog"]["config"]["cleanup.policy"]
        == "compact,delete"
    )


def test_strimzi_users_grant_each_role_exactly_its_rights() -> None:
    """Checked against the role data (topics/roles.toml), not Strimzi's CRD schema: the CRDs
    are not vendored here (docs/deploy notes how they were checked by hand)."""
    shipped = (REPO / "deploy" / "strimzi" / "users.yaml").read_text()
    roles = load_roles()
    assert shipped == strimzi_users(list(roles.values()), "omnichannel.", "omnihooks",
                                    "scram-sha-512", "kafka", None)  # fmt: skip
    users = {d["metadata"]["name"]: d for d in yaml.safe_load_all(shipped) if d}
    assert set(users) == {f"omnihooks-{name}" for name in roles}
    for name, role in roles.items():
        spec = users[f"omnihooks-{name}"]["spec"]
        assert spec["authentication"]["type"] == "scram-sha-512"
        granted = {
            (
                rule["resource"]["type"],
                rule["resource"]["name"],
                rule["resource"]["patternType"],
                op,
            )
            for rule in spec["authorization"]["acls"]
            for op in rule["operations"]
        }
        wanted = {
            (a.resource, a.name, a.pattern, a.operation)
            for a in role.acls("omnichannel.", "omnihooks")
        }
        assert granted == wanted, name
    # Only the admin may create topics; no worker reads a group but its own.
    creators = {
        n for n, r in roles.items() if any(a.operation == "Create" for a in r.acls("p.", "a"))
    }
    assert creators == {"admin"}
    worker_groups = {
        a.name for a in roles["worker-sessions"].acls("p.", "a") if a.resource == "group"
    }
    assert worker_groups == {"a-sessions"}


def test_compose_file_has_the_documented_services_and_settings() -> None:
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"kafka", "topics", "sessions", "delivery", "receiver"}
    assert services["kafka"]["image"].startswith("apache/kafka:4.1")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["sessions"]["command"] == ["worker", "--role", "sessions"]
    assert services["delivery"]["command"] == ["worker", "--role", "delivery"]
    env = services["delivery"]["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["OMNIHOOKS_WEBHOOK_URL"].startswith("http://receiver:8080")
    readme = (REPO / "deploy" / "README.md").read_text()
    for name in services:
        assert name in readme or name == "kafka"


def test_the_rocksdb_store_puts_each_pods_tables_on_its_own_volume(tmp_path: Path) -> None:
    docs = render("store=rocksdb", "storage.sizeLimit=5Gi")
    workers = [d for d in docs if d["kind"] == "StatefulSet"]
    assert len(workers) == 2
    for worker in workers:
        pod = worker["spec"]["template"]["spec"]
        [container] = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["OMNIHOOKS_STORE"]["value"] == "rocksdb"
        # the pod's name is its static member id: a restart keeps its partitions
        assert env["OMNIHOOKS_GROUP_INSTANCE_ID"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.name"}
        }
        [mount] = container["volumeMounts"]
        assert mount["mountPath"] == env["OMNIHOOKS_DATA_DIR"]["value"]
        assert "volumes" not in pod or not [v for v in pod["volumes"] if v["name"] == mount["name"]]
        [claim] = worker["spec"]["volumeClaimTemplates"]
        assert claim["metadata"]["name"] == mount["name"]
        assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
        assert worker["spec"]["serviceName"] == "crm-omnihooks-workers"
    done = validate(workers, tmp_path / "rocksdb.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    dynamic = render("store=rocksdb", "storage.sizeLimit=5Gi", "staticMembership=false")
    deployment = next(d for d in dynamic if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert deployment["volumes"][0]["emptyDir"] == {"sizeLimit": "5Gi"}
    env = {e["name"] for e in deployment["containers"][0]["env"]}
    assert "OMNIHOOKS_GROUP_INSTANCE_ID" not in env


def test_relay_mode_adds_an_ingest_deployment_and_service_only_when_enabled(tmp_path: Path) -> None:
    assert not [d for d in render() if "ingest" in d["metadata"]["name"]]
    docs = render("ingest.enabled=true", "secrets.ingestToken=rc-token")
    ingest = [d for d in docs if d["metadata"]["name"] == "crm-omnihooks-ingest"]
    assert {d["kind"] for d in ingest} == {"Deployment", "Service"}
    deployment = next(d for d in ingest if d["kind"] == "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["ingest", "--host", "0.0.0.0", "--port", "8090"]
    assert {e["name"] for e in container["env"]} == {"OMNIHOOKS_INGEST_TOKEN"}
    [secret] = [d for d in docs if d["kind"] == "Secret"]
    assert secret["stringData"]["INGEST_TOKEN"] == "rc-token"
    done = validate(ingest, tmp_path / "ingest.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_console_reads_every_worker_through_a_headless_service_only_when_enabled(
    tmp_path: Path,
) -> None:
    assert not [d for d in render() if "console" in d["metadata"]["name"]]
    refused = subprocess.run([helm(), "template", "crm", str(CHART), "--set", "console.enabled=true"],
                             capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    assert refused.returncode != 0 and "secrets.consoleToken" in refused.stderr
    docs = render("console.enabled=true", "secrets.consoleToken=ops:0123456789abcdef")
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "crm-omnihooks-console"), ("Service", "crm-omnihooks-console"),
            ("Service", "crm-omnihooks-workers")} <= names  # fmt: skip
    workers = next(d for d in docs if d["metadata"]["name"] == "crm-omnihooks-workers")
    assert workers["spec"]["clusterIP"] == "None"
    selector = workers["spec"]["selector"]
    pods = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"].endswith(
        ("-sessions", "-delivery"))]  # fmt: skip
    assert len(pods) == 2
    for deployment in pods:  # the headless Service selects every worker pod
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in selector.items())
    console = next(d for d in docs if d["metadata"]["name"] == "crm-omnihooks-console"
                   and d["kind"] == "Deployment")  # fmt: skip
    [container] = console["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["OMNIHOOKS_CONSOLE_WORKERS"]["value"] == "dns+http://crm-omnihooks-workers:6066"
    assert env["OMNIHOOKS_CONSOLE_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "CONSOLE_TOKEN"
    [secret] = [d for d in docs if d["kind"] == "Secret"]
    assert secret["stringData"]["CONSOLE_TOKEN"] == "ops:0123456789abcdef"
    done = validate([d for d in docs if d["kind"] != "Secret"], tmp_path / "console.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_secured_kafka_mounts_each_roles_own_secrets_and_no_secret_value(tmp_path: Path) -> None:
    docs = render(
        "kafka.securityProtocol=SASL_SSL", "kafka.tls.caSecret.name=kafka-cluster-ca-cert",
        "ingest.enabled=true", "secrets.ingestToken=ingest-token-0123456789",
    )  # fmt: skip
    assert validate(docs, tmp_path / "secured.yaml").returncode == 0
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    }
    for name, principal in (("crm-omnihooks-sessions", "omnihooks-worker-sessions"),
                            ("crm-omnihooks-delivery", "omnihooks-worker-delivery"),
                            ("crm-omnihooks-ingest", "omnihooks-ingest")):  # fmt: skip
        pod = pods[name]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["KAFKA_SASL_USERNAME"] == principal
        assert env["KAFKA_SASL_PASSWORD_FILE"] == "/etc/omnihooks/kafka-password/password"
        assert env["KAFKA_SSL_CA_LOCATION"] == "/etc/omnihooks/kafka-ca/ca.crt"
        assert "KAFKA_SASL_PASSWORD" not in env  # a file from the Secret, never a value
        volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert volumes == {"kafka-password": principal, "kafka-ca": "kafka-cluster-ca-cert"}
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    assert {s["spec"]["triggers"][0]["authenticationRef"]["name"] for s in scaled} == {
        "omnihooks-keda-sessions", "omnihooks-keda-delivery",
    }  # fmt: skip
    assert all(s["spec"]["triggers"][0]["metadata"]["sasl"] == "scram_sha512" for s in scaled)


def test_mutual_tls_mounts_the_kafkausers_certificate() -> None:
    docs = render(
        "kafka.securityProtocol=SSL",
        "kafka.principals.delivery.certificateSecret=omnihooks-worker-delivery",
    )
    delivery = next(d for d in docs if d["metadata"]["name"] == "crm-omnihooks-delivery"
                    and d["kind"] == "StatefulSet")  # fmt: skip
    pod = delivery["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["KAFKA_SSL_CERTIFICATE_LOCATION"] == "/etc/omnihooks/kafka-user/user.crt"
    assert env["KAFKA_SSL_KEY_LOCATION"] == "/etc/omnihooks/kafka-user/user.key"
    assert "KAFKA_SASL_USERNAME" not in env and "KAFKA_SSL_CA_LOCATION" not in env
    [user] = [v for v in pod["volumes"] if v["name"] == "kafka-user"]
    assert user["secret"]["secretName"] == "omnihooks-worker-delivery"
