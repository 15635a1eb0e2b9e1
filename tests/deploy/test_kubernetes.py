"""The Kubernetes manifests (deploy/kubernetes): each overlay rendered by kustomize, every
document validated against Kubernetes' own schemas, and the rendered objects held to what
docs/deployment.md and docs/deploy-kubernetes.md say about them.

Rendering needs kubectl (kustomize is built in; it works offline, without a cluster).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from aidpost.core.settings import SECRETS, SHARED_SECRETS, Settings
from aidpost.deploy.secrets import component_envs, hosts_from, new_vault

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = ("staging", "production")
KUBERNETES_VERSION = "1.31"
IMAGE = "ghcr.io/aidpost/aidpost"
DATA_DIR = "/var/lib/aidpost"
INGRESS_CONTROLLER_NAMESPACE = "ingress-nginx"
# The components whose Secrets hold a database URL: what the migration Job reads.
DATABASE_COMPONENTS = ("auth", "organizer", "participant", "messenger", "mailer", "status")

Doc = dict[str, Any]


# --- what the docs say ------------------------------------------------------------------


def doc_tables(path: Path) -> dict[str, list[list[str]]]:
    """Every Markdown table of ``path``, by its first header cell; rows without the header."""
    tables: dict[str, list[list[str]]] = {}
    rows: list[list[str]] = []
    for line in [*path.read_text().splitlines(), ""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            tables[rows[0][0]] = rows[2:]
            rows = []
    return tables


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@dataclass(frozen=True)
class Process:
    """A row of docs/deployment.md's table of processes."""

    service: str
    args: tuple[str, ...]
    env: Mapping[str, str]
    min_replicas: int | None  # None: one-shot

    @property
    def component(self) -> str:
        return self.args[-1]


def documented_processes() -> dict[str, Process]:
    processes = {}
    for row in doc_tables(REPO / "docs" / "deployment.md")["service"]:
        (service,), (command, *assignments) = ticked(row[0]), ticked(row[1])
        args = command.removeprefix("aidpost ").split()
        env = dict(a.split("=", 1) for a in assignments)
        replicas = re.fullmatch(r"(\d+)\+", row[2])
        minimum = int(replicas[1]) if replicas else None
        processes[service] = Process(service, tuple(args), env, minimum)
    return processes


def documented_routes() -> list[tuple[str, str, bool]]:
    """(path, service, explicit) from the routes table; explicit is False for the examples
    of "everything else", which no path of their own may claim."""
    routes = []
    for row in doc_tables(REPO / "docs" / "deployment.md")["path prefix"]:
        (service,) = ticked(row[1])
        explicit = not row[0].startswith("everything else")
        routes += [(path, service, explicit) for path in ticked(row[0])]
    return routes


PROCESSES = documented_processes()
SERVERS = {name: p for name, p in PROCESSES.items() if p.min_replicas is not None}


# --- rendering ---------------------------------------------------------------------------


def render(overlay: str) -> list[Doc]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed: it renders the overlays (kubectl kustomize)")
    done = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize overlays/{overlay}:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@dataclass
class Manifests:
    overlay: str
    docs: list[Doc]

    def of(self, kind: str) -> list[Doc]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def named(self, kind: str) -> dict[str, Doc]:
        return {doc["metadata"]["name"]: doc for doc in self.of(kind)}

    def workloads(self) -> dict[str, Doc]:
        """The Deployments and the Job: everything that has a pod template."""
        return {**self.named("Deployment"), **self.named("Job")}

    @property
    def namespace(self) -> str:
        (namespace,) = self.of("Namespace")
        return str(namespace["metadata"]["name"])

    def config_map(self, name: str) -> dict[str, str]:
        return dict(self.named("ConfigMap")[name].get("data", {}))


@pytest.fixture(scope="module")
def rendered() -> dict[str, Manifests]:
    return {overlay: Manifests(overlay, render(overlay)) for overlay in OVERLAYS}


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest, rendered: dict[str, Manifests]) -> Manifests:
    return rendered[request.param]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def container(workload: Doc) -> Doc:
    only: Doc
    (only,) = pod_spec(workload)["containers"]
    return only


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against a set of labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value, operator = labels.get(expression["key"]), expression["operator"]
        ok = {
            "In": value in expression.get("values", []),
            "NotIn": value not in expression.get("values", []),
            "Exists": value is not None,
            "DoesNotExist": value is None,
        }[operator]
        if not ok:
            return False
    return True


