"""Helpers shared by tests."""

from __future__ import annotations

import hashlib


def content_checksum(df) -> tuple[int, str]:
    """(row count, order-independent digest of every row's content) of a Spark DataFrame."""
    from pyspark.sql import functions as F

    digests = sorted(r[0] for r in df.select(F.sha2(F.to_json(F.struct(*df.columns)), 256)).collect())
    return len(digests), hashlib.sha256("".join(digests).encode()).hexdigest()
