"""The loop's ``Reporter`` drawn with rich: one progress bar per training round and eval."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["RichReporter"]


class RichReporter:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, markup=False, emoji=False)
        self.progress = Progress(
            TextColumn("{task.description}", style="bold", markup=False),  # names: literal
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def message(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False)

    def start(self, task: str, description: str, total: int) -> None:
        self.tasks[task] = self.progress.add_task(description, total=total, info="")

    def advance(self, task: str, completed: int, info: str = "") -> None:
        if task in self.tasks:
            self.progress.update(self.tasks[task], completed=completed, info=info)

    def finish(self, task: str) -> None:
        if task in self.tasks:
            t = self.tasks.pop(task)
            total = self.progress.tasks[t].total if t < len(self.progress.tasks) else None
            self.progress.update(t, completed=total)
