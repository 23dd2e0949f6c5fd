"""Remote model calls (``lh.functions.openai``) against a real HTTP server: the fake
OpenAI-compatible app of tests/openai_server.py, served by uvicorn on 127.0.0.1.

Every row ends with a value or a recorded per-row error under injected 429s and 500s; a 400 is
not retried; Retry-After and the server's rate limit are kept; the cache in the lakehouse saves
every request the second time (local and S3); the key never reaches a file, a repr or an error;
literal keys are refused when a definition is stored; the embedding function serves an index.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Iterator

import openai_server
import pytest

import lakehouse as lh
from lakehouse.functions.remote import limits

KEY = "sk-test-Zq8Rw3Lp0Xv7Ty2Nm5Kd"


@pytest.fixture(scope="module")
def _running() -> Iterator[openai_server.RunningServer]:
    running = openai_server.start(KEY)
    yield running
    running.stop()


@pytest.fixture
def server(_running, monkeypatch: pytest.MonkeyPatch) -> openai_server.RunningServer:
    """The fake server with fresh counters and no faults; the key in OPENAI_API_KEY; retries
    quick (their base delay is 10 ms)."""
    _running.state.reset()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setattr(limits, "BASE_DELAY_S", 0.01)
    lh.functions.openai.reset_stats()
    return _running


@pytest.fixture
def local_db(tmp_path):
    """A lakehouse in a local folder, for the tests where storage does not matter."""
    return lh.connect(str(tmp_path / "lake"))


def _texts(n: int) -> list[dict[str, str]]:
    return [{"s": f"row {i}"} for i in range(n)]


def _chat(server, t, **options):
    return lh.functions.openai.chat(t.s, model="m", base_url=server.base_url, **options)


def test_every_row_ends_with_a_value_or_an_error_under_429s_and_500s(server, local_db) -> None:
    server.state.reset(openai_server.Faults(rate_429=0.3, rate_500=0.2, retry_after=0.05,
                                            seed=7))
    t = local_db.create_table("t", {"s": lh.String})
    t.insert([*_texts(60), {"s": "BAD INPUT 1"}, {"s": None}], progress=False)
    t.add_computed_column(c=_chat(server, t, max_retries=3), on_error="ignore", progress=False)
    rows = t.select(t.s, t.c, t.c.errortype, t.c.errormsg).collect().rows()
    assert len(rows) == 62
    for s, value, errortype, errormsg in rows:
        if s is None:
            assert value is None and errortype is None
        elif value is not None:
            assert value == f"echo: {s}" and errortype is None
        else:
            assert errortype == "RemoteCallError", (s, errormsg)
    refused = [r for r in rows if r[2] is not None]
    assert any(r[0] == "BAD INPUT 1" and "(400)" in r[3] for r in refused)
    # rows that ran out of retries say so and what the server said last
    assert all("retries" in r[3] for r in refused if r[0] != "BAD INPUT 1")
    usage = lh.functions.openai.stats(t).row(0, named=True)
    assert usage["column"] == "c" and usage["retries"] > 0 and usage["rate_limited"] > 0
    assert usage["failures"] == len(refused)
    assert usage["requests"] == sum(server.state.calls().values())


def test_a_bad_input_is_not_retried_and_abort_names_the_row(server, local_db) -> None:
    t = local_db.create_table("t", {"s": lh.String})
    t.insert([*_texts(5), {"s": "BAD INPUT 2"}], progress=False)
    with pytest.raises(lh.ComputeError) as info:
        t.add_computed_column(c=_chat(server, t), progress=False)
    said = str(info.value)
    assert "row 5" in said and "(400)" in said and "is not acceptable" in said, said
    assert "c" not in t.columns()  # nothing was written
    assert server.state.calls()["BAD INPUT 2"] == 1  # refused once, never asked again


def test_retry_after_is_honoured(server, local_db) -> None:
    server.state.reset(openai_server.Faults(rate_429=0.5, retry_after=1.0, seed=3))
    t = local_db.create_table("t", {"s": lh.String})
    t.insert(_texts(8), progress=False)
    t.add_computed_column(c=_chat(server, t), progress=False)
    assert t.select(t.c).collect()["c"].null_count() == 0
    records = server.state.records
    waited = 0
    for i, record in enumerate(records):
        if record.status == 429:
            later = [r for r in records[i + 1:] if r.input == record.input]
            assert later and later[0].at >= record.at + record.retry_after - 0.01
            waited += 1
    assert waited > 0


def test_the_rate_limit_is_respected(server, local_db) -> None:
    """rpm=600 paces requests 100 ms apart: the server, limiting 3 per 200 ms (room for network
    jitter), refuses none, and no second holds more than 10 (+1 for the window's edges)."""
    server.state.reset(openai_server.Faults(limit=3, window_s=0.2))
    t = local_db.create_table("t", {"s": lh.String})
    t.insert(_texts(16), progress=False)
    start = time.monotonic()
    t.add_computed_column(c=_chat(server, t, rpm=600, concurrency=8), progress=False)
    assert time.monotonic() - start >= 1.4  # 16 requests 100 ms apart
    assert [r.status for r in server.state.records] == [200] * 16
    times = [r.at for r in server.state.records]
    assert max(sum(1 for b in times if a <= b < a + 1.0) for a in times) <= 11


def test_the_servers_limit_headers_pause_the_endpoint(server, local_db) -> None:
    """Without rpm, the server's limit (3 per 0.5 s) refuses requests with x-ratelimit headers:
    each is retried after the reset and every row gets its value."""
    server.state.reset(openai_server.Faults(limit=3, window_s=0.5))
    t = local_db.create_table("t", {"s": lh.String})
    t.insert(_texts(9), progress=False)
    t.add_computed_column(c=_chat(server, t), progress=False)
    assert t.select(t.c).collect()["c"].to_list() == [f"echo: row {i}" for i in range(9)]
    accepted = [r.at for r in server.state.successes()]
    assert all(accepted[i + 3] - accepted[i] >= 0.5 - 0.01 for i in range(len(accepted) - 3))


def test_the_cache_in_the_lakehouse_saves_the_second_computation(server, db) -> None:
    t = db.create_table("t", {"s": lh.String})
    t.insert(_texts(20), progress=False)
    t.add_computed_column(c=_chat(server, t), progress=False)
    assert sum(server.state.calls().values()) == 20
    # the same call in another column, and a recompute through update: nothing is sent
    t.add_computed_column(d=_chat(server, t), progress=False)
    t.update({"s": t.s}, where=t.s == "row 3", progress=False)
    assert sum(server.state.calls().values()) == 20
    assert sorted(t.select(t.d).collect()["d"]) == sorted(f"echo: row {i}" for i in range(20))
    # another process on the same lakehouse finds the results too: a fresh cache object
    from lakehouse.functions.remote import cache

    fresh = cache.ResultCache(db.location)
    keys = [k for k in cache.current()._memory]
    assert set(fresh.lookup(keys)) == set(keys)
    # cache=False sends them again, once each
    t.add_computed_column(e=_chat(server, t, cache=False), progress=False)
    assert sum(server.state.calls().values()) == 40
    assert set(server.state.calls().values()) == {2}
    assert "_lakehouse_cache" not in db.list_tables()


def test_the_key_never_reaches_a_file_a_repr_or_an_error(server, tmp_path) -> None:
    root = tmp_path / "lake"
    db = lh.connect(str(root))
    t = db.create_table("t", {"s": lh.String})
    t.insert([*_texts(10), {"s": "BAD INPUT 3"}], progress=False)
    expr = _chat(server, t)
    t.add_computed_column(c=expr, on_error="ignore", progress=False)
    fn = lh.functions.openai.embedding_function("e", base_url=server.base_url, dim=8)
    t.add_embedding_index("s", embedding=fn, on_error="ignore", progress=False)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any("_lakehouse_cache" in str(p) for p in files)
    assert any(p.suffix == ".lance" for p in files)
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    shown = [repr(expr), repr(fn), fn.describe(), str(fn.spec()), repr(t), str(t.describe()),
             str(t.select(t.c.errormsg).collect().rows()), str(lh.functions.openai.stats(t))]
    for text in shown:
        assert KEY not in text, text
    # a refused key: the error names the secret, never its value
    os.environ["OPENAI_API_KEY"] = KEY + "-wrong"
    try:
        with pytest.raises(lh.RemoteModelError) as info:
            t.add_computed_column(d=_chat(server, t, cache=False), progress=False)
    finally:
        os.environ["OPENAI_API_KEY"] = KEY
    assert "401" in str(info.value) and "secret('OPENAI_API_KEY')" in str(info.value)
    assert KEY not in str(info.value)


def test_a_literal_key_is_refused_for_a_udf_and_the_remote_functions(local_db) -> None:
    from udfs_for_tests import remote_udfs

    t = local_db.create_table("t", {"s": lh.String})
    t.insert(_texts(2), progress=False)
    with pytest.raises(lh.SecretLiteralError) as info:
        t.add_computed_column(c=remote_udfs.call_service(t.s, api_key="plain-value-123"),
                              progress=False)
    assert "api_key" in str(info.value) and "lh.secret('API_KEY')" in str(info.value)
    with pytest.raises(lh.SecretLiteralError) as info:  # shaped like a key, whatever its name
        t.add_computed_column(c=remote_udfs.call_service(t.s, api_key="",
                                                         extra="ghp_" + "a1B2" * 9),
                              progress=False)
    assert "'extra'" in str(info.value)
    assert t.columns() == ["s"]  # the table is unchanged
    with pytest.raises(lh.SecretLiteralError) as info:
        lh.functions.openai.chat(t.s, model="m", api_key="sk-proj-abcdefgh12345678")
    assert "lh.secret(" in str(info.value) and "sk-proj-abcdefgh12345678" not in str(info.value)
    with pytest.raises(lh.SecretLiteralError):
        lh.functions.openai.embeddings(t.s, model="m", dim=4, api_key="AKIAIOSFODNN7EXAMPLE")
    # a secret by name is stored as its name
    expr = lh.functions.openai.chat(t.s, model="m", api_key=lh.secret("MY_KEY"))
    assert expr.kwargs[0][1]["api_key"] == {"secret": "MY_KEY"}


def test_a_missing_secret_stops_the_write_naming_it(server, local_db, tmp_path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    t = local_db.create_table("t", {"s": lh.String})
    t.insert(_texts(3), progress=False)
    with pytest.raises(lh.SecretNotFoundError) as info:
        t.add_computed_column(c=_chat(server, t), progress=False)
    assert "'OPENAI_API_KEY'" in str(info.value) and "environment variable" in str(info.value)
    assert sum(server.state.calls().values()) == 0
    # from a dotenv file the user names
    env = tmp_path / "keys.env"
    env.write_text(f"# keys\nexport SERVICE_KEY='{KEY}'\n")
    key = lh.secret("SERVICE_KEY", file=str(env))
    t.add_computed_column(c=_chat(server, t, api_key=key), progress=False)
    assert t.select(t.c).collect()["c"].to_list() == ["echo: row 0", "echo: row 1", "echo: row 2"]
    missing = lh.secret("OTHER_KEY", file=str(env))
    with pytest.raises(lh.SecretNotFoundError, match="keys.env"):
        missing.resolve()


def test_a_stored_definition_sends_the_key_only_to_allowed_endpoints(server, local_db) -> None:
    from lakehouse.functions.remote import openai as remote

    t = local_db.create_table("t", {"s": lh.String})
    t.insert(_texts(2), progress=False)
    t.add_computed_column(c=_chat(server, t, cache=False), progress=False)
    remote._allowed.discard(server.base_url)  # as in a new process that did not build it
    try:
        with pytest.raises(lh.RemoteModelError, match="trusted_models"):
            t.insert(_texts(1), progress=False)
        lh.connect(local_db.root,
                   trusted_models=[server.base_url])
        t.insert(_texts(1), progress=False)
    finally:
        remote._allowed.add(server.base_url)


def test_embeddings_images_and_transcriptions(server, local_db) -> None:
    import pygame
    from media_samples import ASTRONAUT, image_path

    t = local_db.create_table("t", {"s": lh.String, "image": lh.Image, "sound": lh.Audio})

    sound = pathlib.Path(pygame.__file__).parent / "examples" / "data" / "house_lo.wav"
    t.insert([{"s": "a photo", "image": str(image_path(ASTRONAUT)), "sound": str(sound)}],
             progress=False)
    t.add_computed_column(v=lh.functions.openai.embeddings(
        t.s, model="e", base_url=server.base_url, dimensions=16), progress=False)
    t.add_computed_column(seen=lh.functions.openai.chat(
        t.s, model="vision", base_url=server.base_url, images=t.image), progress=False)
    t.add_computed_column(heard=lh.functions.openai.transcriptions(
        t.sound, model="whisper", base_url=server.base_url), progress=False)
    row = t.select(t.v, t.seen, t.heard).collect().row(0, named=True)
    assert len(row["v"]) == 16
    assert row["seen"].startswith("echo: a photo [image ")
    assert row["heard"].startswith(f"transcript of {sound.stat().st_size} bytes")


def test_the_embedding_function_serves_an_index_and_text_search(server, db) -> None:
    t = db.create_table("t", {"s": lh.String})
    t.insert(_texts(30), progress=False)
    fn = lh.functions.openai.embedding_function("e", base_url=server.base_url)  # asks the dim
    assert fn.dim == 8
    t.add_embedding_index("s", embedding=fn, progress=False)
    top = t.order_by(t.s.similarity("row 7"), asc=False).limit(1).select(t.s).collect().item()
    assert top == "row 7"  # the same text gets the same vector
    stored = lh.functions.EmbeddingFunction.from_spec(fn.spec())
    assert stored == fn and stored.spec()["options"]["api_key"] == {"secret": "OPENAI_API_KEY"}
    assert lh.functions.EmbeddingFunction.parse(f"openai:e@{server.base_url}").model == "e"
    usage = lh.functions.openai.stats(t).row(0, named=True)
    assert usage["column"] == "s" and usage["rows"] >= 30
