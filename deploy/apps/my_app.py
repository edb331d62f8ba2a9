"""An App of your own, as deploy/k8s/components/app runs it: ``agent-events run my_app:app``.

Replace it with your module (or bake your package into the image); the App's name names its
consumer group, agent-events-billing, which the component's ScaledObject scales on.
"""

from agent_events import App, EventType, SystemEvent

app = App("billing", max_retries=5, ordering="key")


@app.handler(EventType.AGENT_COMPLETED)
async def charge(event: SystemEvent) -> int:
    """One cent per 100 ms of an agent's run (what a billing service would write down)."""
    return (event.execution_time_ms or 0) // 100
