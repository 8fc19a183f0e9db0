"""How a load test shows that it is alive (issue 15 item 3): a rich progress bar on a terminal,
plain timestamped lines everywhere else (a CI log, a pipe, a file), so a log is never empty until
the end. Both count the same things; neither changes the run.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["PROGRESS_INTERVAL", "LoadProgress", "phase"]

PROGRESS_INTERVAL = 2.0
"""Seconds between plain progress lines (off a terminal)."""


def phase(console: Console, text: str) -> None:
    """One line naming the phase a run enters (fan-out, pre-signing, load, settle)."""
    console.print(f"[bold]loadtest[/]: {text}", highlight=False)


class LoadProgress:
    """Counters with totals (``submitted``, ``finalized``) shown as bars on a terminal, else as a
    line every :data:`PROGRESS_INTERVAL` seconds (and a last one on exit). A context manager."""

    def __init__(self, console: Console, interval: float = PROGRESS_INTERVAL) -> None:
        self.console = console
        self.interval = interval
        self.plain = not console.is_terminal
        self._bars: Progress | None = None
        self._ids: dict[str, TaskID] = {}
        self._counts: dict[str, list[int]] = {}
        """name → [done, total, visible]."""
        self._started = time.monotonic()
        self._next_line = self._started + interval

    def __enter__(self) -> LoadProgress:
        self._started = time.monotonic()
        self._next_line = self._started + self.interval
        if not self.plain:
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._bars.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bars is not None:
            self._bars.__exit__(kind, error, tb)
        elif kind is None:
            self._line()

    def add(self, name: str, total: int, visible: bool = True) -> None:
        self._counts[name] = [0, total, int(visible)]
        if self._bars is not None:
            self._ids[name] = self._bars.add_task(name, total=total, visible=visible)

    def hide(self, name: str) -> None:
        self._counts[name][2] = 0
        if self._bars is not None:
            self._bars.update(self._ids[name], visible=False)

    def advance(self, name: str, n: int) -> None:
        self._counts[name][0] += n
        if self._bars is not None:
            self._bars.advance(self._ids[name], n)
        elif time.monotonic() >= self._next_line:
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        self._next_line = now + self.interval
        counts = ", ".join(
            f"{name} {done}/{total}" for name, (done, total, shown) in self._counts.items() if shown
        )
        self.console.print(f"loadtest: {now - self._started:6.1f} s  {counts}", highlight=False)
