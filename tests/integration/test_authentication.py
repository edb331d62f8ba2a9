"""A wrong password is reported at once, as an authentication failure, never as a dead broker.

The broker is a real Apache Kafka node with a SASL/PLAIN listener; the user's path is the
CLI (``consume`` and ``topics list``) and the producer in Python, each with a wrong password.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from asyncio.subprocess import PIPE

import pytest
from test_read_only_commands import _SASL_USER, sasl_listener

from agent_events import AuthenticationFailed, KafkaEventProducer
from agent_events.broker import KafkaCluster
from agent_events.broker._process import free_ports

pytestmark = [pytest.mark.slow, pytest.mark.broker_kinds("kafka")]

WRONG_PASSWORD = "not-the-password-" + uuid.uuid4().hex[:6]


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from agent_events.cli import main; raise SystemExit(main())", *args,
        stdout=PIPE, stderr=PIPE, env={**os.environ, **env},
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode(), time.monotonic() - started


async def test_a_wrong_password_is_an_authentication_failure_reported_at_once() -> None:
    port, controller_port, sasl_port = free_ports(3)
    overrides = sasl_listener(port, controller_port, sasl_port)
    async with KafkaCluster.single(
        port=port, controller_port=controller_port, overrides=overrides
    ) as _cluster:
        sasl = f"127.0.0.1:{sasl_port}"
        env = {
            "AGENT_EVENTS_BOOTSTRAP_SERVERS": sasl,
            "AGENT_EVENTS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "AGENT_EVENTS_SASL_MECHANISM": "PLAIN",
            "AGENT_EVENTS_SASL_PLAIN_USERNAME": _SASL_USER,
            "AGENT_EVENTS_SASL_PLAIN_PASSWORD": WRONG_PASSWORD,
        }
        for command in (["consume", "metrics", "--metrics-port", "0"], ["topics", "list"]):
            status, err, seconds = await run_cli(*command, env=env)
            lines = [line for line in err.splitlines() if line.strip()]
            assert status != 0
            assert len(lines) == 1, err
            assert "refused the authentication" in lines[0]
            assert f"PLAIN as user '{_SASL_USER}'" in lines[0]
            assert WRONG_PASSWORD not in err
            assert seconds < 20, f"{command}: retried for {seconds:.0f} s before saying so"

        producer = KafkaEventProducer(
            bootstrap_servers=sasl,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_plain_username=_SASL_USER,
            sasl_plain_password=WRONG_PASSWORD,
        )
        with pytest.raises(AuthenticationFailed, match="refused the authentication") as caught:
            await producer.start()
        assert WRONG_PASSWORD not in str(caught.value)
