"""``App``: decorators that declare a service, run in process on an ``EventBus`` and wrapped
as a ``Service`` for ``agent-events run``; ``agent_events.services`` entry-point plugins."""

from __future__ import annotations

import asyncio
import logging
import sys
from enum import Enum
from pathlib import Path
from textwrap import dedent

import pytest

from agent_events import (
    App,
    ConfigError,
    EventBus,
    EventType,
    SubscriptionError,
    SystemEvent,
)
from agent_events.app import ConsumerTuningOptions
from agent_events.cli import main
from agent_events.consumers.config import ConsumerTuning
from agent_events.services import SERVICES, MetricsService, build_service
from agent_events.services.plugins import plugin_names
from agent_events.settings import AgentEventsSettings, load_settings


class Shipping(Enum):
    __event_namespace__ = "tests.app.shipping"
    SHIPPED = "shipped"
    LOST = "lost"


def event(event_type: Enum, agent: str = "a") -> SystemEvent:
    return SystemEvent(event_type=event_type, agent_id=agent, session_id="s")


# ---------------------------------------------------------------------- in process


async def test_each_handler_gets_only_its_event_types_and_any_gets_all() -> None:
    app = App("t")
    completed: list[str] = []
    every: list[str] = []
    shipped: list[str] = []

    @app.handler(EventType.AGENT_COMPLETED)
    async def on_completed(e: SystemEvent) -> None:
        completed.append(e.agent_id)

    @app.handler()
    def on_anything(e: SystemEvent) -> None:
        every.append(e.agent_id)

    @app.handler(Shipping.SHIPPED, Shipping.LOST)
    async def on_shipping(e: SystemEvent) -> None:
        shipped.append(e.agent_id)

    async with EventBus() as bus, app.on_bus(bus):
        await bus.publish(event(EventType.AGENT_STARTED, "1"))
        await bus.publish(event(EventType.AGENT_COMPLETED, "2"))
        await bus.publish(event(Shipping.SHIPPED, "3"))
        await bus.publish(event(Shipping.LOST, "4"))
        await bus.join()

    assert completed == ["2"]
    assert every == ["1", "2", "3", "4"]
    assert shipped == ["3", "4"]


def test_a_wrong_event_type_fails_at_decoration() -> None:
    app = App("t")
    with pytest.raises(SubscriptionError, match="needs an event type"):
        app.handler("agent_completed")(lambda e: None)  # type: ignore[arg-type]


async def test_the_decorated_function_is_returned_unchanged() -> None:
    app = App("t")

    async def handle(e: SystemEvent) -> str:
        return e.agent_id

    assert app.handler(EventType.ANY)(handle) is handle


async def test_hooks_wrap_the_subscriptions_and_leaving_drains_published_events() -> None:
    app = App("t")
    steps: list[str] = []

    @app.on_startup
    async def open_db() -> None:
        steps.append("startup")

    @app.on_shutdown
    def close_db() -> None:
        steps.append("shutdown")

    @app.handler(EventType.AGENT_COMPLETED)
    async def handle(e: SystemEvent) -> None:
        steps.append(f"handled {e.agent_id}")

    async with EventBus() as bus:
        async with app.on_bus(bus):
            assert bus.subscription_count == 1
            await bus.publish(event(EventType.AGENT_COMPLETED, "x"))
        assert bus.subscription_count == 0

    assert steps == ["startup", "handled x", "shutdown"]


async def test_a_failing_startup_hook_is_one_config_error_and_subscribes_nothing() -> None:
    app = App("t")

    @app.on_startup
    def broken() -> None:
        raise OSError("database down")

    app.handler()(lambda e: None)
    async with EventBus() as bus:
        with pytest.raises(
            ConfigError, match=r"startup hook .*broken raised OSError: database down"
        ):
            async with app.on_bus(bus):
                pass
        assert bus.subscription_count == 0


async def test_every_shutdown_hook_runs_last_first_even_after_one_fails() -> None:
    app = App("t")
    ran: list[str] = []

    @app.on_shutdown
    def first() -> None:
        ran.append("first")

    @app.on_shutdown
    def second() -> None:
        ran.append("second")
        raise RuntimeError("boom")

    with pytest.raises(ConfigError, match=r"shutdown hook .*second raised RuntimeError"):
        await app.shutdown()
    assert ran == ["second", "first"]


async def test_a_sink_receives_each_non_none_result_with_its_event() -> None:
    app = App("t")
    sunk: list[tuple[str, object]] = []

    @app.handler(EventType.AGENT_COMPLETED)
    async def price(e: SystemEvent) -> int | None:
        return None if e.agent_id == "free" else 42

    @app.sink
    async def record(e: SystemEvent, result: object) -> None:
        sunk.append((e.agent_id, result))

    async with EventBus() as bus, app.on_bus(bus):
        await bus.publish(event(EventType.AGENT_COMPLETED, "paid"))
        await bus.publish(event(EventType.AGENT_COMPLETED, "free"))
        await bus.join()

    assert sunk == [("paid", 42)]


