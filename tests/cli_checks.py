"""Checks shared by the tests that run the `lakehouse` command: a run that worked, and a run
that failed with exactly one `Error: ...` line (text or bytes output alike)."""

from __future__ import annotations

import subprocess


def _text(stream: str | bytes | None) -> str:
    if stream is None:
        return ""
    return stream if isinstance(stream, str) else stream.decode()


def ok(proc: subprocess.CompletedProcess) -> str:
    """The command succeeded: its stdout."""
    assert proc.returncode == 0, _text(proc.stderr)
    return _text(proc.stdout)


def one_error_line(proc: subprocess.CompletedProcess, *, code: int = 1) -> str:
    """The command failed (exit ``code``) with one `Error: ...` line on stderr, no traceback,
    and nothing on stdout; that line."""
    stderr = _text(proc.stderr)
    assert proc.returncode == code, (proc.returncode, proc.stdout, stderr)
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert not proc.stdout
    return lines[0]
