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


class _Clock:
    """A clock the test moves by hand, so rates and times left are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _drawn(progress, *, colour: bool = False) -> str:
    """The progress display as text, rendered once to a string console."""
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, force_terminal=colour,
                      color_system="standard" if colour else None)
    console.print(progress.make_tasks_table(progress.tasks))
    return console.file.getvalue()


def _bar(total: int | None):
    from rich.progress import Progress

    from lakehouse.progress import RowBar, bar_columns

    clock = _Clock()
    progress = Progress(*bar_columns(), get_time=clock, auto_refresh=False, disable=True)
    return progress, RowBar(progress, "compute doubled", total=total), clock


def test_bar_shows_rows_done_rate_time_left_and_errors() -> None:
    progress, bar, clock = _bar(total=10_000)
    bar.advance(1_000)
    clock.now += 2
    bar.advance(1_000, errors=3)
    clock.now += 2
    bar.advance(2_000)  # errors not given: still 3
    text = _drawn(progress)
    assert "compute doubled" in text
    assert "4,000/10,000 rows" in text
    assert "750 rows/s" in text  # 3,000 rows after the first sample, in 4 s
    assert "0:00:04" in text  # elapsed
    assert "ETA 0:00:08" in text  # 6,000 rows left at 750 rows/s
    assert "3 errors" in text
    assert "\x1b[31m3 errors" in _drawn(progress, colour=True)  # in red


def test_bar_shows_no_error_count_until_a_row_fails_and_one_error_in_the_singular() -> None:
    progress, bar, clock = _bar(total=None)
    bar.advance(50, errors=0)
    assert "error" not in _drawn(progress)
    assert "50 rows" in _drawn(progress)  # no total: rows done only
    bar.advance(50, errors=1)
    assert "1 error" in _drawn(progress) and "1 errors" not in _drawn(progress)


def test_rows_from_a_checkpoint_count_as_done_but_not_in_the_rate() -> None:
    progress, bar, clock = _bar(total=1_000)
    clock.now += 5
    bar.advance(300, reused=True)  # a resumed backfill: two fragments done before
    bar.advance(300, reused=True)
    clock.now += 1
    bar.advance(100)
    clock.now += 1
    bar.advance(100)
    text = _drawn(progress)
    assert "800/1,000 rows" in text
    assert "100 rows/s" in text  # the computed rows only
    assert "ETA 0:00:02" in text
    assert "0:00:02" in text.split("rows/s")[1]  # elapsed since the resume


def test_report_draws_the_error_count_of_a_write(capsys, tmp_path) -> None:
    with report("insert into t", enabled=True, total=4, force=True) as bar:
        bar.advance(2, errors=1)
        bar.advance(2, errors=2)
    err = capsys.readouterr().err
    assert "4/4 rows" in err and "2 errors" in err


def test_a_write_that_keeps_errors_shows_them_on_its_bar(capsys, tmp_path, monkeypatch) -> None:
    import udfs_for_tests as U

    monkeypatch.setenv("COLUMNS", "200")  # the bar on one line
    t = lh.connect(str(tmp_path / "lh")).create_table("t", {"n": lh.Int})
    t.insert([{"n": i} for i in range(10)], progress=False)  # 0, 3, 6, 9 fail in flaky
    U.FLAKY = True
    with lh.progress_bars("always"):
        result = t.add_computed_column(f=U.flaky(t.n), on_error="ignore")
    assert result.rows_with_errors == 4
    err = capsys.readouterr().err
    assert "compute f" in err and "10/10 rows" in err and "4 errors" in err
    with lh.progress_bars("always"):
        t.recompute("f", errors_only=True)
    err = capsys.readouterr().err
    assert "update t" in err and "4 rows" in err and "4 errors" in err  # still failing