# --- every document is valid Kubernetes --------------------------------------------------


def test_every_document_is_valid_for_kubernetes(manifests: Manifests) -> None:
    problems = []
    for doc in manifests.docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{doc['kind']} {doc['metadata']['name']} at {where}: {error.message}")
    assert not problems, "\n".join(problems)


# --- the processes -----------------------------------------------------------------------


def test_each_documented_service_is_a_deployment_running_its_command(
    manifests: Manifests,
) -> None:
    deployments = manifests.named("Deployment")
    assert set(deployments) == set(SERVERS)
    for name, process in SERVERS.items():
        main = container(deployments[name])
        assert main["args"] == list(process.args), name
        env = {var["name"]: var.get("value") for var in main.get("env", [])}
        assert process.env.items() <= env.items(), name


def test_the_migration_job_runs_aidpost_migrate_once(manifests: Manifests) -> None:
    (job,) = manifests.of("Job")
    assert container(job)["args"] == list(PROCESSES["migrate"].args) == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert 1 <= job["spec"]["backoffLimit"] <= 5
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["spec"]["activeDeadlineSeconds"] > 0


def test_every_workload_runs_the_overlays_pinned_image(rendered: dict[str, Manifests]) -> None:
    tags = {}
    for overlay, manifests in rendered.items():
        images = {container(w)["image"] for w in manifests.workloads().values()}
        assert len(images) == 1, f"{overlay} runs several images: {images}"
        (image,) = images
        repository, _, tag = image.rpartition(":")
        assert repository == IMAGE, image
        assert tag and tag != "latest", f"{overlay} must pin a tag, not {image}"
        tags[overlay] = tag
    assert len(set(tags.values())) == len(tags), f"each overlay its own tag: {tags}"


def test_each_process_reads_its_own_secret_then_the_overlays_settings(
    manifests: Manifests,
) -> None:
    for name, workload in manifests.workloads().items():
        sources = container(workload)["envFrom"]
        secrets = [s["secretRef"]["name"] for s in sources if "secretRef" in s]
        wanted = DATABASE_COMPONENTS if name == "migrate" else [SERVERS[name].component]
        assert secrets == [f"aidpost-{c}" for c in wanted], name
        # The ConfigMap comes last, so its per-environment values win over the env files.
        assert set(sources[-1]) == {"configMapRef"}, name
        assert sources[-1]["configMapRef"]["name"] in manifests.named("ConfigMap"), name


def test_the_config_maps_hold_no_secret(manifests: Manifests) -> None:
    secret = {name for names in SECRETS.values() for name in names} | set(SHARED_SECRETS)
    for name, config_map in manifests.named("ConfigMap").items():
        for key in config_map.get("data", {}):
            assert key not in secret, f"{key} is a secret; it belongs in the Secrets ({name})"
            assert not re.search(r"PASSWORD|SECRET|API_KEY", key), f"{key} in {name}"


# --- their configuration is aidpost's ----------------------------------------------------

# What `aidpost secrets generate` puts in envs/prod/servers/<name>.env (fresh secrets).
FAKE_ENV_FILES = component_envs(
    hosts_from({"domain": "aidpost.example.org", "smtp": "smtp+starttls://smtp.example.org:587"}),
    new_vault(),
)


def environment(manifests: Manifests, workload: Doc) -> dict[str, str]:
    """The process's environment as Kubernetes builds it: envFrom in order, then env."""
    main = container(workload)
    env: dict[str, str] = {}
    for source in main.get("envFrom", []):
        if "secretRef" in source:
            env.update(FAKE_ENV_FILES[source["secretRef"]["name"].removeprefix("aidpost-")])
        else:
            env.update(manifests.config_map(source["configMapRef"]["name"]))
    for var in main.get("env", []):
        assert "value" in var, f"{var['name']}: values come from the Secrets or literally"
        env[var["name"]] = var["value"]
    return env


def components_of(workload: Doc) -> list[str]:
    args = container(workload)["args"]
    return list(DATABASE_COMPONENTS) if args == ["migrate"] else [args[-1]]


