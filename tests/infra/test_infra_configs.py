"""infra/: the Ray autoscaler config against Ray's own JSON schema, and the consistency of the KubeRay job, the image
and the compose stack with each other and with the project (locked versions, params, stage names)."""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import ray
import torch
import yaml

from pvdm.config import parse_params

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TRAINING_STAGES = {"train_autoencoder", "train_diffusion"}  # the training stages of dvc.yaml


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {pkg["name"]: pkg.get("version", "") for pkg in lock["package"]}


# --- Ray autoscaler -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_schema() -> dict:
    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


@pytest.fixture(scope="module")
def cluster() -> dict:
    return _yaml(INFRA / "ray" / "cluster.yaml")


def test_cluster_config_validates_against_rays_schema(cluster: dict, ray_schema: dict) -> None:
    jsonschema.validators.validator_for(ray_schema)(ray_schema).validate(cluster)


@pytest.mark.parametrize(
    "path, bad",
    [(("max_workers",), "many"), (("available_node_types", "gpu_1x", "gpu_count"), 1), (("provider",), None)],
)
def test_the_schema_check_rejects_a_broken_config(cluster: dict, ray_schema: dict, path: tuple, bad) -> None:
    broken = copy.deepcopy(cluster)
    node = broken
    for key in path[:-1]:
        node = node[key]
    if bad is None:
        del node[path[-1]]
    else:
        node[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, ray_schema)


def test_cluster_has_a_cpu_head_and_gpu_workers(cluster: dict) -> None:
    types = cluster["available_node_types"]
    head = cluster["head_node_type"]
    assert types[head]["resources"].get("GPU", 0) == 0
    workers = {name: t for name, t in types.items() if name != head}
    assert workers and all(t["resources"]["GPU"] >= 1 for t in workers.values())
    assert all(t.get("min_workers", 0) == 0 for t in workers.values())  # GPUs only while training runs


# --- KubeRay ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return _yaml(INFRA / "kuberay" / "rayjob.yaml")


def _containers(rayjob: dict) -> list[dict]:
    spec = rayjob["spec"]["rayClusterSpec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def _entrypoint_words(rayjob: dict) -> list[str]:
    (script,) = [w for w in shlex.split(rayjob["spec"]["entrypoint"]) if " " in w]  # the `bash -c '...'` body
    return shlex.split(script.replace(";", " ; "))


def _set_params(words: list[str]) -> dict[str, str]:
    return dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "-S")


def test_rayjob_runs_the_locked_ray_version(rayjob: dict) -> None:
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == ray.__version__ == _locked_versions()["ray"]


def test_rayjob_workers_match_the_gpus_it_asks_for(rayjob: dict) -> None:
    spec = rayjob["spec"]["rayClusterSpec"]
    gpus = 0
    for group in spec["workerGroupSpecs"]:
        (container,) = group["template"]["spec"]["containers"]
        res = container["resources"]
        assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"]
        gpus += group["replicas"] * int(res["limits"]["nvidia.com/gpu"])
    assert spec["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    params = _set_params(_entrypoint_words(rayjob))
    assert int(params["runtime.num_workers"]) == gpus
    assert params["runtime.use_gpu"] == "true"


def test_rayjob_overrides_are_valid_params(rayjob: dict) -> None:
    nested: dict = {}
    for key, value in _set_params(_entrypoint_words(rayjob)).items():
        *parents, leaf = key.split(".")
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    params = parse_params(nested)  # a typo'd key or a bad value raises ConfigError
    assert params.runtime.use_gpu is True


def test_rayjob_trains_a_training_stage(rayjob: dict) -> None:
    words = _entrypoint_words(rayjob)
    stages = TRAINING_STAGES & set(words)
    assert stages, words
    dvc_yaml = ROOT / "dvc.yaml"
    if not dvc_yaml.exists():
        pytest.skip("dvc.yaml not written yet: stage names checked against the design notes only")
    assert stages <= set(_yaml(dvc_yaml)["stages"])


def test_rayjob_preset_exists(rayjob: dict) -> None:
    words = _entrypoint_words(rayjob)
    (preset,) = [w for w in words if w.startswith("params/")]
    if not (ROOT / "params").is_dir():
        pytest.skip("params/ presets not written yet")
    assert (ROOT / preset).is_file(), preset


def test_one_image_and_no_literal_secrets(rayjob: dict, cluster: dict) -> None:
    images = {c["image"] for c in _containers(rayjob)}
    assert images == {cluster["docker"]["image"]}
    for c in _containers(rayjob):
        assert {"secretRef": {"name": "pvdm-env"}} in c["envFrom"]
        literal = [e["name"] for e in c.get("env", []) if re.search("KEY|SECRET|PASSWORD|TOKEN", e["name"])]
        assert literal == []


# --- Container image --------------------------------------------------------------------------------------------------

DOCKERFILE = INFRA / "docker" / "Dockerfile"


def _arg(name: str) -> str:
    return re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE.read_text(), re.M).group(1)


