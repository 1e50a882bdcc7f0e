"""What a lifecycle step acts on: one registered model of one environment.

An environment has a target per registered model its lifecycle manages: the use case's model
(``model``) and, when configured, the assistant's chain (``assistant``). Training, validation,
promotion, rollback, rollout and serving take a target and touch nothing else of the registry, so
two models of one environment are two targets of the same code, never a rewritten config.

Invariants:
- ``registered_model_name`` is ``<catalog>.<ml schema>.<name>``: a target is its environment's own.
- the Champion alias is the one scoring follows and promotion moves (``inference.alias``); the
  served alias and the configured traffic are the use case model's only (a chain answers with
  its Champion unless its ``runway.traffic`` tag says otherwise).
- a target with a ``prompt_name`` is a chain: its prompt's Champion alias follows the chain's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from jobs.config.traffic import Route, Traffic

if TYPE_CHECKING:
    from jobs.config.release import PromotionConfig

TargetKey = Literal["model", "assistant"]


@dataclass(frozen=True)
class ModelTarget:
    """One registered model: its name, experiment, the aliases followed and its promotion rules."""

    key: TargetKey
    env: str
    registered_model_name: str
    experiment: str
    champion_alias: str
    promotion: PromotionConfig
    served_alias: str
    traffic_spec: dict[str, Any] | None = None
    prompt_name: str = ""

    @property
    def is_chain(self) -> bool:
        """Whether this is an assistant's chain (its prompt follows its Champion)."""
        return bool(self.prompt_name)

    def configured_traffic(self) -> Traffic:
        """The endpoint's traffic from config (``serving.traffic``; default: all of it to the served
        alias). The registered model's ``runway.traffic`` tag, when set, overrides it."""
        if self.traffic_spec is not None:
            return Traffic.from_dict(self.traffic_spec)
        return Traffic((Route("champion", alias=self.served_alias),))

    def describe(self) -> str:
        return f"{self.registered_model_name} ({self.key} of {self.env})"
