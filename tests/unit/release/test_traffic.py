"""The endpoint's traffic as pure policy: shapes refused with one sentence, sticky assignment by
key hash, random assignment by weight."""

from __future__ import annotations

import random

import pytest

from jobs.config.traffic import Route, Traffic, assign
from jobs.core.errors import BadInputError

AB = {
    "routes": [
        {"name": "champion", "alias": "Champion", "percent": 90},
        {"name": "candidate", "version": 7, "percent": 10},
    ],
    "shadow": {"alias": "Challenger"},
    "sticky_key": "flight_id",
}


def test_a_spec_round_trips_and_describes_itself():
    traffic = Traffic.from_dict(AB)
    assert traffic.routes[1] == Route("candidate", version="7", percent=10.0)
    assert traffic.shadow == Route("shadow", alias="Challenger", percent=0.0)
    assert Traffic.from_json(traffic.to_json()) == traffic and traffic.primary.name == "champion"
    assert (
        traffic.describe()
        == "champion=@Champion 90%, candidate=v7 10%; shadow @Challenger; sticky by flight_id"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"routes": []}, "needs 'routes'"),
        ({"routes": [{"name": "a", "alias": "Champion", "percent": 60}]}, "add up to 100"),
        (
            {"routes": [{"name": "a", "alias": "Champion", "version": 3, "percent": 100}]},
            "exactly one of alias or version",
        ),
        (
            {
                "routes": [
                    {"name": "a", "alias": "X", "percent": 50},
                    {"name": "a", "alias": "Y", "percent": 50},
                ]
            },
            "distinct",
        ),
        ({"routes": [{"name": "shadow", "alias": "X", "percent": 100}]}, "not 'shadow'"),
        ({"routes": [{"name": "a", "alias": "X", "weight": 100}]}, "unknown keys ['weight']"),
        ({"routes": [{"name": "a", "alias": "X"}], "mirror": True}, "unknown keys ['mirror']"),
    ],
)
def test_unservable_traffic_is_one_sentence_naming_the_problem(spec, message):
    with pytest.raises(BadInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Traffic.from_dict(spec)


def test_a_key_meets_one_arm_forever_and_keys_split_by_weight():
    traffic = Traffic.from_dict(AB)
    assert {assign(traffic, 12345).name for _ in range(50)} == {assign(traffic, 12345).name}
    share = sum(assign(traffic, key).name == "candidate" for key in range(20_000)) / 20_000
    assert 0.09 < share < 0.11
    # Another salt (another rollout) reshuffles who meets the candidate.
    other = Traffic(traffic.routes, traffic.shadow, traffic.sticky_key, salt="rollout-2")
    assert any(assign(traffic, k).name != assign(other, k).name for k in range(200))


def test_requests_without_a_key_split_at_random_by_weight():
    traffic = Traffic.from_dict({**AB, "sticky_key": None})
    rng = random.Random(0)
    share = (
        sum(assign(traffic, "ignored without a sticky key", rng).name == "candidate" for _ in range(20_000))
        / 20_000
    )
    assert 0.09 < share < 0.11
    only = Traffic.from_dict(
        {"routes": [{"name": "a", "alias": "X", "percent": 0}, {"name": "b", "alias": "Y", "percent": 100}]}
    )
    assert {assign(only, None, rng).name for _ in range(1000)} == {"b"}
