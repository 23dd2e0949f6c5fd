"""Long writes report progress: a rich bar on a terminal, nothing when disabled or piped."""

from __future__ import annotations

import lakehouse as lh
from lakehouse.progress import report


def test_bar_counts_rows_when_shown(capsys) -> None:
    with report("insert into t", enabled=True, total=3, force=True) as bar:
        bar.advance(2)
        bar.advance(1)
    err = capsys.readouterr().err
    assert "insert into t" in err
    assert "3/3" in err


def test_disabled_or_piped_prints_nothing(capsys, tmp_path) -> None:
    with report("x", enabled=False, force=True) as bar:
        bar.advance(5)
    db = lh.connect(str(tmp_path / "lh"))
    t = db.create_table("t", {"n": lh.Int})
    t.insert([{"n": i} for i in range(10)])  # progress on, but stderr is not a terminal here
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""
