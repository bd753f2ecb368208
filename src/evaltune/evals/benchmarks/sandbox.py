"""Run untrusted Python (model-written code and its tests) in a limited subprocess.

Each program runs in a fresh ``python -I -S -B`` (isolated: no user site, no ``PYTHON*``
variables, no site-packages) in its own empty temporary folder, with a minimal environment,
stdin closed, and a new session so the whole process group can be killed. Before the program
runs, the child limits itself with ``resource.setrlimit``:

- ``RLIMIT_AS`` (address space) to ``memory_mb``: allocations beyond it raise ``MemoryError``;
- ``RLIMIT_CPU`` to the time limit plus one second: a busy loop dies even if unwatched;
- ``RLIMIT_FSIZE`` 1 MiB per written file, ``RLIMIT_CORE`` 0 (no core dumps).

The parent waits at most ``timeout`` seconds of wall time, then kills the process group:
``sleep`` and infinite loops end as ``timed out`` without holding up other programs. This is
containment for benchmark code, not a security boundary against a determined attacker (there
is no network or syscall filtering); run untrusted models' code on a machine you can afford
to lose, as with every code benchmark.

``run_many`` runs programs on a thread pool (``workers``, default the CPU count): the threads
only wait on child processes, so N programs take about N / workers × the slowest few.

``site_packages`` puts this interpreter's installed packages on the child's path (read only,
after the limits are set): code that imports numpy or rapidfuzz, as an OpenAI python grader
may, finds them; HumanEval programs run without. The last ``OUTPUT_TAIL`` bytes a program
writes to stdout come back as ``RunResult.output``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OUTPUT_TAIL", "RunResult", "run_many", "run_python"]

OUTPUT_TAIL = 64 * 1024
_BOOT = """\
import resource, sys
sys.path.extend({paths!r})
mem = {memory}
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
source = open("program.py", encoding="utf-8").read()
sys.argv = ["program.py"]
exec(compile(source, "program.py", "exec"), {{"__name__": "__main__"}})
"""


@dataclass(frozen=True)
class RunResult:
    status: str  # "passed" | "failed" | "timed out"
    detail: str  # the last line of the error, or why it was stopped
    seconds: float = 0.0
    output: str = ""  # the tail of what it wrote to stdout

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _installed() -> list[str]:
    return [*site.getsitepackages(), site.getusersitepackages()]


def run_python(
    program: str, *, timeout: float = 5.0, memory_mb: int = 1024, site_packages: bool = False
) -> RunResult:
    """Run ``program`` as ``__main__``; ``passed`` when it exits 0 within the limits."""
    paths = _installed() if site_packages else []
    boot = _BOOT.format(memory=memory_mb * 2**20, cpu=int(timeout) + 1, paths=paths)
    env = {"PATH": os.defpath, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory(prefix="evaltune-run-") as folder:
        Path(folder, "program.py").write_text(program, encoding="utf-8")
        with (
            open(Path(folder, "stderr.txt"), "w+b") as stderr,
            open(Path(folder, "stdout.txt"), "w+b") as stdout,
        ):
            start = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", "-c", boot],
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return RunResult("timed out", f"timed out after {timeout:g} s", timeout)
            finally:
                _kill_group(proc)  # whatever the program started in its group goes too
            elapsed = time.monotonic() - start
            stderr.seek(0)
            error = _last_line(stderr.read(64 * 1024).decode("utf-8", "replace"))
            stdout.seek(max(0, stdout.seek(0, os.SEEK_END) - OUTPUT_TAIL))
            output = stdout.read(OUTPUT_TAIL).decode("utf-8", "replace")
    if code == 0:
        return RunResult("passed", "all tests passed", elapsed, output)
    if code == -signal.SIGXCPU:
        return RunResult("timed out", "CPU time limit", elapsed)
    if code < 0:
        return RunResult("failed", f"killed by signal {signal.Signals(-code).name}", elapsed)
    return RunResult("failed", error or f"exit status {code}", elapsed)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_many(
    programs: Sequence[str],
    *,
    timeout: float = 5.0,
    memory_mb: int = 1024,
    workers: int | None = None,
    site_packages: bool = False,
) -> list[RunResult]:
    """``run_python`` over ``programs`` in parallel, results in order."""
    workers = max(1, workers or os.cpu_count() or 1)

    def one(program: str) -> RunResult:
        return run_python(
            program, timeout=timeout, memory_mb=memory_mb, site_packages=site_packages
        )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, programs))
