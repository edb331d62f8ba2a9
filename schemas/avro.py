"""Avro single-object framing and the store of known writer schemas.

Every value on our topics is framed as the Avro specification's *single-object
encoding*::

    C3 01 | CRC-64-AVRO fingerprint of the writer schema (8 bytes, little-endian) | body

The fingerprint is taken over the writer schema's Parsing Canonical Form, so any
Avro library in any language computes the same eight bytes. A reader looks the
fingerprint up in an :class:`AvroSchemaStore` and resolves that writer schema against
its own reader schema, so producers on an older or newer schema and consumers on
another one coexist during a rolling upgrade.

This module knows nothing about events: :class:`SingleObjectCodec` turns dict
records into bytes and back for any record schema (events, window aggregates).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any, Final, TypeAlias, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException, to_parsing_canonical_form
from fastavro.schema import fingerprint as _fastavro_fingerprint

from agent_events.agent_runtime.errors import (
    ConfigError,
    DecodeError,
    EncodeError,
    MalformedEventError,
    UnknownSchemaError,
)

__all__ = [
    "FINGERPRINT_SIZE",
    "HEADER_SIZE",
    "SINGLE_OBJECT_MAGIC",
    "AvroSchemaStore",
    "ParsedSchema",
    "SingleObjectCodec",
    "load_schema",
    "schema_fingerprint",
]

SINGLE_OBJECT_MAGIC: Final = b"\xc3\x01"
FINGERPRINT_SIZE: Final = 8
HEADER_SIZE: Final = len(SINGLE_OBJECT_MAGIC) + FINGERPRINT_SIZE

ParsedSchema: TypeAlias = dict[str, Any]
"""A record schema as returned by ``fastavro.parse_schema`` (parse once, reuse)."""

SchemaSource: TypeAlias = Mapping[str, Any] | str
"""A record schema as a JSON-like mapping or as JSON text."""


def load_schema(name: str) -> dict[str, Any]:
    """Read ``schemas/<name>.avsc`` from the installed package (package data)."""
    text = resources.files(__package__ or "schemas").joinpath(f"{name}.avsc").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _as_mapping(schema: SchemaSource) -> dict[str, Any]:
    try:
        raw = json.loads(schema) if isinstance(schema, str) else dict(schema)
    except ValueError as exc:
        raise ConfigError(f"schema is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise ConfigError("a single-object schema must be an Avro record schema")
    # A schema parsed by fastavro carries private keys; keep the source form only.
    return {k: v for k, v in raw.items() if not k.startswith("__fastavro")}


def schema_fingerprint(schema: SchemaSource) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of ``schema``, little-endian as on the wire.

    fastavro already returns the little-endian byte order that the Java
    implementation and the single-object framing use, as hex.
    """
    canonical = to_parsing_canonical_form(_as_mapping(schema))
    return bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))


class AvroSchemaStore:
    """Known writer schemas by fingerprint, each parsed once.

    Register every schema version a reader may meet (the current one and older
    ones still in flight). Registration is idempotent and thread-safe; lookups are
    plain dict reads on the hot path.
    """

    def __init__(self, schemas: Iterable[SchemaSource] = ()) -> None:
        self._lock = threading.Lock()
        self._parsed: dict[bytes, ParsedSchema] = {}
        for schema in schemas:
            self.register(schema)

    def register(self, schema: SchemaSource) -> bytes:
        """Parse and remember ``schema``; returns its fingerprint.

        Raises :class:`ConfigError` when the schema is not a valid Avro record schema.
        """
        source = _as_mapping(schema)
        try:
            fp = schema_fingerprint(source)
            if fp in self._parsed:
                return fp
            # A fresh namespace of named types per schema: two versions of one record
            # share a name and must not collide.
            parsed = cast(ParsedSchema, parse_schema(source, named_schemas={}))
        except (SchemaParseException, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"schema {source.get('name')!r} is not valid Avro ({exc}); fix its .avsc"
            ) from exc
        with self._lock:
            self._parsed.setdefault(fp, parsed)
        return fp

    def get(self, fingerprint: bytes) -> ParsedSchema | None:
        """The parsed schema for ``fingerprint``, or ``None`` if it is not known."""
        return self._parsed.get(bytes(fingerprint))

    def parsed(self, fingerprint: bytes) -> ParsedSchema:
        """The parsed schema for ``fingerprint``; raises :class:`UnknownSchemaError`."""
        schema = self._parsed.get(bytes(fingerprint))
        if schema is None:
            raise _unknown_schema(bytes(fingerprint))
        return schema

    def __contains__(self, fingerprint: object) -> bool:
        return fingerprint in self._parsed

    def __len__(self) -> int:
        return len(self._parsed)

    def fingerprints(self) -> list[bytes]:
        """The fingerprints of every registered schema, in registration order."""
        return list(self._parsed)


def fingerprint_text(fp: bytes) -> str:
    """``fp`` as Java's ``SchemaNormalization.parsingFingerprint64`` prints it, for messages.

    The wire holds the fingerprint little-endian; Java tools show the 64-bit value, so an
    operator can match our message against ``avro-tools`` or a Java consumer's log.
    """
    value = int.from_bytes(fp, "little", signed=True)
    return f"{value & 0xFFFF_FFFF_FFFF_FFFF:#018x} (Java long {value})"