def _targets() -> set[str]:
    return set(re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILE.read_text(), re.M))


def test_image_cuda_matches_the_locked_torch_build() -> None:
    if torch.version.cuda is None:
        pytest.skip("the installed torch is a CPU build: no CUDA version to compare")
    assert _arg("CUDA_VERSION").split(".")[:2] == torch.version.cuda.split(".")[:2]


def test_image_python_and_sync_follow_the_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={_arg('PYTHON_VERSION')},<3.12"
    text = DOCKERFILE.read_text()
    assert "uv sync --frozen --no-dev" in text
    ignored = (INFRA / "docker" / "Dockerfile.dockerignore").read_text().split()
    assert ".venv/" in ignored and ".git" not in ignored and ".git/" not in ignored


def test_services_image_installs_locked_packages() -> None:
    (line,) = re.findall(r"uv pip install --system .*? -c /tmp/locked.txt (.+?) \\", DOCKERFILE.read_text())
    locked = _locked_versions()
    missing = [pkg for pkg in line.split() if pkg not in locked]
    assert missing == [], f"not in uv.lock, so not pinned: {missing}"


# --- Compose stack ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return _yaml(INFRA / "compose.yaml")


def _env_example() -> dict[str, str]:
    lines = (INFRA / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _interpolated(text: str) -> set[str]:
    text = text.replace("$$", "")
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))


def test_compose_has_the_stack(compose: dict) -> None:
    expected = {"preflight", "postgres", "s3", "s3-buckets", "mlflow", "prefect-server", "prefect-worker"}
    assert set(compose["services"]) == expected
    for name, svc in compose["services"].items():
        deps = svc.get("depends_on", {})
        assert set(deps) <= expected - {name}
        if "build" in svc:
            assert svc["build"]["target"] in _targets()
            assert (INFRA / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == DOCKERFILE


def test_compose_wires_mlflow_to_postgres_and_s3(compose: dict) -> None:
    env = compose["services"]["mlflow"]["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    assert env["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://s3:9000"
    prefect = compose["services"]["prefect-server"]["environment"]
    assert prefect["PREFECT_API_DATABASE_CONNECTION_URL"].endswith("@postgres:5432/prefect")
    init = (INFRA / "postgres" / "init" / "10-prefect.sql").read_text()
    assert "CREATE DATABASE prefect" in init


def test_compose_variables_come_from_the_env_file() -> None:
    used = _interpolated((INFRA / "compose.yaml").read_text())
    defined = set(_env_example())
    assert used - defined == set(), "used in compose.yaml but not in .env.example"
    assert defined - used == set(), "in .env.example but unused"


def test_credentials_file_is_ignored_and_the_example_holds_placeholders() -> None:
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored("infra/.env") and not ignored("infra/.env.example")
    example = _env_example()
    secrets = {k: v for k, v in example.items() if re.search("PASSWORD|SECRET", k)}
    assert secrets and all(v.startswith("change-me") for v in secrets.values())


def test_compose_publishes_on_loopback_and_pins_images(compose: dict) -> None:
    example = _env_example()
    for name, svc in compose["services"].items():
        assert all(str(p).startswith("127.0.0.1:") for p in svc.get("ports", [])), name
        image = re.sub(r"\$\{(\w+)\}", lambda m: example[m.group(1)], svc["image"])
        assert ":" in image and not image.endswith(":latest"), (name, image)


def test_rayjob_assumes_no_shared_file_system_and_pushes_what_it_made(rayjob: dict) -> None:
    spec = rayjob["spec"]["rayClusterSpec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    claims = [
        v for g in groups for v in g["template"]["spec"].get("volumes", []) if "persistentVolumeClaim" in v
    ]
    assert not claims  # the nodes share S3, not a volume: a local ray_storage is refused on several nodes
    words = _entrypoint_words(rayjob)
    assert _set_params(words)["runtime.ray_storage"] == "$PVDM_RAY_STORAGE"
    script = " ".join(words)
    assert "dvc push" in script and "dvc exp push origin" in script


def test_cluster_config_mounts_no_shared_file_system(cluster: dict) -> None:
    assert not cluster["initialization_commands"]
    assert not any("-v " in option for option in cluster["docker"]["run_options"])