async def test_a_failing_sink_fails_its_handler_under_the_handlers_name() -> None:
    app = App("t")

    @app.handler(EventType.AGENT_COMPLETED)
    def price(e: SystemEvent) -> int:
        return 1

    @app.sink
    async def broken(e: SystemEvent, result: object) -> None:
        raise RuntimeError("sink down")

    async with EventBus() as bus, app.on_bus(bus):
        result = await bus.dispatch(event(EventType.AGENT_COMPLETED))

    assert [(o.handler_name, repr(o.error)) for o in result.outcomes] == [
        ("test_a_failing_sink_fails_its_handler_under_the_handlers_name.<locals>.price",
         "RuntimeError('sink down')")
    ]  # fmt: skip


async def test_the_apps_handler_timeout_applies_on_the_bus_too() -> None:
    app = App("t", handler_timeout_s=0.05)

    @app.handler(EventType.AGENT_COMPLETED)
    async def slow(e: SystemEvent) -> None:
        await asyncio.sleep(5)

    async with EventBus(handler_timeout=None) as bus, app.on_bus(bus):
        result = await bus.dispatch(event(EventType.AGENT_COMPLETED))

    assert type(result.outcomes[0].error).__name__ == "HandlerTimeout"


# ---------------------------------------------------------------------- as a service


def test_app_defaults_fill_in_only_what_the_settings_do_not_give() -> None:
    app = App(
        "billing",
        topic="billing.events",
        dlq_topic="billing.dlq",
        ordering="key",
        max_retries=7,
    )
    given = load_settings({"consumer": {"max_retries": 1}}, dotenv=None)

    service = app.build_service(given)
    config = service.settings.consumer_config(service.default_group)

    assert (config.topics, config.dlq_topic, config.group_id) == (
        ["billing.events"],
        "billing.dlq",
        "agent-events-billing",
    )
    assert (config.ordering, config.max_retries) == ("key", 1)


def test_a_topic_flag_overrides_the_apps_topic_and_group_id_setting_its_group() -> None:
    app = App("billing", topic="billing.events", group_id="billing-workers")
    service = app.build_service(load_settings({"topic": "other"}, dotenv=None))
    assert service.settings.topic == "other"
    assert service.default_group == "billing-workers"
    with_group = app.build_service(load_settings({"group_id": "mine"}, dotenv=None))
    assert with_group.settings.consumer_config(with_group.default_group).group_id == "mine"


def test_the_apps_tuning_options_are_exactly_the_consumer_settings() -> None:
    assert set(ConsumerTuningOptions.__annotations__) == set(ConsumerTuning.model_fields)


def test_a_bad_tuning_option_is_refused_when_the_app_is_declared() -> None:
    with pytest.raises(ConfigError, match="app 'x': max_retries: Input should be greater"):
        App("x", max_retries=-1)


def test_an_app_whose_dlq_is_its_input_is_refused_at_build() -> None:
    app = App("loop", topic="t", dlq_topic="t")
    with pytest.raises(ConfigError, match="app 'loop': invalid setting"):
        app.build_service(AgentEventsSettings())


async def test_the_service_is_named_for_the_app_and_runs_its_hooks() -> None:
    app = App("billing")
    ran: list[str] = []
    app.on_startup(lambda: ran.append("up"))
    app.on_shutdown(lambda: ran.append("down"))

    @app.handler(EventType.AGENT_COMPLETED)
    async def charge(e: SystemEvent) -> None: ...

    service = app.build_service(AgentEventsSettings())
    async with service:
        assert ran == ["up"]
    assert ran == ["up", "down"]
    assert service.name == "billing"
    assert service.handlers() == [(EventType.AGENT_COMPLETED, charge)]
    assert await service.summary() == {
        "app": "billing",
        "handlers": [
            "agent_completed -> "
            "test_the_service_is_named_for_the_app_and_runs_its_hooks.<locals>.charge"
        ],
    }


def test_an_app_without_handlers_refuses_to_consume() -> None:
    with pytest.raises(ConfigError, match="has no handlers"):
        App("empty").build_service(AgentEventsSettings()).handlers()


