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


def test_ls_refuses_a_missing_root_or_a_file(run_cli, tmp_path) -> None:
    missing = tmp_path / "no_such_root"
    proc = run_cli("ls", "--root", str(missing))
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert _lines(proc.stderr) == [f"Error: no lakehouse at {missing}: the folder does not "
                                   "exist; check --root (or $LAKEHOUSE_ROOT), or make it with "
                                   "lakehouse create TABLE --schema ..."]
    assert not missing.exists()  # listing makes nothing
    a_file = tmp_path / "a_file"
    a_file.write_text("not a lakehouse")
    proc = run_cli("view", "ls", "--root", str(a_file))
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert _lines(proc.stderr) == [f"Error: the lakehouse root {a_file} is a file, not a "
                                   "folder; pass --root a folder or s3://bucket/prefix"]


def test_root_and_debug_before_or_after_the_command(run_cli, tmp_path) -> None:
    import lakehouse as lh

    roots = {}
    for name in ("first", "second"):
        roots[name] = str(tmp_path / name)
        lh.connect(roots[name]).create_table(f"{name}_table", {"n": lh.Int})
    first, second = roots["first"], roots["second"]
    assert run_cli("--root", first, "ls").stdout == "first_table\n"
    assert run_cli("ls", "--root", first).stdout == "first_table\n"
    # after the command wins over before it; either wins over $LAKEHOUSE_ROOT
    assert run_cli("--root", first, "ls", "--root", second).stdout == "second_table\n"
    env = {"LAKEHOUSE_ROOT": second}
    assert run_cli("--root", first, "ls", env=env).stdout == "first_table\n"
    assert run_cli("--root", first, "index", "ls", "first_table", "-f", "json",
                   env=env).stdout == "[]\n"
    # --debug after the command, also of a sub-command: the traceback instead of one line
    proc = run_cli("index", "ls", "nope", "--root", first, "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    assert "TableNotFoundError" in proc.stderr


def test_debug_shows_traceback(run_cli) -> None:
    proc = run_cli("--debug", "ls", "--root", "s3://lh-unreachable/lh", env=UNREACHABLE_S3_ENV)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


@pytest.mark.slow  # the demo, twice: about 30 s
def test_demo_runs_the_main_job(run_cli, lakehouse_root) -> None:
    proc = run_cli("demo", "--root", lakehouse_root.uri)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "inserted 2 more rows" in out
    assert "the-dispossessed" in out  # the UDF's computed slug, in the query result
    assert "books by Le Guin: 2" in out
    assert "ingested 10 photos" in out  # real sample photos, thumbnails computed on insert
    assert "retina" in out and "chelsea's thumbnail as a PIL image: 128x85 RGB" in out

    def hits(title: str) -> list[list[str]]:
        """The rows of the result table printed under the line that starts with ``title``."""
        lines = out[out.index("\n" + title):].splitlines()[1:]
        start = next(i for i, line in enumerate(lines) if line.startswith("╞"))
        rows = []
        for line in lines[start + 1:]:
            if not line.startswith("│"):
                break
            rows.append([cell.strip() for cell in line.strip("│").split("┆")])
        return rows

    # the main job: generated pictures and photos, a CLIP index on the images and a MiniLM
    # index on the captions, searched by text, by image and with a prefilter
    assert "ingested 200 generated pictures and 10 photos into demo/pictures" in out
    red = hits("image search 'a small red circle on the left'")
    assert len(red) == 5 and red[0][0].startswith("a small red circle")  # the only one
    assert all("yellow" in row[0] for row in hits("image search 'something yellow'"))
    assert "blue square" in hits("image search 'a blue square'")[0][0]
    assert hits("caption search 'a kitty'")[0][:2] == ["a tabby cat", "photo"]
    assert hits("caption search 'a hot drink'")[0][:2] == ["a cup of coffee", "photo"]
    twin = hits("image search with a new picture of 'a large orange square on the left'")
    assert twin[0][0] == "a large orange square on the left"
    assert float(twin[0][2]) > float(twin[1][2]) + 0.1
    photos_only = hits("image search 'a large red circle', photos only")
    assert len(photos_only) == 5 and {row[1] for row in photos_only} == {"photo"}
    assert photos_only[0][0] == "the retina of an eye"
    assert 'lh.functions.clip("ViT-B-32", pretrained="laion2b_s34b_b79k")' in out
    listed = run_cli("ls", "--root", lakehouse_root.uri)
    assert listed.stdout.split() == ["demo/books", "demo/photos", "demo/pictures"]

    # it names every table it made and ends with three commands to try on its root
    made = out[out.index("\nthe demo made these tables:"):out.index("\ntry next:")]
    for name, rows in (("demo/books", 6), ("demo/photos", 10), ("demo/pictures", 210)):
        assert f"  {name}: {rows} rows, version " in made
    root = lakehouse_root.uri
    assert out.rstrip().splitlines()[-3:] == [
        f"  lakehouse ls --root {root}",
        f"  lakehouse query demo/books --where \"year > 1970\" --select \"title, author, year\" "
        f"--root {root}",
        f"  lakehouse serve demo/pictures --column image --root {root}"]
    query = run_cli("query", "demo/books", "--where", "year > 1970", "--select",
                    "title, author, year", "--root", root)
    assert query.returncode == 0 and "Piranesi" in query.stdout, query.stderr

    # describe explains why the embedding indexes have no vector index yet
    described = run_cli("describe", "demo/pictures", "--root", root).stdout
    assert "vector index of image: not built yet (210 rows; built from 10,000 rows on, " \
        "searched exactly until then)" in described

    def versions() -> dict[str, int]:
        import lakehouse as lh

        db = lh.connect(root, storage_options=lakehouse_root.storage_options)
        return {name: len(db.get_table(name).history(limit=None))
                for name in db.list_tables()}

    first = versions()
    again = run_cli("demo", "--root", root)  # replaces the tables and runs again
    assert again.returncode == 0, again.stderr
    assert "replacing the tables of an earlier run: demo/books, demo/photos, demo/pictures" \
        in again.stdout
    assert "ingested 200 generated pictures" in again.stdout
    assert versions() == first  # each table's history is one run's: nothing stacked
