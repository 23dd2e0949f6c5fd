"""The installed `lakehouse` command: version, help, `ls`, and how errors are reported."""

from __future__ import annotations

from importlib.metadata import version

import pytest
import typer

UNREACHABLE_S3_ENV = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:1",  # nothing listens on port 1
    "AWS_ALLOW_HTTP": "true",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_version(run_cli) -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"lakehouse {version('lakehouse')}"


def test_library_version_matches_distribution() -> None:
    import lakehouse as lh

    assert lh.__version__ == version("lakehouse")


def test_help_lists_commands(run_cli) -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert "ls" in proc.stdout
    assert "--version" in proc.stdout


def test_every_command_has_help(run_cli) -> None:
    from lakehouse_cli.app import app

    commands = typer.main.get_command(app).commands
    assert "ls" in commands
    for name, command in commands.items():
        assert command.help, f"command {name!r} has no help text"
        proc = run_cli(name, "--help")
        assert proc.returncode == 0, (name, proc.stderr)
        assert "Usage" in proc.stdout, name


def test_ls_empty_root(run_cli, lakehouse_root) -> None:
    # On s3 the fixture's AWS_* env vars carry the endpoint and credentials to the subprocess.
    proc = run_cli("ls", "--root", lakehouse_root.uri)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_ls_root_from_env(run_cli, tmp_path) -> None:
    root = tmp_path / "root_from_env"
    root.mkdir()
    proc = run_cli("ls", env={"LAKEHOUSE_ROOT": str(root)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""


def test_ls_prints_what_list_tables_returns(run_cli, db, lakehouse_root) -> None:
    import lakehouse as lh

    db.create_table("alpha", {"n": lh.Int})
    db.create_table("beta", {"n": lh.Int})
    db.create_dir("ml")
    db.create_table("ml/gamma", {"n": lh.Int})

    proc = run_cli("ls", "--root", lakehouse_root.uri)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == db.list_tables()
    assert {"alpha", "beta"} <= set(proc.stdout.splitlines())

    proc = run_cli("ls", "ml", "--root", lakehouse_root.uri)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == db.list_tables("ml")
    assert proc.stdout.strip() != ""


@pytest.mark.parametrize("root_via", ["option", "env"])
def test_ls_unreachable_root_is_one_clear_line(run_cli, root_via: str) -> None:
    root = "s3://lh-unreachable/lh"
    env = dict(UNREACHABLE_S3_ENV)
    args = ["ls"]
    if root_via == "option":
        args += ["--root", root]
    else:
        env["LAKEHOUSE_ROOT"] = root
    proc = run_cli(*args, env=env, timeout=120)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)  # 1 = a lakehouse.Error
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = _lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: "), proc.stderr


def test_debug_shows_traceback(run_cli) -> None:
    proc = run_cli("--debug", "ls", "--root", "s3://lh-unreachable/lh", env=UNREACHABLE_S3_ENV)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_demo_runs_the_main_job(run_cli, lakehouse_root) -> None:
    proc = run_cli("demo", "--root", lakehouse_root.uri)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "inserted 2 more rows" in out
    assert "the-dispossessed" in out  # the UDF's computed slug, in the query result
    assert "books by Le Guin: 2" in out
    assert "ingested 10 photos" in out  # real sample photos, thumbnails computed on insert
    assert "retina" in out and "chelsea's thumbnail as a PIL image: 128x85 RGB" in out
    listed = run_cli("ls", "--root", lakehouse_root.uri)
    assert listed.stdout.split() == ["demo/books", "demo/photos"]
    again = run_cli("demo", "--root", lakehouse_root.uri)  # replaces the table and runs again
    assert again.returncode == 0, again.stderr
