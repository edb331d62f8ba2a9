"""Broker features read from an ApiVersions answer (keys as Kafka 4.1.1 and Tansu 0.6 sent them)."""

from __future__ import annotations

import pytest

from agent_events.agent_runtime.errors import UnsupportedByBroker
from agent_events.consumers.capabilities import (
    FEATURES,
    capabilities_from_api_versions,
    require,
)

# API keys each broker advertised to aiokafka 0.14 (measured on this machine).
TANSU_0_6 = [0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 24, 25, 26]
TANSU_0_6 += [28, 29, 30, 32, 36, 42, 44, 46, 50, 51, 60, 69, 71, 75]
KAFKA_4_1 = [*range(0, 4), *range(8, 52), 55, 57, 60, 61, 64, 65, 66, 68, 69, *range(74, 82)]
KAFKA_4_1 += [*range(83, 88), 90, 91, 92]


def test_apache_kafka_has_every_feature() -> None:
    caps = capabilities_from_api_versions("k:9092", dict.fromkeys(KAFKA_4_1, 1))
    assert caps.missing == []


def test_a_broker_without_kafkas_broker_side_apis_lacks_every_feature_and_says_which() -> None:
    caps = capabilities_from_api_versions("t:9092", dict.fromkeys(TANSU_0_6, 1))
    assert caps.missing == list(FEATURES)
    assert "WriteTxnMarkers (API key 27)" in (caps.reason("transactions") or "")
    assert "OffsetForLeaderEpoch (API key 23)" in (caps.reason("offsets_for_times") or "")
    with pytest.raises(UnsupportedByBroker, match=r"replay --from-time needs exact offsets"):
        require(caps, "offsets_for_times", operation="replay --from-time")


def test_a_client_api_the_broker_does_not_advertise_is_named() -> None:
    caps = capabilities_from_api_versions("x:9092", {k: 1 for k in KAFKA_4_1 if k != 21})
    assert caps.missing == ["delete_records"]
    assert caps.reason("delete_records") == (
        "the broker does not advertise DeleteRecords (API key 21)"
    )
