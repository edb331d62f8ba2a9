"""Draws docs/img/windows_timeline.png: tumbling vs hopping vs sliding windows and late events.

The picture shows the moment the late event arrives: filled dots have been seen (the
watermark is the largest of them), hollow ones arrive later.

python docs/img/windows_timeline.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

OUT = Path(__file__).with_name("windows_timeline.png")
GRACE = 10
# (event time s, arrival order); the 11th arrives with event time 55 s after the watermark
# reached 118 s: too late for its window [0, 60) even with 10 s grace.
EVENTS = [5, 12, 21, 33, 47, 58, 66, 71, 96, 118, 55, 104, 131, 150, 163]
LATE = {55}
WATERMARK = 118


def bar(ax: plt.Axes, y: float, start: float, end: float, color: str, label: str = "") -> None:
    ax.add_patch(Rectangle((start, y - 0.32), end - start, 0.64, color=color, alpha=0.55, lw=0))
    ax.add_patch(Rectangle((end, y - 0.32), GRACE, 0.64, fill=False, hatch="///", ec=color, lw=0.6))
    if label:
        ax.text((start + end) / 2, y, label, ha="center", va="center", fontsize=7)


def main() -> None:
    fig, ax = plt.subplots(figsize=(11, 6.2), dpi=130)
    rows = {"events": 9.0, "tumbling 60s": 7.9, "hopping 60s/20s": 6.4, "sliding 60s": 3.6}
    y = rows["events"]
    for t in EVENTS:
        late = t in LATE
        marker, color = ("x", "crimson") if late else ("o", "black")
        hollow = t > WATERMARK  # arrives after the late event: drawn as not yet seen
        ax.plot(t, y, marker, color=color, ms=8 if late else 5, mfc="none" if hollow else color)
    ax.annotate(
        "late: event time 55 s, arrives after the watermark reached 118 s;\n"
        "its window [0, 60) closed at 70 s: counted, sent to the side topic",
        xy=(55, y), xytext=(-40, y + 0.55), fontsize=7.5, color="crimson",
        arrowprops={"arrowstyle": "->", "color": "crimson"},
    )  # fmt: skip
    for i, start in enumerate(range(0, 180, 60)):
        bar(ax, rows["tumbling 60s"], start, start + 60, f"C{i}", f"[{start}, {start + 60})")
    for i, start in enumerate(range(-40, 180, 20)):
        lane = rows["hopping 60s/20s"] + 0.42 * (1 - i % 3)
        color = f"C{i % 6}"
        ax.add_patch(Rectangle((start, lane - 0.15), 60, 0.3, color=color, alpha=0.5, lw=0))
        ax.add_patch(
            Rectangle(
                (start + 60, lane - 0.15), GRACE, 0.3, fill=False, hatch="///", ec=color, lw=0.5
            )
        )
    ax.text(
        -40,
        rows["hopping 60s/20s"] - 0.8,
        "a new 60 s window every 20 s: each event is in 3",
        fontsize=7.5,
    )
    on_time = [t for t in EVENTS if t not in LATE][-7:]
    for i, t in enumerate(on_time):
        lane = rows["sliding 60s"] + 1.2 - 0.4 * i
        color = f"C{i}"
        ax.add_patch(Rectangle((t - 60, lane - 0.13), 60, 0.26, color=color, alpha=0.5, lw=0))
        ax.add_patch(
            Rectangle((t, lane - 0.13), GRACE, 0.26, fill=False, hatch="///", ec=color, lw=0.5)
        )
        ax.plot([t, t], [lane, rows["events"] - 0.15], color=color, lw=0.4, ls=":")
    ax.text(
        -40,
        rows["sliding 60s"] - 1.65,
        "one window per event time t of a key: (t - 60 s, t]",
        fontsize=7.5,
    )
    ax.axvline(WATERMARK, color="grey", ls="--", lw=1)
    ax.axvline(WATERMARK - GRACE, color="grey", ls=":", lw=1)
    ax.text(WATERMARK + 1, 0.9, "watermark: largest\nevent time seen", fontsize=7.5, color="grey")
    ax.text(
        WATERMARK - GRACE - 1, 0.9, "windows ending at or before\nwatermark - grace: closed, emitted",
        fontsize=7.5, color="grey", ha="right",
    )  # fmt: skip
    ax.set_yticks(list(rows.values()), list(rows))
    ax.set_xlim(-42, 185)
    ax.set_ylim(0.5, 10.2)
    ax.set_xlabel("event time (s)")
    ax.set_title(
        "Windows on event time (hatched: 10 s grace, while late events may still join)",
        fontsize=10,
    )
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(OUT)


if __name__ == "__main__":
    main()
