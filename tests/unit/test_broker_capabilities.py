"""BrokerCapabilities and require(): refusing clearly on a broker that lacks a feature."""

from __future__ import annotations

import pytest

from agent_events.agent_runtime.errors import ConfigError, UnsupportedByBroker
from agent_events.broker import FEATURES, BrokerCapabilities, require


def _caps(**missing: str) -> BrokerCapabilities:
    flags = {name: name not in missing for name in FEATURES}
    return BrokerCapabilities(
        bootstrap_servers="127.0.0.1:1", reasons=tuple(sorted(missing.items())), **flags
    )


def test_require_passes_when_the_broker_has_the_feature() -> None:
    require(_caps(), "transactions", operation="exactly-once window output")


def test_require_names_the_operation_the_feature_and_what_the_probe_saw() -> None:
    caps = _caps(offsets_for_times="offset 0 came back")
    with pytest.raises(UnsupportedByBroker) as info:
        require(caps, "offsets_for_times", operation="replay --from-time")
    message = str(info.value)
    assert "replay --from-time" in message
    assert "offsets_for_times" in message
    assert "offset 0 came back" in message
    assert "127.0.0.1:1" in message


def test_unknown_feature_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="known"):
        require(_caps(), "time_travel", operation="x")


def test_missing_lists_only_absent_features_in_declaration_order() -> None:
    caps = _caps(delete_records="closed", idempotence="UnknownError")
    assert caps.missing == ["idempotence", "delete_records"]
    assert caps.reason("idempotence") == "UnknownError"
    assert caps.reason("transactions") is None


def test_capabilities_are_frozen() -> None:
    caps = _caps()
    with pytest.raises(AttributeError):
        caps.transactions = False  # type: ignore[misc]
