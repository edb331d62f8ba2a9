"""The broker fixtures every integration test shares: the ``agent_events.broker.pytest_fixtures``
plugin, the same one users get from ``agent-events[testing]``.

``broker`` runs each test once per broker kind (``--broker-kinds kafka,tansu``), with
``broker_capabilities``, the ``needs(feature)`` marker, ``kafka_cluster`` (three nodes, started
only when used), ``topic_name`` and ``new_topic``. Tests under ``tests/integration`` are marked
``integration``. Naming the plugin here loads it when its entry point is not installed (a
source checkout); where it is, pytest sees the same name and loads it once.
"""

pytest_plugins = ["agent_events.broker.pytest_fixtures"]
