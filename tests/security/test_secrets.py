"""A credential inside a URL is refused wherever it is given (params, CLI option, flow parameter), and the refusal
never repeats it."""

from __future__ import annotations

import traceback

import pytest
from click.testing import CliRunner

from pipelines.config import parse_pipeline_params
from pipelines.ingest import main as ingest_main
from pvdm.config import ConfigError
from tests.pipelines.tiny_params import TINY_PARAMS

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYzz"


@pytest.mark.parametrize(
    ("section", "key", "url"),
    [
        ("runtime", "ray_storage", f"s3://AKIAEXAMPLE:{SECRET}@bucket/ray"),
        ("ingest", "source", f"s3://AKIAEXAMPLE:{SECRET}@bucket/videos"),
        ("ingest", "endpoint_url", f"http://admin:{SECRET}@minio:9000"),
    ],
)
def test_a_credential_in_any_params_url_is_refused_without_being_echoed(
    section: str, key: str, url: str
) -> None:
    params = {**TINY_PARAMS, section: {**TINY_PARAMS.get(section, {}), key: url}}
    with pytest.raises(ConfigError) as refused:
        parse_pipeline_params(params)
    message = str(refused.value)
    assert f"{section}.{key}" in message and "credentials do not belong in a URL" in message
    assert SECRET not in message and SECRET not in repr(refused.value.__cause__)


def test_the_ingest_cli_refuses_a_source_with_credentials_and_never_prints_them(tmp_path) -> None:  # noqa: ANN001
    result = CliRunner().invoke(
        ingest_main,
        ["--source", f"s3://AKIAEXAMPLE:{SECRET}@bucket/videos", "--raw", str(tmp_path / "raw"),
         "--params", str(tmp_path / "none.yaml")],
    )  # fmt: skip
    assert result.exit_code != 0
    shown = result.output + "".join(traceback.format_exception(result.exception))
    assert "credentials do not belong in a URL" in shown and SECRET not in shown
