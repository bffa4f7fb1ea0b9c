"""The deployment files under ``deploy/``: docker compose and the Kubernetes kustomize base.

Each file is parsed as YAML and checked for what a user relies on: every variable the
config takes from the environment is given to every node, the config validates, the
probes, Service and PodDisruptionBudget find the pods and their port, the volumes are
where the config writes. ``kubectl kustomize`` builds the base where kubectl or kustomize
is installed, and ``docker compose config`` checks the compose file where compose is.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from streamer.config import Config, load_config

from support.daemon import ROOT

DEPLOY = ROOT / "deploy"
CONFIG = DEPLOY / "streamer.yaml"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"

#: Set by the runtime, not by the user: compose from a service's ``hostname:``, Kubernetes
#: to the pod's name.
RUNTIME_VARIABLES = {"HOSTNAME"}
#: ``${VAR}`` and ``${VAR:-default}``, as the config loader reads them.
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
#: One daemon's CPU (cores) and peak memory (bytes) with 1 and with 13 live 1280x720 cameras
#: at 25 fps: docs/PERFORMANCE.md, from bench/performance.py on a 2-core AMD EPYC.
MEASURED = {1: (0.18, 441 * 10**6), 13: (1.67, 1166 * 10**6)}
#: A memory size: ``1536Mi`` (Kubernetes: 2**20), ``1536M`` (Kubernetes: 10**6; compose: 2**20).
QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)(i?)$")


def documents(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as file:
        return [document for document in yaml.safe_load_all(file) if document is not None]


def strings(tree: Any) -> Iterator[str]:
    if isinstance(tree, dict):
        for value in tree.values():
            yield from strings(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from strings(item)
    elif isinstance(tree, str):
        yield tree


def required_variables() -> set[str]:
    """The variables the config takes from the environment with no default."""
    (config,) = documents(CONFIG)
    return {
        match.group(1)
        for text in strings(config)
        for match in VARIABLE.finditer(text)
        if match.group(2) is None
    } - RUNTIME_VARIABLES


def load_deploy_config(hostname: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Config:
    """deploy/streamer.yaml as the node ``hostname`` loads it, the secrets set to dummies."""
    for name in required_variables():
        monkeypatch.setenv(name, f"dummy-{name.lower()}")
    monkeypatch.setenv("HOSTNAME", hostname)
    return load_config(CONFIG)


def to_bytes(quantity: str, *, binary: bool = False) -> int:
    """A memory size in bytes; ``binary``: ``M`` and ``G`` are 2**20 and 2**30, as compose reads
    them (Kubernetes writes those ``Mi`` and ``Gi``)."""
    match = QUANTITY.match(str(quantity).upper().replace("I", "i"))
    assert match, f"not a memory size: {quantity!r}"
    number, unit, suffix = float(match.group(1)), match.group(2), match.group(3)
    power = "KMGT".index(unit) + 1 if unit else 0
    base = 1024 if binary or suffix else 1000
    return int(number * base**power)


def cores(quantity: str | float) -> float:
    """CPU as Kubernetes (``2``, ``1500m``) or compose (``"2"``) writes it."""
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def measured_need() -> tuple[float, int]:
    """The CPU and memory a node was measured to use with ``cluster.max_cameras`` cameras
    (it may hold that many while other nodes are down), on the line through the two
    measurements."""
    (config,) = documents(CONFIG)
    cameras = config["cluster"]["max_cameras"]
    (one, (cpu_1, memory_1)), (many, (cpu_n, memory_n)) = sorted(MEASURED.items())
    share = (cameras - one) / (many - one)
    return cpu_1 + share * (cpu_n - cpu_1), int(memory_1 + share * (memory_n - memory_1))


def mount_of(path: Path, mounts: dict[str, str]) -> str:
    """The volume that ``path`` is written to, given each mount point's volume."""
    target = PurePosixPath(path)
    points = [p for p in mounts if target == PurePosixPath(p) or PurePosixPath(p) in target.parents]
    assert points, f"{path} is on no volume: it is lost when the container goes"
    return mounts[max(points, key=len)]


