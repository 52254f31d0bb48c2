"""Typed params: one strict pydantic model per params.yaml section, validated once at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from pvdm.config.autoencoder import AutoencoderConfig
from pvdm.config.base import ConfigError, StrictModel, load_yaml, validate_section
from pvdm.config.data import DataConfig
from pvdm.config.diffusion import DiffusionConfig
from pvdm.config.evaluate import EvaluateConfig
from pvdm.config.orchestration import OrchestrationConfig
from pvdm.config.preprocess import IngestConfig, PreprocessConfig
from pvdm.config.runtime import RuntimeConfig
from pvdm.config.sample import SampleConfig

__all__ = [
    "AutoencoderConfig",
    "ConfigError",
    "DataConfig",
    "DiffusionConfig",
    "EvaluateConfig",
    "IngestConfig",
    "OrchestrationConfig",
    "Params",
    "PreprocessConfig",
    "RuntimeConfig",
    "SampleConfig",
    "load_params",
    "parse_params",
]


class Params(StrictModel):
    """The whole params.yaml."""

    data: DataConfig = Field(default_factory=DataConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    autoencoder: AutoencoderConfig = Field(default_factory=AutoencoderConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)

    @model_validator(mode="after")
    def _sections_agree(self) -> Params:
        self.autoencoder.check_geometry(self.data)
        self.diffusion.denoiser.check_autoencoder(self.autoencoder.model)
        self.sample.check_process(self.diffusion)
        return self


def parse_params(data: dict[str, Any], source: str = "params") -> Params:
    """Validate a params mapping; errors are ConfigError lines like `diffusion.lr: ... (got -1)`."""
    try:
        return validate_section(Params, data)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}".replace("\n", f"\n{source}: ")) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    return parse_params(load_yaml(path), source=str(path))