def setting_names() -> set[str]:
    """AIDPOST_<SECTION>_<FIELD>: every variable aidpost's settings read."""
    names = set()
    for section in Settings.model_fields.values():
        kind = section.annotation
        assert isinstance(kind, type) and issubclass(kind, BaseSettings)
        prefix = kind.model_config["env_prefix"]
        names |= {prefix + name.upper() for name in kind.model_fields}
    return names


def test_every_variable_the_manifests_set_is_a_setting(manifests: Manifests) -> None:
    known = setting_names()
    named = {
        var["name"] for w in manifests.workloads().values() for var in container(w).get("env", [])
    }
    named |= {key for cm in manifests.of("ConfigMap") for key in cm.get("data", {})}
    assert {n for n in named if n.startswith("AIDPOST_")} - known == set()
    # uvicorn's own: which peers' X-Forwarded-For to believe.
    assert {n for n in named if not n.startswith("AIDPOST_")} == {"FORWARDED_ALLOW_IPS"}


@contextmanager
def settings_in(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> Iterator[Settings]:
    """aidpost's settings as a process with exactly ``env`` builds them."""
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("AIDPOST_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        yield Settings()


def test_every_process_starts_in_production_mode(
    manifests: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, workload in manifests.workloads().items():
        with settings_in(monkeypatch, environment(manifests, workload)) as settings:
            settings.check_production(components_of(workload))
            assert settings.core.env == "production", name
            assert (settings.core.host, settings.core.port) == ("0.0.0.0", 8000), name
            assert settings.core.data_dir == Path(DATA_DIR), name
            if name.startswith("messenger-"):
                role = name.removeprefix("messenger-")
                assert settings.messenger.roles == role, name


PUBLIC_ADDRESSES: dict[str, Callable[[Settings], str | None]] = {
    "web": lambda s: s.web.api_url,  # the APIs, through the ingress (docs/deploy-kubernetes.md)
    "mailer": lambda s: s.mailer.public_url,  # links in emails
    "status": lambda s: s.status.public_url,  # links in feeds and emails
}


def test_the_public_addresses_are_the_ingress_host(
    manifests: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    (host,) = {rule["host"] for i in manifests.of("Ingress") for rule in i["spec"]["rules"]}
    for name, address in PUBLIC_ADDRESSES.items():
        workload = manifests.named("Deployment")[name]
        with settings_in(monkeypatch, environment(manifests, workload)) as settings:
            url = urlsplit(address(settings) or "")
        assert (url.scheme, url.hostname) == ("https", host), name


# --- pods: probes, security, drain, spread, resources -----------------------------------


def test_every_deployment_probes_start_readiness_and_liveness(manifests: Manifests) -> None:
    for name, deployment in manifests.named("Deployment").items():
        main = container(deployment)
        (port,) = main["ports"]
        assert (port["name"], port["containerPort"]) == ("http", 8000), name
        probes = {
            kind: main[f"{kind}Probe"]["httpGet"] for kind in ("startup", "readiness", "liveness")
        }
        assert {kind: probe["path"] for kind, probe in probes.items()} == {
            "startup": "/version",
            "readiness": "/status",
            "liveness": "/version",
        }, name
        assert all(probe["port"] == "http" for probe in probes.values()), name
        startup = main["startupProbe"]
        # Migrations take 10-20 s, longer behind another replica's migration lock.
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, name


def test_every_pod_runs_unprivileged_on_a_read_only_root(manifests: Manifests) -> None:
    (account,) = manifests.of("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    for name, workload in manifests.workloads().items():
        pod = pod_spec(workload)
        assert pod["serviceAccountName"] == account["metadata"]["name"], name
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"] == pod["securityContext"] | {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }, name
        context = container(workload)["securityContext"]
        assert context == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }, name


def test_the_only_writable_folders_are_the_data_folder_and_tmp(manifests: Manifests) -> None:
    for name, workload in manifests.workloads().items():
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container(workload)["volumeMounts"]}
        assert set(mounts) == {DATA_DIR, "/tmp"}, name
        assert all("emptyDir" in volumes[v] for v in mounts.values()), name


def test_every_deployment_drains_before_it_stops(manifests: Manifests) -> None:
    uvicorn_graceful_shutdown = 20  # cli.py: timeout_graceful_shutdown
    for name, deployment in manifests.named("Deployment").items():
        pod = pod_spec(deployment)
        pause = container(deployment)["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pause >= 5, name
        grace = pod["terminationGracePeriodSeconds"]
        assert grace >= max(30, pause + uvicorn_graceful_shutdown + 5), name
        rolling = deployment["spec"]["strategy"]["rollingUpdate"]
        assert rolling["maxUnavailable"] == 0, name


def test_every_deployment_spreads_over_zones_and_nodes(manifests: Manifests) -> None:
    for name, deployment in manifests.named("Deployment").items():
        constraints = pod_spec(deployment)["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in constraints} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }, name
        for constraint in constraints:
            assert selects(constraint["labelSelector"], pod_labels(deployment)), name
            # Counted among the pods of the same service only.
            assert "app.kubernetes.io/component" in constraint["matchLabelKeys"], name


QUANTITY = re.compile(r"(\d+)(m|Mi|Gi)?")


def quantity(value: str | int) -> float:
    number, unit = QUANTITY.fullmatch(str(value)).groups()  # type: ignore[union-attr]
    return int(number) * {None: 1, "m": 0.001, "Mi": 2**20, "Gi": 2**30}[unit]


def test_every_container_requests_and_limits_cpu_and_memory(manifests: Manifests) -> None:
    for name, workload in manifests.workloads().items():
        resources = container(workload)["resources"]
        for kind in ("cpu", "memory"):
            request, limit = resources["requests"][kind], resources["limits"][kind]
            assert 0 < quantity(request) <= quantity(limit), f"{name} {kind}"


# --- Services, autoscalers, disruption budgets -------------------------------------------


def test_every_service_selects_the_pods_of_its_deployment_only(manifests: Manifests) -> None:
    services = manifests.named("Service")
    pods = {name: pod_labels(w) for name, w in manifests.workloads().items()}
    assert set(services) == set(SERVERS) - {"messenger-consumer"}
    for name, service in services.items():
        selected = {
            pod
            for pod, labels in pods.items()
            if selects({"matchLabels": service["spec"]["selector"]}, labels)
        }
        assert selected == {name}
        (port,) = service["spec"]["ports"]
        # The env files call every component at http://<service>:8000.
        assert (port["port"], port["targetPort"]) == (8000, "http"), name


def test_every_deployment_is_scaled_by_one_autoscaler_on_cpu(
    rendered: dict[str, Manifests],
) -> None:
    for overlay, manifests in rendered.items():
        deployments = manifests.named("Deployment")
        scalers = manifests.named("HorizontalPodAutoscaler")
        targets = [s["spec"]["scaleTargetRef"] for s in scalers.values()]
        assert sorted(t["name"] for t in targets) == sorted(deployments), overlay
        assert all(t["kind"] == "Deployment" for t in targets)
        for name, scaler in scalers.items():
            spec = scaler["spec"]
            assert 1 <= spec["minReplicas"] <= spec["maxReplicas"], name
            (metric,) = spec["metrics"]
            assert metric["resource"]["name"] == "cpu", name
        # The autoscaler owns the replica count: an apply must not reset it.
        assert not [n for n, d in deployments.items() if "replicas" in d["spec"]], overlay


def test_production_keeps_the_documented_replicas(rendered: dict[str, Manifests]) -> None:
    """docs/deployment.md: "2+" and "1+"; production keeps two of everything, for zones."""
    scalers = rendered["production"].named("HorizontalPodAutoscaler")
    for name, process in SERVERS.items():
        assert scalers[name]["spec"]["minReplicas"] >= max(2, process.min_replicas or 0), name
    staging = rendered["staging"].named("HorizontalPodAutoscaler")
    assert {s["spec"]["maxReplicas"] for s in staging.values()} == {2}


def test_every_deployment_has_a_disruption_budget_that_lets_nodes_drain(
    manifests: Manifests,
) -> None:
    pods = {name: pod_labels(w) for name, w in manifests.workloads().items()}
    budgets = manifests.named("PodDisruptionBudget")
    covered = []
    for name, budget in budgets.items():
        selected = [
            pod for pod, labels in pods.items() if selects(budget["spec"]["selector"], labels)
        ]
        assert selected == [name], f"{name} selects {selected}"
        # maxUnavailable, not minAvailable: one replica may still be evicted.
        assert budget["spec"]["maxUnavailable"] == 1, name
        covered += selected
    assert sorted(covered) == sorted(manifests.named("Deployment"))


# --- the Ingress -------------------------------------------------------------------------


def segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def route(ingresses: list[Doc], host: str, path: str) -> str | None:
    """The Service a request goes to: pathType Prefix matches whole segments, the longest
    match wins (the Ingress specification; ingress-nginx follows it)."""
    best: tuple[int, str] | None = None
    for ingress in ingresses:
        for rule in ingress["spec"]["rules"]:
            if rule["host"] != host:
                continue
            for entry in rule["http"]["paths"]:
                assert entry["pathType"] == "Prefix", entry
                prefix = segments(entry["path"])
                if segments(path)[: len(prefix)] == prefix and (
                    best is None or len(prefix) > best[0]
                ):
                    best = (len(prefix), entry["backend"]["service"]["name"])
    return best[1] if best else None


def test_every_documented_route_reaches_its_service(manifests: Manifests) -> None:
    ingresses = manifests.of("Ingress")
    (host,) = {rule["host"] for i in ingresses for rule in i["spec"]["rules"]}
    for path, service, _ in documented_routes():
        for request in (path, path.rstrip("/") + "/some/thing"):
            assert route(ingresses, host, request) == service, request
    assert route(ingresses, host, "/organizer-api/profile") == "organizer"


def test_the_ingress_has_the_documented_paths_and_no_other(manifests: Manifests) -> None:
    paths = {
        (entry["path"], entry["backend"]["service"]["name"])
        for ingress in manifests.of("Ingress")
        for rule in ingress["spec"]["rules"]
        for entry in rule["http"]["paths"]
    }
    documented = {(path, service) for path, service, explicit in documented_routes() if explicit}
    assert paths == documented | {("/", "organizer")}


def test_every_ingress_backend_is_a_service_and_every_service_is_routed(
    manifests: Manifests,
) -> None:
    services = manifests.named("Service")
    backends = [
        entry["backend"]["service"]
        for ingress in manifests.of("Ingress")
        for rule in ingress["spec"]["rules"]
        for entry in rule["http"]["paths"]
    ]
    for backend in backends:
        ports = [p["name"] for p in services[backend["name"]]["spec"]["ports"]]
        assert backend["port"]["name"] in ports, backend
    assert {b["name"] for b in backends} == set(services)


def test_the_ingress_serves_https_with_one_certificate(manifests: Manifests) -> None:
    ingresses = manifests.of("Ingress")
    secrets = set()
    for ingress in ingresses:
        assert ingress["spec"]["ingressClassName"] == "nginx"
        hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
        (tls,) = ingress["spec"]["tls"]
        assert set(tls["hosts"]) == hosts, ingress["metadata"]["name"]
        secrets.add(tls["secretName"])
    assert len(secrets) == 1
    # One Certificate per Secret: only one Ingress asks cert-manager for it.
    issuers = [
        i for i in ingresses if "cert-manager.io/cluster-issuer" in i["metadata"]["annotations"]
    ]
    assert len(issuers) == 1


def test_only_the_websockets_get_long_proxy_timeouts(
    manifests: Manifests, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = manifests.named("Deployment")["messenger-gateway"]
    with settings_in(monkeypatch, environment(manifests, gateway)) as settings:
        idle = settings.messenger.idle_timeout_seconds
    for ingress in manifests.of("Ingress"):
        annotations = ingress["metadata"].get("annotations", {})
        services = {
            entry["backend"]["service"]["name"]
            for rule in ingress["spec"]["rules"]
            for entry in rule["http"]["paths"]
        }
        for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
            value = annotations.get(f"nginx.ingress.kubernetes.io/{timeout}")
            if services == {"messenger-gateway"}:
                # Longer than a socket may idle, so aidpost closes it, not the proxy.
                assert value is not None and int(value) > idle, timeout
            else:
                assert value is None, f"{ingress['metadata']['name']} {timeout}"


# --- NetworkPolicies ---------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod (namespace and labels) or, without a namespace, an
    address outside the cluster."""

    namespace: str | None
    labels: Mapping[str, str] = field(default_factory=dict)


OUTSIDE = Peer(None)
DNS = Peer("kube-system", {"k8s-app": "kube-dns"})
INGRESS_CONTROLLER = Peer(
    INGRESS_CONTROLLER_NAMESPACE,
    {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
)


@dataclass
class Network:
    """What the namespace's NetworkPolicies allow (pods elsewhere have no policies)."""

    namespace: str
    policies: list[Doc]

    def allows(self, source: Peer, target: Peer, port: int, protocol: str = "TCP") -> bool:
        return self._allows(source, "Egress", "to", target, port, protocol) and self._allows(
            target, "Ingress", "from", source, port, protocol
        )

    def _allows(
        self, pod: Peer, direction: str, key: str, other: Peer, port: int, protocol: str
    ) -> bool:
        if pod.namespace != self.namespace:
            return True
        isolating = [
            policy["spec"]
            for policy in self.policies
            if direction in policy["spec"]["policyTypes"]
            and selects(policy["spec"]["podSelector"], pod.labels)
        ]
        if not isolating:
            return True
        rules = [rule for spec in isolating for rule in spec.get(direction.lower(), [])]
        return any(
            self._port(rule, port, protocol)
            and (not rule.get(key) or any(self._peer(peer, other) for peer in rule[key]))
            for rule in rules
        )

    @staticmethod
    def _port(rule: Doc, port: int, protocol: str) -> bool:
        return not rule.get("ports") or any(
            p.get("protocol", "TCP") == protocol and p.get("port", port) == port
            for p in rule["ports"]
        )

    def _peer(self, peer: Doc, other: Peer) -> bool:
        if "ipBlock" in peer:
            return other.namespace is None
        if other.namespace is None:
            return False
        if "namespaceSelector" in peer:
            labels = {"kubernetes.io/metadata.name": other.namespace}
            if not selects(peer["namespaceSelector"], labels):
                return False
        elif other.namespace != self.namespace:
            return False
        return selects(peer.get("podSelector", {}), other.labels)


@pytest.fixture
def network(manifests: Manifests) -> Network:
    return Network(manifests.namespace, manifests.of("NetworkPolicy"))


@pytest.fixture
def pods(manifests: Manifests) -> dict[str, Peer]:
    return {
        name: Peer(manifests.namespace, pod_labels(workload))
        for name, workload in manifests.workloads().items()
    }


# Who calls whom on port 8000, besides everyone calling auth for its JWKS.
CALLS = {
    ("messenger-gateway", "participant"),
    ("messenger-consumer", "participant"),
    ("mailer", "participant"),
    ("mailer", "messenger-gateway"),
    # The status page may watch every service's /status.
    *(("status", s) for s in SERVERS if s not in ("messenger-consumer", "status")),
}


def test_every_pod_of_the_namespace_starts_from_deny_all(manifests: Manifests) -> None:
    deny = [
        p
        for p in manifests.of("NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert len(deny) == 1


def test_the_calls_between_aidpost_pods_are_exactly_the_needed_ones(
    network: Network, pods: dict[str, Peer]
) -> None:
    allowed = {
        (source, target)
        for source, a in pods.items()
        for target, b in pods.items()
        if source != target and network.allows(a, b, 8000)
    }
    expected = CALLS | {(source, "auth") for source in pods if source != "auth"}
    assert allowed == expected


def test_every_pod_resolves_names_and_reaches_postgresql_and_redis(
    network: Network, pods: dict[str, Peer]
) -> None:
    for name, pod in pods.items():
        assert network.allows(pod, DNS, 53, "UDP") and network.allows(pod, DNS, 53, "TCP"), name
        assert network.allows(pod, OUTSIDE, 5432), name
        assert network.allows(pod, OUTSIDE, 6379), name


def test_only_the_mailer_reaches_smtp_servers(network: Network, pods: dict[str, Peer]) -> None:
    for port in (25, 465, 587):
        senders = {name for name, pod in pods.items() if network.allows(pod, OUTSIDE, port)}
        assert senders == {"mailer"}, port


def test_only_web_and_status_go_out_on_https(network: Network, pods: dict[str, Peer]) -> None:
    # AIDPOST_WEB_API_URL is the public https:// address: the ingress controller, reached
    # inside the cluster or through the cloud's load balancer. The status page calls
    # subscribers' webhooks and may watch outside services.
    out = {name for name, pod in pods.items() if network.allows(pod, OUTSIDE, 443)}
    assert out == {"web", "status"}
    assert network.allows(pods["web"], INGRESS_CONTROLLER, 443)


def test_the_ingress_controller_reaches_the_routed_services_only(
    manifests: Manifests, network: Network, pods: dict[str, Peer]
) -> None:
    routed = {
        entry["backend"]["service"]["name"]
        for ingress in manifests.of("Ingress")
        for rule in ingress["spec"]["rules"]
        for entry in rule["http"]["paths"]
    }
    reached = {name for name, pod in pods.items() if network.allows(INGRESS_CONTROLLER, pod, 8000)}
    assert reached == routed


def test_nothing_else_reaches_aidpost_pods(network: Network, pods: dict[str, Peer]) -> None:
    strangers = [
        OUTSIDE,
        Peer("default", {"app": "anything"}),
        Peer(INGRESS_CONTROLLER_NAMESPACE, {"app.kubernetes.io/name": "something-else"}),
        Peer(network.namespace, {"app": "not-aidpost"}),
    ]
    for stranger in strangers:
        for name, pod in pods.items():
            assert not network.allows(stranger, pod, 8000), (stranger, name)


# --- the overlays ------------------------------------------------------------------------


def test_each_overlay_lives_in_its_own_restricted_namespace(
    rendered: dict[str, Manifests],
) -> None:
    namespaces = {m.namespace for m in rendered.values()}
    assert len(namespaces) == len(OVERLAYS)
    for overlay, manifests in rendered.items():
        (namespace,) = manifests.of("Namespace")
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        elsewhere = [
            f"{d['kind']}/{d['metadata']['name']}"
            for d in manifests.docs
            if d["kind"] != "Namespace" and d["metadata"].get("namespace") != manifests.namespace
        ]
        assert not elsewhere, overlay


def test_each_overlay_has_its_own_host(rendered: dict[str, Manifests]) -> None:
    hosts = {
        overlay: {rule["host"] for i in m.of("Ingress") for rule in i["spec"]["rules"]}
        for overlay, m in rendered.items()
    }
    assert all(len(h) == 1 for h in hosts.values()), hosts
    assert len(set.union(*hosts.values())) == len(OVERLAYS), hosts


# --- create-secrets.sh -------------------------------------------------------------------

SCRIPT = KUBERNETES / "create-secrets.sh"
FAKE_KUBECTL = """#!/bin/sh
echo "$*" >> "$KUBECTL_LOG"
case "$1" in
    create) echo "kind: Secret # $*" ;;
    apply) cat >> "$KUBECTL_LOG" ;;
esac
"""


def run_script(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """create-secrets.sh with a kubectl that only writes down how it was called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    log = tmp_path / "kubectl.log"
    log.touch()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KUBECTL_LOG": str(log)}
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, check=False
    )
    return done, log.read_text().splitlines()


def test_create_secrets_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


def test_create_secrets_makes_every_secret_the_manifests_read(
    tmp_path: Path, rendered: dict[str, Manifests]
) -> None:
    env_dir = tmp_path / "servers"
    env_dir.mkdir()
    for name, env in FAKE_ENV_FILES.items():
        (env_dir / f"{name}.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    done, calls = run_script(tmp_path, "aidpost", str(env_dir))
    assert done.returncode == 0, done.stderr
    created = [c.split() for c in calls if c.startswith("create ")]
    made = set()
    for call in created:
        assert call[:3] == ["create", "secret", "generic"]
        assert call[call.index("--namespace") + 1] == "aidpost"
        assert (
            call[call.index("--from-env-file") + 1]
            == f"{env_dir}/{call[3].removeprefix('aidpost-')}.env"
        )
        made.add(call[3])
    # Rendered locally, then applied: an existing Secret is updated, not refused.
    assert all("--dry-run=client" in call for call in created)
    assert sum(c.startswith("apply ") for c in calls) == len(created)
    read = {
        source["secretRef"]["name"]
        for m in rendered.values()
        for w in m.workloads().values()
        for source in container(w)["envFrom"]
        if "secretRef" in source
    }
    assert made == read


def test_create_secrets_changes_nothing_when_an_env_file_is_missing(tmp_path: Path) -> None:
    env_dir = tmp_path / "servers"
    env_dir.mkdir()
    (env_dir / "auth.env").write_text("AIDPOST_ENV=production\n")
    done, calls = run_script(tmp_path, "aidpost", str(env_dir))
    assert done.returncode != 0
    assert "organizer.env is missing" in done.stderr
    assert calls == []
