"""Long writes report progress: a rich bar on a terminal, nothing when disabled or piped."""

from __future__ import annotations

import pytest

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


def test_progress_bars_mode_for_a_block(capsys, tmp_path, monkeypatch) -> None:
    from lakehouse.progress import current_mode

    monkeypatch.delenv("LAKEHOUSE_PROGRESS", raising=False)
    t = lh.connect(str(tmp_path / "lh")).create_table("t", {"n": lh.Int})
    with lh.progress_bars("always"):  # drawn on the piped stderr
        t.insert([{"n": i} for i in range(3)])
        assert "insert into t" in capsys.readouterr().err
        t.insert([{"n": 3}], progress=False)  # a call's progress=False still silences it
        assert capsys.readouterr().err == ""

    monkeypatch.setenv("LAKEHOUSE_PROGRESS", "always")  # the default outside any block
    assert current_mode() == "always"
    with lh.progress_bars("never"):
        assert current_mode() == "never"
        t.insert([{"n": 4}])
        with lh.progress_bars("auto"):
            assert current_mode() == "auto"
        assert current_mode() == "never"
    assert capsys.readouterr().err == ""
    assert current_mode() == "always"
    monkeypatch.setenv("LAKEHOUSE_PROGRESS", "sometimes")  # not a mode: the default
    assert current_mode() == "auto"
    with pytest.raises(lh.InvalidOptionError, match="'always', 'never'"), \
            lh.progress_bars("loud"):
        pass
