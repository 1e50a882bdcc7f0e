"""Helpers shared by tests."""

from __future__ import annotations

import hashlib
from pathlib import Path


def content_checksum(df) -> tuple[int, str]:
    """(row count, order-independent digest of every row's content) of a Spark DataFrame."""
    from pyspark.sql import functions as F

    digests = sorted(r[0] for r in df.select(F.sha2(F.to_json(F.struct(*df.columns)), 256)).collect())
    return len(digests), hashlib.sha256("".join(digests).encode()).hexdigest()


def make_config(root: Path, env: str = "dev"):
    """``env``'s config with its lakehouse, landing zones, reports and checkpoints under ``root``."""
    from jobs.common.config import Storage, load_config

    storage = Storage(
        lakehouse_root=root / "lakehouse", landing_root=root / "landing", reports_root=root / "reports",
        checkpoint_root=root / "checkpoints",
    )  # fmt: skip
    config = load_config(env)
    landing_dir = (
        root / "stream" / Path(config.inference.streaming.landing_dir).name
    )  # as ${RUNWAY_DATA_DIR}/stream/...
    streaming = config.inference.streaming.model_copy(update={"landing_dir": landing_dir})
    inference = config.inference.model_copy(update={"streaming": streaming})
    return config.model_copy(update={"storage": storage, "inference": inference})