# docker compose ----------------------------------------------------------------------------


def compose_services() -> dict[str, Any]:
    (compose,) = documents(COMPOSE)
    services: dict[str, Any] = compose["services"]
    return services


def compose_nodes() -> dict[str, Any]:
    return {
        name: service
        for name, service in compose_services().items()
        if service.get("image") == "streamer:latest"
    }


def compose_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Each mount point of a service and what is mounted there (volume name or host path)."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        mounts[target] = source
    return mounts


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(key): str(value) for key, value in environment.items()}


def test_compose_runs_three_nodes_with_their_own_hostnames() -> None:
    nodes = compose_nodes()
    assert sorted(nodes) == ["node-1", "node-2", "node-3"]
    hostnames = [node.get("hostname") for node in nodes.values()]
    assert None not in hostnames
    assert len(set(hostnames)) == 3
    for node in nodes.values():
        assert node["build"]["context"] == ".."
        assert (COMPOSE.parent / node["build"]["context"] / "Dockerfile").is_file()
        assert node["build"]["target"] == "runtime"
        assert node["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in compose_services()["postgres"]


def test_compose_gives_every_node_each_secret_or_refuses_to_start() -> None:
    needed = required_variables()
    assert needed == {
        "PGPASSWORD",
        "STREAMER_TOKEN",
        "WEBHOOK_SECRET",
        "CAMERA_USER",
        "CAMERA_PASSWORD",
    }
    for name, node in compose_nodes().items():
        environment = compose_environment(node)
        assert needed <= set(environment), name
        for variable in needed:
            # ${VAR:?message}: compose stops with the message while VAR is unset.
            assert re.fullmatch(rf"\$\{{{variable}:\?[^}}]+\}}", environment[variable]), variable


def test_compose_postgres_is_the_database_the_config_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = load_deploy_config("node-1", monkeypatch, tmp_path)
    assert config.cluster is not None
    url = urlsplit(config.cluster.database)
    postgres = compose_services()[url.hostname or ""]
    environment = compose_environment(postgres)
    assert url.port == 5432
    assert url.username == environment["POSTGRES_USER"]
    assert url.path.lstrip("/") == environment["POSTGRES_DB"]
    assert environment["POSTGRES_PASSWORD"].startswith("${PGPASSWORD:?")


@pytest.mark.parametrize("service", ["node-1", "node-2", "node-3"])
def test_compose_volumes_are_where_the_config_writes(
    service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nodes = compose_nodes()
    node = nodes[service]
    config = load_deploy_config(node["hostname"], monkeypatch, tmp_path)
    mounts = compose_mounts(node)
    (compose,) = documents(COMPOSE)

    # The config file that the command loads is deploy/streamer.yaml.
    command = node["command"]
    assert command[:3] == ["streamer", "run", "--config"]
    assert (COMPOSE.parent / mounts[command[3]]).resolve() == CONFIG

    # One evidence volume for all nodes, at the configured directory.
    evidence = mount_of(config.recordings.directory, mounts)
    assert evidence in compose["volumes"]
    for other in nodes.values():
        assert compose_mounts(other)[str(config.recordings.directory)] == evidence

    # The events log and the outbox on a volume of this node's own.
    own = {mount_of(config.events_log, mounts), mount_of(config.outbox.database, mounts)}
    assert len(own) == 1
    assert own != {evidence}
    assert own <= set(compose["volumes"])
    for name, other in nodes.items():
        if name != service:
            assert not own & set(compose_mounts(other).values()), name


def test_compose_health_check_and_ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = load_deploy_config("node-1", monkeypatch, tmp_path)
    published = []
    for node in compose_nodes().values():
        check = " ".join(node["healthcheck"]["test"])
        assert f"http://127.0.0.1:{config.http.port}/health" in check
        (mapping,) = node["ports"]
        host, container = str(mapping).rsplit(":", 1)
        assert int(container) == config.http.port
        published.append(host)
    assert len(set(published)) == len(published)
    assert config.http.host == "0.0.0.0"
    assert config.http.token is not None


def test_compose_reserves_what_a_node_was_measured_to_use() -> None:
    cpu, memory = measured_need()
    for node in compose_nodes().values():
        resources = node["deploy"]["resources"]
        assert cores(resources["reservations"]["cpus"]) >= cpu
        reserved = to_bytes(resources["reservations"]["memory"], binary=True)
        assert reserved >= memory
        assert to_bytes(resources["limits"]["memory"], binary=True) > reserved


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        found = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False, timeout=60
        )
        if found.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


COMPOSE_BINARY = compose_command()


@pytest.mark.skipif(COMPOSE_BINARY is None, reason="docker compose is not installed")
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    assert COMPOSE_BINARY is not None
    no_env_file = tmp_path / "empty.env"  # not a deploy/.env of real secrets
    no_env_file.touch()
    command = [*COMPOSE_BINARY, "--env-file", str(no_env_file), "-f", str(COMPOSE)]
    environment = {**os.environ, **{name: "dummy" for name in required_variables()}}

    def config() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "config", "--quiet"],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
            timeout=120,
        )

    checked = config()
    assert checked.returncode == 0, checked.stderr
    del environment["PGPASSWORD"]
    refused = config()
    assert refused.returncode != 0
    assert "PGPASSWORD" in refused.stderr


