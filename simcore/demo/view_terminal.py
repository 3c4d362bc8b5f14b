"""The demo's live terminal view (rich): latest reading, P(rain) against observed rain, shadow versions,
messages routed, unrouted (no subscription) and dropped, spooler depth, and a progress bar over the replay.

On a terminal it redraws in place; when the output is not a terminal (CI, a pipe) it prints one plain
progress line every few seconds instead, so logs stay readable.
"""

from __future__ import annotations

import datetime
import time

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from simcore.demo.state import DemoState

PLAIN_LINE_EVERY_S = 5.0
WIDE_TERMINAL = 200  # columns from which the four panels sit side by side


def _utc(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%MZ")


def _number(value: float | None, unit: str, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f} {unit}"


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def rain_bar(p_rain: float, width: int = 12) -> str:
    """P(rain) as a bar of `width` cells."""
    filled = round(max(0.0, min(1.0, p_rain)) * width)
    return "█" * filled + "░" * (width - filled)


class TerminalView:
    """Draws a `DemoState` on a rich console; call `update()` as often as you like, `close()` at the end."""

    def __init__(self, state: DemoState, title: str, console: Console | None = None, web_url: str | None = None):
        self.state = state
        self.title = title
        self.web_url = web_url
        self.console = console or Console()
        self.progress = Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
                                 TimeElapsedColumn(), console=self.console)
        self.task = self.progress.add_task("replay", total=state.total_records)
        self.live: Live | None = None
        self._last_plain_line = 0.0

    def open(self) -> None:
        """Start drawing."""
        if self.console.is_terminal:
            self.live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self.live.start()
        else:
            self.console.print(f"{self.title}" + (f"; web view on {self.web_url}" if self.web_url else ""))

    def update(self) -> None:
        """Redraw from the state (a plain line at most every few seconds when not on a terminal)."""
        if self.live is not None:
            self.live.update(self.render())
            return
        now = time.monotonic()
        if now - self._last_plain_line >= PLAIN_LINE_EVERY_S:
            self._last_plain_line = now
            self.console.print(self.plain_line())

    def close(self) -> None:
        """Stop drawing (the last frame stays on screen)."""
        if self.live is not None:
            self.live.update(self.render())
            self.live.stop()
            self.live = None

    def plain_line(self) -> str:
        """One line of progress for non-terminal output."""
        progress = self.state.progress()
        snapshot_core = self.state.latest()["core"]
        return (f"replay {progress['records_done']}/{progress['total_records']} records; "
                f"{progress['readings_written']} readings written, {progress['predictions_received']} predictions "
                f"received; routed {_or_dash(snapshot_core['routed'])}, unrouted (no subscription) "
                f"{_or_dash(snapshot_core['unrouted_no_subscription'])}, dropped {_or_dash(snapshot_core['dropped'])}, "
                f"spooled {_or_dash(snapshot_core['spooled'])}")

    def render(self) -> Group:
        """The whole frame."""
        snapshot = self.state.latest()
        progress = snapshot["progress"]
        self.progress.update(self.task, completed=progress["records_done"])
        return Group(
            Text(self.title + (f"   web: {self.web_url}" if self.web_url else ""), style="bold"),
            self.progress,
            self._panels(snapshot),
        )

    def _panels(self, snapshot: dict) -> Table:
        panels = [self._reading_panel(snapshot), self._prediction_panel(snapshot),
                  self._confusion_panel(snapshot), self._core_panel(snapshot)]
        # Four across on a wide terminal, two by two on a narrow one.
        columns = 4 if self.console.width >= WIDE_TERMINAL else 2
        grid = Table.grid(padding=(0, 1), expand=True)
        for _ in range(columns):
            grid.add_column(ratio=1)
        for start in range(0, len(panels), columns):
            grid.add_row(*panels[start:start + columns])
        return grid

    @staticmethod
    def _reading_panel(snapshot: dict) -> Panel:
        table = Table.grid(padding=(0, 1))
        reading = snapshot["latest_reading"] or {}
        table.add_row("time", _utc(reading.get("ts")))
        table.add_row("seq", _or_dash(reading.get("seq")))
        table.add_row("temperature", _number(reading.get("temperature"), "°C"))
        table.add_row("humidity", _number(reading.get("humidity"), "%RH"))
        table.add_row("pressure", _number(reading.get("pressure"), "hPa"))
        table.add_row("tendency 3 h", _number(reading.get("pressure_tendency_3h"), "hPa"))
        table.add_row("sensor", _or_dash(snapshot["sensor"].get("status")))
        return Panel(table, title="latest reading")

    @staticmethod
    def _prediction_panel(snapshot: dict) -> Panel:
        table = Table.grid(padding=(0, 1))
        prediction = snapshot["latest_prediction"]
        if prediction:
            p_rain = prediction["p_rain"]
            style = "bold blue" if prediction["raining"] else "green"
            table.add_row("P(rain)", Text(f"{p_rain:.3f} {rain_bar(p_rain)}", style=style))
            table.add_row("threshold", f"{prediction['threshold']:.3f}")
            table.add_row("predicted", "rain" if prediction["raining"] else "dry")
            observed = prediction.get("observed_rain")
            table.add_row("observed", "-" if observed is None else ("rain" if observed else "dry"))
            table.add_row("latency", _number((prediction.get("latency_us") or 0) / 1000.0, "ms", 2))
        else:
            table.add_row("P(rain)", "waiting for the first prediction")
        return Panel(table, title="prediction")

    @staticmethod
    def _confusion_panel(snapshot: dict) -> Panel:
        counts = snapshot["confusion"]
        matrix = Table(show_edge=False, pad_edge=False)
        matrix.add_column("")
        matrix.add_column("obs. rain", justify="right")
        matrix.add_column("obs. dry", justify="right")
        matrix.add_row("pred. rain", str(counts["tp"]), str(counts["fp"]))
        matrix.add_row("pred. dry", str(counts["fn"]), str(counts["tn"]))
        return Panel(matrix, title="running confusion")

    @staticmethod
    def _core_panel(snapshot: dict) -> Panel:
        table = Table.grid(padding=(0, 1))
        shadow, core, progress = snapshot["shadow"], snapshot["core"], snapshot["progress"]
        table.add_row("shadow version", f"local {_or_dash(shadow['local_version'])} · "
                                        f"cloud {_or_dash(shadow['cloud_version'])}")
        table.add_row("readings written", str(progress["readings_written"]))
        table.add_row("predictions (cloud)", str(progress["predictions_received"]))
        table.add_row("routed", _or_dash(core["routed"]))
        # Shadow outcome topics nobody subscribed to (e.g. update/accepted) are not a loss: shown apart.
        table.add_row("unrouted: no subscription", _or_dash(core["unrouted_no_subscription"]))
        table.add_row("dropped: unmatched", _or_dash(core["dropped_unmatched"]))
        table.add_row("dropped: queue full", _or_dash(core["dropped_queue_full"]))
        table.add_row("cloud link", _or_dash(core["cloud_state"]))
        table.add_row("spooler depth", _or_dash(core["spooled"]))
        table.add_row("shadow syncs", f"{_or_dash(core['syncs'])} ({_or_dash(core['sync_failures'])} failed)")
        return Panel(table, title="core")
