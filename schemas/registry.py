"""The Confluent Schema Registry wire format, as an alternative value format.

Kafka Connect's AvroConverter, ksqlDB, Flink and ``kcat -s avro`` read values framed as::

    00 | schema id (4 bytes, big-endian) | Avro binary body

where the id names the writer schema in a Confluent-compatible schema registry (Confluent,
Apicurio ``/apis/ccompat/v7``, Karapace). :class:`ConfluentEventCodec` writes that framing
and reads both it and our default single-object framing, telling them apart by the first
byte (``00`` here, ``C3 01`` there), so a topic may hold both during a migration.

Registry traffic is kept off the hot path:

* **produce**: the writer schema is registered under ``<topic>-value`` (TopicNameStrategy)
  once per topic, by ``await codec.prepare_topic(topic)`` (the producer calls it on start
  and on the first send to another topic); ``encode`` itself never does I/O;
* **consume**: ``await codec.prepare(value)`` looks the writer schema id up in the cache
  and, on a miss only, fetches ``/schemas/ids/{id}`` with an async client, so a miss holds
  up the one record (its partition) and never the event loop; ``decode`` never does I/O.
  An id the registry does not know is remembered (bounded) and decodes as
  :class:`UnknownSchemaError`, which a consumer dead-letters before moving on.

Errors: a malformed ``schema_registry_url`` is a :class:`ConfigError`; an unreachable
registry or a 5xx answer is a :class:`KafkaError` naming the URL; a schema the registry
refuses (incompatible, invalid) is a :class:`ConfigError` with the registry's message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent_events.agent_runtime.errors import (
    ConfigError,
    EncodeError,
    KafkaError,
    MalformedEventError,
    UnknownSchemaError,
)
from agent_events.agent_runtime.events import SystemEvent
from agent_events.agent_runtime.lru import LRUMap
from agent_events.schemas.avro import AvroSchemaStore
from agent_events.schemas.codec import (
    CONFLUENT_CONTENT_TYPE,
    CONFLUENT_MAGIC,
    SYSTEM_EVENT_SCHEMA,
    EventCodec,
)

__all__ = [
    "CONFLUENT_HEADER_SIZE",
    "ConfluentEventCodec",
    "SchemaRegistryClient",
    "ValueFormat",
    "ValueFormatConfig",
    "ValueFormatOptions",
    "make_event_codec",
    "schema_text",
    "subject_for",
]

CONFLUENT_HEADER_SIZE: Final = 5
ValueFormat = Literal["avro", "confluent"]
_JSON_CONTENT: Final = "application/vnd.schemaregistry.v1+json"
_UNKNOWN_IDS_KEPT: Final = 1024


def subject_for(topic: str) -> str:
    """The registry subject of a topic's values (Confluent's TopicNameStrategy)."""
    return f"{topic}-value"


def schema_text(schema: Mapping[str, Any]) -> str:
    """Compact JSON text of ``schema`` with braces inside strings written as ``\\u007b``.

    Equal JSON (and so the same Avro schema and fingerprint) as plain ``json.dumps``; the
    escapes are for Apicurio Registry 3.0.x, whose Avro type discovery deletes quoted text
    with braces before parsing and then refuses a schema with a ``"{}"`` default (ours).
    """

    return _json_text(schema)


def _json_text(value: Any) -> str:
    if isinstance(value, str):  # a brace is never part of a JSON escape, so this is exact
        return json.dumps(value).replace("{", "\\u007b").replace("}", "\\u007d")
    if isinstance(value, Mapping):
        return (
            "{" + ",".join(f"{_json_text(str(k))}:{_json_text(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    return json.dumps(value)


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"schema_registry_url {url!r} is not an http(s) URL; give the registry's "
            "Confluent API base, e.g. http://127.0.0.1:8081 (Apicurio: .../apis/ccompat/v7)"
        )
    return url.rstrip("/")


class ValueFormatConfig(BaseModel):
    """How event values are framed on the wire; shared by producer and consumer settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value_format: ValueFormat = Field(
        default="avro",
        description="avro: Avro single-object encoding (no registry); confluent: the "
        "Schema Registry wire format (00 + schema id + Avro) read by Connect, ksqlDB, Flink.",
    )
    schema_registry_url: str | None = Field(
        default=None,
        description="Base URL of a Confluent-compatible registry; needed for value_format=confluent.",
    )

    @model_validator(mode="after")
    def _registry_for_confluent(self) -> ValueFormatConfig:
        if self.value_format == "confluent" and not self.schema_registry_url:
            raise ValueError("value_format='confluent' needs schema_registry_url")
        if self.schema_registry_url:
            try:
                _check_url(self.schema_registry_url)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self


