"""One typed settings object, read once from the environment and passed down."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where orisel finds data and keeps caches and runs (environment: ORISEL_<NAME>)."""

    model_config = SettingsConfigDict(env_prefix="ORISEL_", extra="ignore")

    data: Path | None = Field(
        default=None, description="CIFAR-10 source: archive or folder (python or ImageFolder)"
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "orisel", description="decoded data-set cache"
    )
    runs_dir: Path = Field(default=Path("runs"), description="where training runs are written")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
