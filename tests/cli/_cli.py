"""Running trtsr as a user does (a real process), and what every mistake must look like."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parents[1] / "data"


def trtsr(*args, stdin: str | None = None, timeout: float = 300, env: dict | None = None,
          cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trtsr", *map(str, args)], capture_output=True, text=True,
                          input=stdin, timeout=timeout, env=None if env is None else {**os.environ, **env}, cwd=cwd)


def one_error(proc: subprocess.CompletedProcess, *parts: str) -> str:
    """The run failed with status 1 and exactly one `error:` line holding every part; no traceback."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for part in parts:
        assert part in errors[0], errors[0]
    return errors[0]
