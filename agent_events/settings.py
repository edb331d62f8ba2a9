"""Settings of the ``agent-events`` services, from flags, environment and a config file.

One precedence rule, highest first::

    command-line flags  >  environment  >  config file (--config)  >  defaults

"Environment" is the process environment, then a ``./.env`` file (a ``.env`` only
supplies variables the environment lacks). Variables are prefixed ``AGENT_EVENTS_``
and nested sections use ``__``: ``AGENT_EVENTS_ALERTING__SLOW_THRESHOLD_MS=2000``.
The config file is TOML, YAML or a ``.env`` file with the same names (sections as
tables: ``[alerting]`` / ``slow_threshold_ms = 2000``), read by pydantic-settings' own
sources (``TomlConfigSettingsSource``, ``YamlConfigSettingsSource``, ``DotEnvSettingsSource``).

Each setting is declared once: the connection fields are
:class:`~agent_events.transport.KafkaConnectionConfig`'s (inherited), the ``[producer]``
section is :class:`~agent_events.producers.config.ProducerTuning`, the base of
:class:`ProducerConfig`.

Kafka settings keep Kafka's own names (``bootstrap_servers``, ``security_protocol``,
``sasl_mechanism``, ``sasl_plain_username``, ``sasl_plain_password``, ``ssl_cafile``,
``group_id``, ``auto_offset_reset``). Everything is validated when loaded, including
the client configs built from it, so a bad value fails at start-up with one
:class:`ConfigError` line naming the setting, never deep inside a running service.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from agent_events.agent_runtime.errors import ConfigError
from agent_events.consumers.config import DEFAULT_DLQ_TOPIC, ConsumerConfig, ConsumerTuning
from agent_events.consumers.windows.config import SessionSettings, WindowSettings
from agent_events.producers.config import DEFAULT_TOPIC, ProducerConfig, ProducerTuning
from agent_events.schemas.registry import ValueFormatConfig
from agent_events.transport import KafkaConnectionConfig

__all__ = [
    "ENV_PREFIX",
    "NOT_SETTINGS",
    "AgentEventsSettings",
    "AlertingSettings",
    "ConsumerTuning",
    "ProducerTuning",
    "RouterSettings",
    "StoreSettings",
    "TracingSettings",
    "load_settings",
    "refuse_unknown_variables",
]

ENV_PREFIX = "AGENT_EVENTS_"
NESTED_DELIMITER = "__"

_Section = ConfigDict(extra="forbid", frozen=True)


class AlertingSettings(BaseModel):
    """The ``alerting`` service: what is slow, and where alerts go."""

    model_config = _Section

    slow_threshold_ms: float = Field(
        default=5000, ge=0, description="A completion slower than this alerts (warning)."
    )
    log: bool = Field(default=True, description="Write alerts to the structured log.")
    webhook_url: str | None = Field(
        default=None, description="POST each alert as JSON to this http(s) URL."
    )
    webhook_retries: int = Field(default=3, ge=0, description="Retries after a failed POST.")
    webhook_backoff_s: float = Field(default=0.5, ge=0)
    webhook_backoff_max_s: float = Field(default=10.0, ge=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("webhook_url")
    @classmethod
    def _http_only(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http:// or https:// URL")
        return url

    @model_validator(mode="after")
    def _check(self) -> AlertingSettings:
        if not self.log and self.webhook_url is None:
            raise ValueError("alerting needs a sink: keep log=true or set webhook_url")
        return self


class StoreSettings(BaseModel):
    """The ``store`` service: where events are kept (idempotent on ``event_id``)."""

    model_config = _Section

    url: str = Field(
        default="sqlite:///agent-events-store.db",
        description="sqlite:///relative.db, sqlite:////absolute.db or postgresql://user@host/db",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("store url must start with sqlite://, postgresql:// or postgres://")
        return url


class TracingSettings(BaseModel):
    """The ``tracing`` service: the SQLite file that keeps per-session timelines."""

    model_config = _Section

    path: Path = Path("agent-events-traces.db")


class RouterSettings(BaseModel):
    """The ``router`` service: user handlers as ``package.module:attribute`` paths."""

    model_config = _Section

    handlers: list[str] = Field(default_factory=list)


class AgentEventsSettings(BaseSettings, KafkaConnectionConfig, ValueFormatConfig):
    """Every setting of a service process; build client configs with the methods below.

    The Kafka connection settings (``bootstrap_servers``, ``security_protocol``, ...) are
    :class:`KafkaConnectionConfig`'s own fields, inherited, so they are declared once; so are
    ``value_format`` and ``schema_registry_url`` (:class:`ValueFormatConfig`), which every
    producer and consumer config built here carries.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    # -- Kafka, with Kafka's names: the connection fields come from KafkaConnectionConfig
    topic: str = Field(default=DEFAULT_TOPIC, min_length=1)
    dlq_topic: str | None = DEFAULT_DLQ_TOPIC
    group_id: str | None = Field(
        default=None, min_length=1, description="Default: agent-events-<service>."
    )

    # -- observability
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve /metrics and /healthz here (0: any)."
    )
    metrics_host: str = "127.0.0.1"
    lag_interval_s: float = Field(default=5.0, gt=0)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    report_interval_s: float = Field(
        default=30.0, gt=0, description="How often a service logs what it computed."
    )
    summary_file: Path | None = Field(
        default=None, description="Also write what the service computed here, as JSON."
    )

    # -- sections
    consumer: ConsumerTuning = ConsumerTuning()
    producer: ProducerTuning = ProducerTuning()
    alerting: AlertingSettings = AlertingSettings()
    store: StoreSettings = StoreSettings()
    tracing: TracingSettings = TracingSettings()
    router: RouterSettings = RouterSettings()
    aggregate: WindowSettings = WindowSettings()
    sessions: SessionSettings = SessionSettings()

    @model_validator(mode="after")
    def _client_configs_are_valid(self) -> AgentEventsSettings:
        # Build every client config once, so a bad combination fails at load time.
        try:
            self.consumer_config("settings-check")
            self.producer_config()
        except ValidationError as exc:
            raise ValueError(_first_error(exc)) from None
        self.connection().client_kwargs()  # SASL without a mechanism, unreadable SSL files
        return self

    def consumer_config(self, group_id: str, *, topics: list[str] | None = None) -> ConsumerConfig:
        """The consumer-group config of a service; ``group_id`` setting, if set, wins."""
        return ConsumerConfig(
            **self._connection_fields(),
            **self.consumer.model_dump(),
            topics=topics or [self.topic],
            group_id=self.group_id or group_id,
            dlq_topic=self.dlq_topic,
        )

    def producer_config(self) -> ProducerConfig:
        """The producer config for ``topic`` (idempotent, ``acks=all`` by default)."""
        return ProducerConfig(
            **self._connection_fields(), **self.producer.model_dump(), topic=self.topic
        )

    def _connection_fields(self) -> dict[str, Any]:
        names = [*KafkaConnectionConfig.model_fields, *ValueFormatConfig.model_fields]
        return {name: getattr(self, name) for name in names}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    *,
    dotenv: Path | None = Path(".env"),
) -> AgentEventsSettings:
    """Load and validate settings: ``flags`` > environment > ``dotenv`` > ``config_file`` > defaults.

    ``flags`` holds only what the user gave on the command line (nested sections as
    dicts: ``{"alerting": {"webhook_url": ...}}``); ``None`` values are dropped.
    Raises :class:`ConfigError` with one line naming the bad setting, or the
    config file that cannot be read.
    """
    given = _drop_none(dict(flags or {}))
    refuse_unknown_variables(os.environ)
    file_source = _config_file_source(config_file) if config_file is not None else None
    dotenv_file = dotenv if dotenv is not None and dotenv.is_file() else None

    class _Loading(AgentEventsSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources = [init_settings, env_settings]
            if dotenv_file is not None:
                sources.append(
                    DotEnvSettingsSource(
                        settings_cls, env_file=dotenv_file, dotenv_filtering="match_prefix"
                    )
                )
            if file_source is not None:
                sources.append(file_source(settings_cls))
            return tuple(sources)

    try:
        loaded = _Loading(**given)
    except ValidationError as exc:
        raise ConfigError(f"invalid setting: {_first_error(exc)}") from None
    except SettingsError as exc:  # a section given as a variable that is not JSON
        raise ConfigError(f"invalid setting: {_settings_error(exc)}") from None
    return AgentEventsSettings.model_construct(**dict(loaded))


# Variables with our prefix that are read elsewhere, not settings of a service.
NOT_SETTINGS: frozenset[str] = frozenset({"AGENT_EVENTS_CACHE_DIR"})


def refuse_unknown_variables(names: Iterable[str]) -> None:
    """Raise :class:`ConfigError` for an ``AGENT_EVENTS_*`` variable that names no setting.

    A misspelt variable (``AGENT_EVENTS_BOOTSTRAP_SERVER``) would otherwise be ignored and
    the service would quietly use the default; the same typo in a config file is refused,
    so the environment is held to the same rule.
    """
    for name in sorted(names):
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in NOT_SETTINGS:
            _check_variable(name)


def _check_variable(name: str) -> None:
    parts = name.upper()[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER)
    model: type[BaseModel] = AgentEventsSettings
    for depth, part in enumerate(parts):
        if part not in model.model_fields:
            known = [_variable_name([*parts[:depth], field]) for field in model.model_fields]
            close = difflib.get_close_matches(name.upper(), known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown setting {name}{hint}")
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            if depth + 1 < len(parts):
                raise ConfigError(f"unknown setting {name}: {part} has no sub-settings")
            return
        model = annotation


def _variable_name(parts: list[str]) -> str:
    return ENV_PREFIX + NESTED_DELIMITER.join(parts).upper()


def _settings_error(exc: SettingsError) -> str:
    match = re.search(r'field "([^"]+)"', str(exc))
    if match is None:
        return _one_line(str(exc))
    section = match.group(1)
    return (
        f"{_variable_name([section])} is not a JSON object; give one setting per variable "
        f"instead, e.g. {_variable_name([section, 'name'])}=value"
    )


# -- config files ------------------------------------------------------------------------

SourceFactory = Callable[[type[BaseSettings]], PydanticBaseSettingsSource]


def _config_file_source(path: Path) -> SourceFactory:
    """A factory ``settings_cls -> source`` for ``path``, by suffix (pydantic-settings' own)."""
    suffix = path.suffix.lower()
    name = path.name.lower()
    if not path.is_file():
        raise ConfigError(f"cannot read config file {path}: no such file")
    if suffix == ".toml":
        return lambda cls: _read_checked(path, lambda: TomlConfigSettingsSource(cls, path))
    if suffix in (".yaml", ".yml"):
        return lambda cls: _read_checked(path, lambda: YamlConfigSettingsSource(cls, path))
    if suffix == ".env" or name == ".env" or name.startswith(".env."):
        return lambda cls: DotEnvSettingsSource(cls, env_file=path, dotenv_filtering="match_prefix")
    raise ConfigError(
        f"config file {path}: unknown format {suffix or '(no suffix)'}; "
        "use .toml, .yaml, .yml or .env"
    )


def _read_checked(
    path: Path, build: Callable[[], PydanticBaseSettingsSource]
) -> PydanticBaseSettingsSource:
    """Build a file source (it reads the file now), turning a bad file into one ConfigError."""
    import yaml

    try:
        return build()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {_one_line(str(exc))}") from None
    except (TypeError, ValueError):  # the top level is a list or a scalar
        raise ConfigError(
            f"config file {path} must hold a table of settings at the top level"
        ) from None


# -- errors ------------------------------------------------------------------------------


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if value:
                kept[key] = value
        elif value is not None:
            kept[key] = value
    return kept


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _first_error(exc: ValidationError) -> str:
    """``name (AGENT_EVENTS_NAME): message, got 'value'`` for the first error, plus a count."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [str(part) for part in first["loc"] if not str(part).isdigit()]
    text = first["msg"].removeprefix("Value error, ")
    if loc:
        dotted = ".".join(loc)
        env = ENV_PREFIX + NESTED_DELIMITER.join(loc).upper()
        text = f"{dotted} ({env}): {text}"
        secret = any("password" in part for part in loc)
        value = first.get("input")
        if (
            first["type"] not in ("missing", "extra_forbidden")
            and not secret
            and not isinstance(value, dict)
        ):
            text += f", got {_short(value)}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return _one_line(text)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