# Kubernetes -------------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    (data,) = documents(K8S / "kustomization.yaml")
    return dict(data)


def resources() -> dict[tuple[str, str], Any]:
    """The base's resources by kind and name."""
    found = {}
    for name in kustomization()["resources"]:
        for document in documents(K8S / name):
            found[document["kind"], document["metadata"]["name"]] = document
    return found


def deployment() -> dict[str, Any]:
    (found,) = [doc for (kind, _), doc in resources().items() if kind == "Deployment"]
    return dict(found)


def container() -> dict[str, Any]:
    (found,) = deployment()["spec"]["template"]["spec"]["containers"]
    return dict(found)


def container_port(port: int | str) -> int:
    """A port of the container, by number or by name."""
    ports = container()["ports"]
    if isinstance(port, int):
        assert port in [p["containerPort"] for p in ports]
        return port
    (number,) = [p["containerPort"] for p in ports if p.get("name") == port]
    return int(number)


def secret_keys() -> set[str]:
    """The keys of the generated Secret, from the example of its env file."""
    (generator,) = kustomization()["secretGenerator"]
    (envs,) = generator["envs"]
    lines = (K8S / f"{envs}.example").read_text(encoding="utf-8").splitlines()
    return {line.split("=", 1)[0] for line in lines if line.strip() and not line.startswith("#")}


def test_the_kubernetes_config_is_deploy_config() -> None:
    (generator,) = kustomization()["configMapGenerator"]
    assert generator["files"] == ["streamer.yaml"]
    assert (K8S / "streamer.yaml").read_bytes() == CONFIG.read_bytes(), (
        "deploy/k8s/streamer.yaml must be a copy of deploy/streamer.yaml"
    )


def test_kustomization_lists_every_file_and_no_missing_one() -> None:
    data = kustomization()
    listed = set(data["resources"])
    generated = {name for g in data["configMapGenerator"] for name in g["files"]}
    (secrets,) = data["secretGenerator"]
    (env_file,) = secrets["envs"]
    assert all((K8S / name).is_file() for name in listed | generated)
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == listed | generated
    # The secrets' env file is the user's, not in git: its example is.
    assert (K8S / f"{env_file}.example").is_file()
    assert env_file in (K8S / ".gitignore").read_text(encoding="utf-8").split()
    kinds = sorted(kind for kind, _ in resources())
    expected = ["Deployment", "PersistentVolumeClaim", "PodDisruptionBudget", "Service"]
    assert kinds == expected


def kustomize_command() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


KUSTOMIZE = kustomize_command()