# ---------------------------------------------------------------------- agent-events run


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("no_colon_here", "app 'no_colon_here' is not package.module:attribute"),
        (
            "no_such_module_xyz:app",
            "app 'no_such_module_xyz:app': cannot import no_such_module_xyz",
        ),
        ("my_app_module:missing", "app 'my_app_module:missing': my_app_module has no missing"),
        ("my_app_module:not_an_app", "app 'my_app_module:not_an_app' is a int, not an App"),
    ],
)
def test_run_with_a_bad_target_says_why_in_one_line_and_exits_2(
    target: str,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "my_app_module.py").write_text("not_an_app = 3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    assert main(["run", target]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert says in err
    assert "Traceback" not in err


# ---------------------------------------------------------------------- plugins


def install_entry_points(site: Path, monkeypatch: pytest.MonkeyPatch, **points: str) -> None:
    """A distribution with ``agent_events.services`` entry points, as pip would leave it."""
    info = site / "sample_services-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sample-services\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in points.items())
    (info / "entry_points.txt").write_text(f"[agent_events.services]\n{lines}")
    monkeypatch.syspath_prepend(str(site))


PLUGIN_MODULE = dedent(
    """
    from agent_events import App, EventType
    from agent_events.services import MetricsService

    app = App("sample")

    @app.handler(EventType.AGENT_COMPLETED)
    async def handle(event):
        pass

    def build(settings, registry):
        return MetricsService(settings, registry)

    nothing = None
    """
)


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tests_app_plugin.py").write_text(PLUGIN_MODULE)
    install_entry_points(
        tmp_path,
        monkeypatch,
        sample_app="tests_app_plugin:app",
        sample_builder="tests_app_plugin:build",
        sample_nothing="tests_app_plugin:nothing",
        sample_broken="tests_app_plugin_missing:app",
        metrics="tests_app_plugin:app",
    )
    yield
    sys.modules.pop("tests_app_plugin", None)


@pytest.mark.usefixtures("plugins")
def test_a_plugin_app_is_built_as_its_service() -> None:
    service = build_service("sample_app", AgentEventsSettings())
    assert service.name == "sample"
    assert [event_type for event_type, _ in service.handlers()] == [EventType.AGENT_COMPLETED]


@pytest.mark.usefixtures("plugins")
def test_a_plugin_builder_is_called_with_the_settings() -> None:
    assert isinstance(build_service("sample_builder", AgentEventsSettings()), MetricsService)


@pytest.mark.usefixtures("plugins")
def test_a_builtin_name_wins_over_a_plugin_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        first = build_service("metrics", AgentEventsSettings())
        build_service("metrics", AgentEventsSettings())
    assert isinstance(first, MetricsService)
    assert [r.getMessage() for r in caplog.records].count(
        "a service plugin is also called 'metrics'; the built-in service runs, not the plugin"
    ) == 1


@pytest.mark.usefixtures("plugins")
def test_an_unknown_name_lists_the_builtin_services_and_the_plugins() -> None:
    with pytest.raises(ConfigError) as raised:
        build_service("nope", AgentEventsSettings())
    message = str(raised.value)
    assert all(name in message for name in SERVICES)
    assert message.endswith("plugins: sample_app, sample_broken, sample_builder, sample_nothing")
    assert "metrics" in plugin_names()


@pytest.mark.usefixtures("plugins")
@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("sample_broken", "service plugin 'sample_broken' (tests_app_plugin_missing:app): "
         "importing it raised ModuleNotFoundError"),
        ("sample_nothing", "service plugin 'sample_nothing' (tests_app_plugin:nothing) is NoneType"),
    ],
)  # fmt: skip
def test_a_plugin_that_is_not_a_service_is_a_config_error_naming_it(name: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build_service(name, AgentEventsSettings())
    assert str(raised.value).startswith(says)


@pytest.mark.usefixtures("plugins")
def test_consume_of_an_unknown_name_lists_the_plugins_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["consume", "nope"]) == 2
    assert "plugins: sample_app" in capsys.readouterr().err


def test_a_window_declares_reducers_from_decorated_functions() -> None:
    app = App("rates")

    @app.window("sliding:60s", grace="5s", key=["agent_id"], merge=lambda a, b: a + b)
    def tokens(total: int, event: SystemEvent) -> int:
        return total + int(event.metadata.get("tokens", 0))  # type: ignore[call-overload]

    app.window("sliding:60s", grace="5s", key=["agent_id"])  # the same window again: fine
    window = app.declared_window
    assert window is not None
    assert (window.section.window, window.section.key_fields) == ("sliding:60s", ("agent_id",))
    ((reducer),) = window.reducers
    assert (reducer.name, reducer.initial(), reducer.add) == ("tokens", 0, tokens)


def test_an_app_has_one_window_and_refuses_a_bad_one() -> None:
    app = App("rates")
    app.window("tumbling:60s")
    with pytest.raises(ConfigError, match="an app has one window"):
        app.window("tumbling:30s")
    with pytest.raises(ConfigError, match="window"):
        App("bad").window("weekly:1d")


async def test_an_app_with_a_window_refuses_the_bus_and_handlers_beside_it() -> None:
    app = App("rates")
    app.window("session:30m")
    async with EventBus() as bus:
        with pytest.raises(ConfigError, match="agent-events run"):
            async with app.on_bus(bus):
                pass

    @app.handler(EventType.AGENT_COMPLETED)
    async def handle(event: SystemEvent) -> None:
        return None

    service = app.build_service(load_settings({}, dotenv=None))
    with pytest.raises(ConfigError, match="two Apps"):
        service.handlers()