def _unknown_schema(fp: bytes) -> UnknownSchemaError:
    return UnknownSchemaError(
        f"writer schema fingerprint {fingerprint_text(fp)} is not known to this reader; "
        "upgrade this consumer or register the producer's schema in its AvroSchemaStore"
    )


class SingleObjectCodec:
    """Dict records <-> single-object-encoded bytes, for one reader/writer schema.

    ``encode`` writes with ``schema``. ``decode`` accepts bytes written with any
    schema in ``store`` and resolves them to ``reader_schema`` (default: ``schema``),
    with Avro's rules: fields the reader lacks are skipped, fields the writer lacked
    take the reader's default.

    Guarantees: ``encode`` raises only :class:`EncodeError`; ``decode`` raises only
    :class:`DecodeError` subclasses, for any input bytes, and never reads past them.
    """

    __slots__ = ("_fingerprint", "_header", "_reader", "_reader_fp", "_store", "_writer")

    def __init__(
        self,
        schema: SchemaSource,
        store: AvroSchemaStore | None = None,
        reader_schema: SchemaSource | None = None,
    ) -> None:
        self._store = store if store is not None else AvroSchemaStore()
        self._fingerprint = self._store.register(schema)
        self._writer = self._store.parsed(self._fingerprint)
        self._reader_fp = (
            self._fingerprint if reader_schema is None else self._store.register(reader_schema)
        )
        self._reader = self._store.parsed(self._reader_fp)
        self._header = SINGLE_OBJECT_MAGIC + self._fingerprint

    @property
    def fingerprint(self) -> bytes:
        """The fingerprint ``encode`` writes (the writer schema's)."""
        return self._fingerprint

    @property
    def reader_fingerprint(self) -> bytes:
        """The fingerprint of the schema ``decode`` resolves records to."""
        return self._reader_fp

    @property
    def store(self) -> AvroSchemaStore:
        """The writer schemas ``decode`` accepts."""
        return self._store

    def encode(self, record: Mapping[str, Any], *, prefix: bytes | None = None) -> bytes:
        """Frame and serialize ``record`` with the writer schema.

        ``prefix`` replaces the single-object header, for another framing of the same
        body (the Schema Registry wire format writes ``00`` + its schema id).
        """
        out = io.BytesIO()
        out.write(self._header if prefix is None else prefix)
        try:
            schemaless_writer(out, self._writer, record)
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
            # ValueError covers UnicodeEncodeError (lone surrogates in a string).
            raise EncodeError(
                f"record does not fit Avro schema {self._writer.get('name')!r}: "
                f"{type(exc).__name__}: {exc}; fix the offending field"
            ) from exc
        return out.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        """Parse single-object bytes into a record shaped by the reader schema."""
        return self.decode_body(data, HEADER_SIZE, self.writer_fingerprint(data))

    def decode_body(self, data: bytes, offset: int, writer_fp: bytes) -> dict[str, Any]:
        """Parse the Avro body at ``data[offset:]``, written with schema ``writer_fp``.

        The body decoding of :meth:`decode`, for framings that name the writer schema
        another way (the Schema Registry's id, resolved to a fingerprint in ``store``).
        """
        if writer_fp == self._reader_fp:
            writer, reader = self._reader, None
        else:
            writer, reader = self._store.parsed(writer_fp), self._reader
        src = io.BytesIO(data)
        src.seek(offset)
        try:
            record = cast(dict[str, Any], schemaless_reader(src, writer, reader))
        except SchemaResolutionError as exc:
            raise DecodeError(
                f"writer schema {fingerprint_text(writer_fp)} cannot be resolved to reader "
                f"schema {fingerprint_text(self._reader_fp)} ({exc}); the schemas are incompatible, "
                "evolve them only by adding fields with defaults"
            ) from exc
        except Exception as exc:
            # fastavro reports bad input with whatever its parsing hit (EOFError,
            # IndexError, UnicodeDecodeError, OverflowError, SchemaResolutionError...);
            # all of them mean the same to a consumer: these bytes are not a record.
            raise MalformedEventError(
                f"Avro body does not match writer schema {fingerprint_text(writer_fp)}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if src.tell() != len(data):
            raise MalformedEventError(
                f"{len(data) - src.tell()} trailing bytes after the Avro body; "
                "the value is corrupt or not single-object encoded"
            )
        return record

    @staticmethod
    def writer_fingerprint(data: bytes) -> bytes:
        """The writer fingerprint in ``data``'s header; raises :class:`MalformedEventError`."""
        if len(data) < HEADER_SIZE:
            raise MalformedEventError(
                f"value is {len(data)} bytes, shorter than the {HEADER_SIZE}-byte "
                "single-object header; it was truncated or is not an encoded record"
            )
        if data[:2] != SINGLE_OBJECT_MAGIC:
            hint = (
                " (a first byte 00 is the Schema Registry wire format: read it with "
                "value_format='confluent')"
                if data[:1] == b"\x00"
                else ""
            )
            raise MalformedEventError(
                f"value starts with {bytes(data[:2]).hex()}, not the Avro single-object "
                f"marker c301; it was written by another serializer{hint}"
            )
        return bytes(data[2:HEADER_SIZE])