@pytest.mark.skipif(KUSTOMIZE is None, reason="neither kubectl nor kustomize is installed")
def test_kustomize_builds_the_base(tmp_path: Path) -> None:
    """The other Kubernetes tests read the files themselves; this one builds them."""
    assert KUSTOMIZE is not None
    base = tmp_path / "k8s"
    shutil.copytree(K8S, base)
    (env_file,) = kustomization()["secretGenerator"][0]["envs"]
    shutil.copy(base / f"{env_file}.example", base / env_file)
    built = subprocess.run(
        [*KUSTOMIZE, str(base)], capture_output=True, text=True, check=False, timeout=120
    )
    assert built.returncode == 0, built.stderr
    objects = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(built.stdout)}
    names = {kind: name for kind, name in objects}
    assert set(resources()) <= set(objects)
    assert names["ConfigMap"].startswith("streamer-config-")
    assert names["Secret"].startswith("streamer-secrets-")
    assert set(objects["Secret", names["Secret"]]["data"]) == secret_keys()
    pod = objects["Deployment", "streamer"]["spec"]["template"]["spec"]
    (built_container,) = pod["containers"]
    assert built_container["envFrom"] == [{"secretRef": {"name": names["Secret"]}}]
    assert {"name": "config", "configMap": {"name": names["ConfigMap"]}} in pod["volumes"]


def test_kubernetes_gives_every_pod_each_secret() -> None:
    (generator,) = kustomization()["secretGenerator"]
    references = [e["secretRef"]["name"] for e in container().get("envFrom", [])]
    assert references == [generator["name"]]
    direct = {entry["name"] for entry in container().get("env", [])}
    assert required_variables() <= secret_keys() | direct
    assert not RUNTIME_VARIABLES & direct, "Kubernetes sets HOSTNAME to the pod's name"


def test_kubernetes_runs_three_nodes_on_the_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] == 3
    # The image's CMD is the whole command (no ENTRYPOINT): args alone would replace it.
    command = [*container()["command"], *container()["args"]]
    assert command[:3] == ["streamer", "run", "--config"]
    config_path = PurePosixPath(command[3])
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    (generator,) = kustomization()["configMapGenerator"]
    assert volumes[mounts[str(config_path.parent)]]["configMap"]["name"] == generator["name"]
    assert config_path.name in generator["files"]

    config = load_deploy_config("streamer-5d9c7b8f4-x2x7k", monkeypatch, tmp_path)
    evidence = volumes[mount_of(config.recordings.directory, mounts)]
    claim = resources()["PersistentVolumeClaim", evidence["persistentVolumeClaim"]["claimName"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    own = {mount_of(config.events_log, mounts), mount_of(config.outbox.database, mounts)}
    assert len(own) == 1
    assert "persistentVolumeClaim" not in volumes[own.pop()], "a node's files are its own"


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_probes_ask_health_on_the_api_port(
    probe: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = load_deploy_config("streamer-0", monkeypatch, tmp_path)
    check = container()[probe]["httpGet"]
    assert check["path"] == "/health"
    assert container_port(check["port"]) == config.http.port


def test_the_service_and_the_budget_find_the_pods(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = load_deploy_config("streamer-0", monkeypatch, tmp_path)
    spec = deployment()["spec"]
    labels = spec["template"]["metadata"]["labels"]
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= labels.items()

    services = [doc for (kind, _), doc in resources().items() if kind == "Service"]
    (service,) = services
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == config.http.port
    assert container_port(port["targetPort"]) == config.http.port

    (budget,) = [doc for (kind, _), doc in resources().items() if kind == "PodDisruptionBudget"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_kubernetes_requests_what_a_node_was_measured_to_use() -> None:
    cpu, memory = measured_need()
    resources_ = container()["resources"]
    assert cores(resources_["requests"]["cpu"]) >= cpu
    requested = to_bytes(resources_["requests"]["memory"])
    assert requested >= memory
    assert to_bytes(resources_["limits"]["memory"]) > requested
    assert "cpu" not in resources_["limits"], "a throttled node drops frames"