class ValueFormatOptions(TypedDict, total=False):
    """:class:`ValueFormatConfig`'s fields as typed keyword arguments."""

    value_format: ValueFormat
    schema_registry_url: str | None


class SchemaRegistryClient:
    """The two calls of the Confluent Schema Registry API that the wire format needs.

    Answers are cached both ways (subject+schema -> id, id -> schema text), so each is
    asked once per process. Each call opens a short-lived async connection: calls are rare
    (cache misses), and nothing needs closing. ``requests`` counts HTTP requests sent.
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.url = _check_url(url)
        self._timeout = timeout_s
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, str] = {}
        self.requests = 0

    async def register(self, subject: str, schema: Mapping[str, Any] | str) -> int:
        """The id of ``schema`` under ``subject``, registering it if it is new there."""
        text = schema if isinstance(schema, str) else schema_text(schema)
        cached = self._ids.get((subject, text))
        if cached is not None:
            return cached
        path = f"/subjects/{quote(subject, safe='')}/versions"
        answer = await self._call("POST", path, {"schema": text})
        if answer.status_code != 200:
            raise ConfigError(
                f"schema registry {self.url} refused the schema for subject {subject!r} "
                f"(HTTP {answer.status_code}: {answer.text[:300]}); check its compatibility rules"
            )
        schema_id = int(answer.json()["id"])
        self._ids[(subject, text)] = schema_id
        self._schemas.setdefault(schema_id, text)
        return schema_id

    async def schema(self, schema_id: int) -> str | None:
        """The schema text registered as ``schema_id``, or None if the registry lacks it."""
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        answer = await self._call("GET", f"/schemas/ids/{schema_id}", None)
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise KafkaError(
                f"schema registry {self.url} answered HTTP {answer.status_code} for schema id "
                f"{schema_id}: {answer.text[:300]}"
            )
        text = str(answer.json()["schema"])
        self._schemas[schema_id] = text
        return text

    async def _call(self, method: str, path: str, body: object) -> httpx.Response:
        self.requests += 1
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                return await client.request(
                    method,
                    self.url + path,
                    json=body,
                    headers={"Content-Type": _JSON_CONTENT, "Accept": _JSON_CONTENT},
                )
        except httpx.HTTPError as exc:
            raise KafkaError(
                f"schema registry {self.url} is unreachable ({type(exc).__name__}: {exc}); "
                "start it or fix schema_registry_url"
            ) from exc


class ConfluentEventCodec(EventCodec):
    """:class:`EventCodec` over the Schema Registry wire format (module docstring).

    Same guarantees as :class:`EventCodec`: ``encode`` raises only :class:`EncodeError`,
    ``decode`` only :class:`DecodeError` subclasses. Values in single-object framing are
    decoded too (with ``store``'s fingerprints).
    """

    __slots__ = ("_client", "_default_topic", "_fetch_lock", "_id_fps", "_topic_prefix", "_unknown")

    needs_prepare = True
    content_type = CONFLUENT_CONTENT_TYPE

    def __init__(
        self,
        client: SchemaRegistryClient,
        *,
        topic: str | None = None,
        store: AvroSchemaStore | None = None,
    ) -> None:
        super().__init__(store)
        self._client = client
        self._default_topic = topic
        self._topic_prefix: dict[str, bytes] = {}
        self._id_fps: dict[int, bytes] = {}
        self._unknown: LRUMap[int, bool] = LRUMap(_UNKNOWN_IDS_KEPT)
        self._fetch_lock = asyncio.Lock()

    @property
    def client(self) -> SchemaRegistryClient:
        """The registry client (its ``requests`` counts round trips)."""
        return self._client

    async def prepare_topic(self, topic: str) -> None:
        """Register the writer schema under ``<topic>-value``, once per topic."""
        if topic not in self._topic_prefix:
            schema_id = await self._client.register(subject_for(topic), SYSTEM_EVENT_SCHEMA)
            self._id_fps[schema_id] = self.fingerprint
            self._topic_prefix[topic] = CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")

    def is_prepared(self, topic: str) -> bool:
        """Whether ``encode_for`` can write to ``topic`` without ``prepare_topic`` first."""
        return topic in self._topic_prefix

    async def prepare(self, value: bytes | None) -> None:
        """Make ``value``'s writer schema known, fetching it on a cache miss only."""
        if value is None or value[:1] != CONFLUENT_MAGIC or len(value) < CONFLUENT_HEADER_SIZE:
            return
        schema_id = int.from_bytes(value[1:CONFLUENT_HEADER_SIZE], "big")
        if schema_id in self._id_fps or schema_id in self._unknown:
            return
        async with self._fetch_lock:  # one fetch per id even when partitions race
            if schema_id in self._id_fps or schema_id in self._unknown:
                return
            text = await self._client.schema(schema_id)
            if text is None:
                self._unknown.put(schema_id, True)
                return
            try:
                self._id_fps[schema_id] = self.store.register(text)
            except ConfigError:
                self._unknown.put(schema_id, True)

    def encode(self, event: SystemEvent) -> bytes:
        """Encode for the codec's default topic (see :meth:`encode_for`)."""
        if self._default_topic is None:
            raise EncodeError("this ConfluentEventCodec has no default topic; use encode_for")
        return self.encode_for(event, self._default_topic)

    def encode_for(self, event: SystemEvent, topic: str) -> bytes:
        """``00`` + the schema id registered for ``topic`` + the Avro body."""
        prefix = self._topic_prefix.get(topic)
        if prefix is None:
            raise EncodeError(
                f"no schema id for topic {topic!r} yet; await codec.prepare_topic({topic!r}) "
                "before encoding (the producer does this on start)"
            )
        return self._avro.encode(self.to_record(event), prefix=prefix)

    def decode(self, data: bytes) -> SystemEvent:
        """The event in ``data``, in either framing; raises a :class:`DecodeError` subclass."""
        if data[:1] != CONFLUENT_MAGIC:
            return super().decode(data)
        if len(data) < CONFLUENT_HEADER_SIZE:
            raise MalformedEventError(
                f"value is {len(data)} bytes, shorter than the 5-byte Schema Registry header"
            )
        schema_id = int.from_bytes(data[1:CONFLUENT_HEADER_SIZE], "big")
        fp = self._id_fps.get(schema_id)
        if fp is None:
            raise UnknownSchemaError(self._unknown_message(schema_id))
        record = self._avro.decode_body(data, CONFLUENT_HEADER_SIZE, fp)
        return self.from_record(record, trusted=fp == self.fingerprint)

    def _unknown_message(self, schema_id: int) -> str:
        if schema_id in self._unknown:
            return (
                f"schema id {schema_id} is not registered in {self._client.url} (or is not an "
                "Avro record schema); the record was written against another registry"
            )
        return f"schema id {schema_id} was not resolved; await codec.prepare(value) before decode"


def make_event_codec(
    value_format: ValueFormat = "avro",
    schema_registry_url: str | None = None,
    *,
    topic: str | None = None,
    store: AvroSchemaStore | None = None,
) -> EventCodec:
    """The event codec for a value format: the one place producers and consumers get it."""
    if value_format == "avro":
        return EventCodec(store)
    if not schema_registry_url:
        raise ConfigError("value_format='confluent' needs schema_registry_url")
    return ConfluentEventCodec(SchemaRegistryClient(schema_registry_url), topic=topic, store=store)
