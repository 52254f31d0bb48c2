"""Typed params: one strict pydantic model per params.yaml section, validated once at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, model_validator

from pvdm.config.autoencoder import AutoencoderConfig
from pvdm.config.base import ConfigError, StrictModel, load_yaml, validate_section
from pvdm.config.data import DataConfig
from pvdm.config.diffusion import DiffusionConfig
from pvdm.config.evaluate import EvaluateConfig
from pvdm.config.preprocess import PreprocessConfig
from pvdm.config.runtime import RuntimeConfig
from pvdm.config.sample import SampleConfig

__all__ = [
    "AutoencoderConfig",
    "ConfigError",
    "DataConfig",
    "DiffusionConfig",
    "EvaluateConfig",
    "Params",
    "PreprocessConfig",
    "RuntimeConfig",
    "SampleConfig",
    "load_params",
    "parse_params",
    "require_sections",
]


class Params(StrictModel):
    """The whole params.yaml."""

    data: DataConfig = Field(default_factory=DataConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    # Sections owned by orchestration (pipelines/config.py validates them); the library only carries them.
    ingest: dict[str, Any] = Field(default_factory=dict)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    autoencoder: AutoencoderConfig = Field(default_factory=AutoencoderConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    orchestration: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sections_agree(self) -> Params:
        self._check_batch_memory()
        self.autoencoder.check_geometry(self.data)
        self.diffusion.denoiser.check_data(self.data.resolution, self.data.frames)
        self._check_pairing()
        self.sample.check_process(self.diffusion)
        return self

    def _check_pairing(self) -> None:
        """The denoiser must model the latents the autoencoder makes (checked on the latents, not the names)."""
        spec = self.autoencoder.model.latent_spec(self.data)
        reason = self.diffusion.denoiser.accepts(spec)
        if reason:
            raise ConfigError(
                f"diffusion.denoiser.type: {reason}; autoencoder.model.type is {self.autoencoder.model.type!r} "
                f"(got {self.diffusion.denoiser.type!r})"
            )

    def _check_batch_memory(self) -> None:
        """A batch of clips alone (float32, before any activation) beyond MAX_BATCH_BYTES is a typo, not a run."""
        for key, batch in (
            ("autoencoder.train.batch_size", self.autoencoder.train.batch_size),
            ("diffusion.train.batch_size", self.diffusion.train.batch_size),
        ):
            need = batch * self.data.clip_bytes()
            if need > MAX_BATCH_BYTES:
                raise ValueError(
                    f"{key} {batch} x data.frames {self.data.frames} x data.resolution {self.data.resolution}^2 "
                    f"needs {need / 2**40:.1f} TiB for the input batch alone (limit {MAX_BATCH_BYTES / 2**40:.0f} TiB)"
                )


MAX_BATCH_BYTES = 2**40  # 1 TiB: no machine holds an input batch this large

P = TypeVar("P", bound=Params)


def parse_params(data: dict[str, Any], source: str = "params", model: type[P] = Params) -> P:
    """Validate a params mapping; errors are ConfigError lines like `diffusion.lr: ... (got -1)`."""
    try:
        return validate_section(model, data)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}".replace("\n", f"\n{source}: ")) from None


# A params file must spell these out: their defaults are the paper's sizes (256x256 clips, PVDM-L's networks),
# so a section left out by mistake would have a laptop run start training a model it cannot hold.
REQUIRED_SECTIONS = ("data", "preprocess", "autoencoder", "diffusion", "sample", "evaluate")


def require_sections(
    data: dict[str, Any], source: str, required: tuple[str, ...] = REQUIRED_SECTIONS
) -> None:
    missing = [name for name in required if name not in data]
    if missing:
        raise ConfigError(
            f"{source}: section {missing[0]!r} is missing{f' (and {missing[1:]})' if missing[1:] else ''}; its "
            "defaults are the paper's sizes, so it is not filled in silently: copy it from params.yaml or a preset "
            "in params/"
        )


def load_params(path: str | Path = "params.yaml", required: tuple[str, ...] = REQUIRED_SECTIONS) -> Params:
    """A params file, validated; `required` sections must be present (a command that takes the sizes from its
    own options, like `pvdm preprocess --resolution`, asks for fewer)."""
    data = load_yaml(path)
    require_sections(data, str(path), required)
    return parse_params(data, source=str(path))
