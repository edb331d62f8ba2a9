"""Tables, target checks and the plot for :mod:`bench.inprocess` results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from bench._inprocess_contenders import CONTENDERS, FLOOR, FLOOR_ONE, FLOORS, OURS, OURS_METRICS

if TYPE_CHECKING:
    from bench.inprocess import Results, Spread

__all__ = ["check_targets", "plot_throughput", "print_report"]

FLOOR_SHARE_TARGET = 0.70
RIVALS = ("bubus", "pyee AsyncIOEventEmitter")


def _rate(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e5:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def _us(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value >= 1e4:
        return f"{value / 1e3:,.0f} ms"
    return f"{value:,.0f} µs" if value >= 10 else f"{value:.1f} µs"


def _spread(spread: Spread, unit: str = "rate") -> str:
    show = _us if unit == "us" else _rate
    if len(spread.samples) == 1:
        return show(spread.median)
    return f"{show(spread.median)} ({show(spread.low)}–{show(spread.high)})"


def _ratio(value: float, floor: float) -> str:
    if math.isnan(value) or math.isnan(floor) or floor == 0:
        return "-"
    return f"{value / floor:.2f}x"


def _console() -> Console:
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)  # a pipe gets whole rows, one per line
    return console


def print_report(results: Results) -> None:
    """Print every table, then the targets and whether each is met."""
    console = _console()
    m = results.machine
    s = results.settings
    console.print(
        f"[bold]In-process bus benchmark[/bold]  {m['cpu']}, {m['cores']} cores, {m['python']}, "
        f"{m['os']}\ncontenders: {m['versions']}\n"
        f"load average (1/5/15 min): {m.get('load_start', '?')} at start, "
        f"{m.get('load_end', '?')} at end\n"
        f"{s.repeats} repeats per figure, shown as median (min–max); ratios are medians "
        f"against the {FLOOR}. Queue bound 10,000 per subscriber."
    )
    names = [c.name for c in CONTENDERS]
    notes = {c.name: c.notes for c in CONTENDERS}

    table = Table(title="publish -> delivery throughput, events/s (async no-op handlers)")
    table.add_column("bus", no_wrap=True)
    table.add_column("events", justify="right")
    for n in (1, 4, 16):
        table.add_column(f"{n} subscriber{'s' if n > 1 else ''}", justify="right")
        table.add_column("vs floor", justify="right")
    floor = results.throughput.get(FLOOR, {})
    for name in names:
        if name in results.unavailable:
            table.add_row(name, results.unavailable[name], *["-"] * 6)
            continue
        cells: list[str] = []
        for n, spread in results.throughput[name].items():
            base = floor[n].median if n in floor else math.nan
            cells += [_spread(spread), _ratio(spread.median, base)]
        table.add_row(name, f"{results.events_used[name]:,}", *cells)
    console.print(table)
    _print_round_ratios(console, results)

    table = Table(
        title=f"publish -> handler start latency at {s.latency_rate:,.0f} events/s for "
        f"{s.latency_duration_s:g} s, 4 subscribers"
    )
    for column in ("bus", "p50", "p99", "p50 vs floor", "sent / planned"):
        table.add_column(column, justify="left" if column == "bus" else "right", no_wrap=True)
    floor_p50 = results.latency_p50[FLOOR].median if FLOOR in results.latency_p50 else math.nan
    for name in names:
        if name in results.unavailable:
            table.add_row(name, "-", "-", "-", "-")
            continue
        sent, planned = results.latency_sent[name]
        table.add_row(
            name,
            _spread(results.latency_p50[name], "us"),
            _spread(results.latency_p99[name], "us"),
            _ratio(results.latency_p50[name].median, floor_p50),
            f"{sent:,} / {planned:,}" + ("" if sent == planned else " (cannot keep the rate)"),
        )
    console.print(table)

    table = Table(
        title="publish from another thread (publish_sync or the bus's hand-off), 4 subscribers"
    )
    for column in ("bus", "events", "events/s", "vs floor", "how"):
        table.add_column(column, justify="left" if column in ("bus", "how") else "right")
    floor_thread = results.thread[FLOOR].median if FLOOR in results.thread else math.nan
    hand_off = {
        OURS: "publish_sync",
        OURS_METRICS: "publish_sync",
        FLOOR: "call_soon_threadsafe + wait",
        "pyee AsyncIOEventEmitter": "call_soon_threadsafe + wait",
    }
    for name in names:
        if name in results.unavailable:
            table.add_row(name, "-", "-", "-", "-")
            continue
        table.add_row(
            name,
            f"{results.thread_events_used[name]:,}",
            _spread(results.thread[name]),
            _ratio(results.thread[name].median, floor_thread),
            hand_off.get(name, "run_coroutine_threadsafe(publish) + wait"),
        )
    console.print(table)

    table = Table(
        title=f"memory per queued event (tracemalloc), 4 blocked subscribers, "
        f"{s.per_event_offered:,} events offered without waiting"
    )
    for column in ("bus", "accepted", "retained", "bytes / event", "note"):
        table.add_column(column, justify="left" if column in ("bus", "note") else "right")
    for name in names:
        run = results.memory_per_event.get(name)
        if name in results.unavailable or run is None:
            why = results.unavailable.get(name, "no queue: the publisher waits for receivers")
            table.add_row(name, "-", "-", "-", why)
            continue
        table.add_row(
            name,
            f"{run.accepted:,}",
            f"{run.retained_bytes / 1024:,.0f} KiB",
            f"{run.per_event:,.0f}",
            notes.get(name, ""),
        )
    console.print(table)

    table = Table(
        title=f"memory with the queue full: 1 blocked subscriber, bound {s.memory_bound:,}, "
        "events offered as fast as possible (accepted / retained)"
    )
    table.add_column("bus")
    for offered in s.memory_offered:
        table.add_column(f"{offered:,} offered", justify="right")
    for name, runs in results.memory_bounded.items():
        table.add_row(name, *(f"{r.accepted:,} / {r.retained_bytes / 1024:,.0f} KiB" for r in runs))
    console.print(table)

    console.print("[bold]Targets[/bold]")
    for line in check_targets(results):
        console.print(f"  {line}")
    for name, why in results.unavailable.items():
        console.print(f"  [yellow]{name}: {why}[/yellow]")


def _print_round_ratios(console: Console, results: Results) -> None:
    """Throughput / floor, round by round, as median (min–max), against both floors."""
    table = Table(
        title="throughput vs each floor, per interleaved round: median (min–max) of the "
        "round ratios"
    )
    table.add_column("bus", no_wrap=True)
    table.add_column("floor", no_wrap=True)
    for n in (1, 4, 16):
        table.add_column(f"{n} subscriber{'s' if n > 1 else ''}", justify="right")
    for name in results.throughput:
        if name in FLOORS:
            continue
        for floor in FLOORS:
            if floor not in results.throughput:
                continue
            cells = []
            for n in (1, 4, 16):
                spread = results.round_ratios(name, floor, n)
                cells.append(
                    f"{spread.median:.2f}x ({spread.low:.2f}–{spread.high:.2f})"
                    if spread.samples
                    else "-"
                )
            table.add_row(name, floor, *cells)
    console.print(table)


def check_targets(results: Results) -> list[str]:
    """One line per target: MET or MISSED, with the figures behind it."""
    lines: list[str] = []
    for n in (4, 16):
        ratios = results.round_ratios(OURS, FLOOR_ONE, n)
        if ratios.samples:
            verdict = "MET" if ratios.median >= FLOOR_SHARE_TARGET else "MISSED"
            lines.append(
                f"{verdict}: {n} subscribers at {ratios.median:.2f}x (rounds "
                f"{ratios.low:.2f}–{ratios.high:.2f}) of the {FLOOR_ONE} floor "
                f"(target >= {FLOOR_SHARE_TARGET:.2f}x)"
            )
    if OURS in results.throughput and FLOOR in results.throughput:
        share = results.throughput[OURS][4].median / results.throughput[FLOOR][4].median
        verdict = "MET" if share >= FLOOR_SHARE_TARGET else "MISSED"
        lines.append(
            f"{verdict}: 4 subscribers at {share:.0%} of the asyncio.Queue floor "
            f"(target >= {FLOOR_SHARE_TARGET:.0%})"
        )
    behind: list[str] = []
    compared = 0
    for ours in (OURS, OURS_METRICS):
        if ours not in results.throughput:
            continue
        for rival in RIVALS:
            if rival not in results.throughput:
                continue
            for n, spread in results.throughput[ours].items():
                compared += 1
                if spread.median <= results.throughput[rival][n].median:
                    behind.append(f"{ours} x{n} throughput vs {rival}")
            for label, table in (("p50", results.latency_p50), ("p99", results.latency_p99)):
                compared += 1
                if table[ours].median >= table[rival].median:
                    behind.append(f"{ours} latency {label} vs {rival}")
            compared += 1
            if results.thread[ours].median <= results.thread[rival].median:
                behind.append(f"{ours} thread publish vs {rival}")
    if compared:
        if behind:
            lines.append(
                f"MISSED: ahead of bubus and pyee on every row; behind on: {'; '.join(behind)}"
            )
        else:
            lines.append(f"MET: ahead of bubus and pyee on every row ({compared} comparisons)")
    runs = results.memory_bounded.get(OURS, [])
    bound = results.settings.memory_bound
    full = [r for r in runs if r.offered >= bound]
    if full:
        low, high = min(r.retained_bytes for r in full), max(r.retained_bytes for r in full)
        bounded = all(r.accepted <= bound for r in full) and high <= low * 1.10
        verdict = "MET" if bounded else "MISSED"
        lines.append(
            f"{verdict}: memory bounded by max_queue_size: {min(r.offered for r in full):,} to "
            f"{max(r.offered for r in full):,} events offered keep {low / 1024:,.0f}-"
            f"{high / 1024:,.0f} KiB ({bound:,} queued at most)"
        )
    return lines


def plot_throughput(results: Results, path: Path) -> None:
    """Grouped bars: events/s per subscriber count, median with min-max whiskers, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in results.throughput]
    counts = (1, 4, 16)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=120)
    for i, name in enumerate(names):
        spreads = [results.throughput[name][n] for n in counts]
        medians = [s.median for s in spreads]
        errors = [
            [s.median - s.low for s in spreads],
            [s.high - s.median for s in spreads],
        ]
        xs = [k + (i - (len(names) - 1) / 2) * width for k in range(len(counts))]
        ax.bar(xs, medians, width, yerr=errors, capsize=3, label=name)
    if FLOOR in results.throughput:
        target = results.throughput[FLOOR][4].median * FLOOR_SHARE_TARGET
        ax.hlines(target, 0.6, 1.4, colors="black", linestyles="dashed", linewidth=1)
        ax.annotate(
            f"{FLOOR_SHARE_TARGET:.0%} of the floor",
            (1.4, target),
            textcoords="offset points",
            xytext=(4, -3),
            fontsize=8,
        )
    ax.set_yscale("log")
    ax.set_xticks(range(len(counts)), [f"{n} subscriber{'s' if n > 1 else ''}" for n in counts])
    ax.set_ylabel("events/s, publish -> all handlers done (log)")
    m = results.machine
    ax.set_title(
        f"In-process bus throughput, async no-op handlers\n{m['cpu']}, {m['cores']} cores, "
        f"{m['python']}; median of {results.settings.repeats}, whiskers min-max",
        fontsize=10,
    )
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
