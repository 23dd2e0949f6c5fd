"""Smoke tests for benchmarks/: each script runs end to end on a small input and writes its JSON.

They keep the scripts from rotting as the API changes; the figures themselves are not asserted
(a loaded CI machine makes them noise), only that every operation was measured on both sides.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_runs import run_benchmark

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

INGEST_OPERATIONS = {
    "insert": ("rows/s", "ratio"),
    "backfill_vectorised": ("rows/s", "ratio"),
    "backfill_row_udf": ("rows/s", "ratio"),
    "count": ("ms", "ms"),
    "collect_filtered": ("ms", "ms"),
    "collect_filtered_btree": ("ms", "ms"),
    "insert_1k": ("ms", None),
}


@pytest.mark.parametrize("input_kind", ["arrow", "polars"])
def test_ingest_benchmark_runs_and_writes_every_operation(tmp_path: Path, input_kind: str) -> None:
    run = run_benchmark(
        tmp_path, "ingest", "--rows", "20000", "--repeat", "1", "--calls", "3",
        "--input", input_kind)
    report = run.report

    assert report["benchmark"] == "ingest"
    assert (report["rows"], report["repeat"], report["calls"]) == (20000, 1, 3)
    assert report["input"] == {"arrow": "pyarrow.Table", "polars": "polars.DataFrame"}[input_kind]
    assert report["machine"]["cpu_count"] >= 1
    assert set(report["machine"]["versions"]) == {"lakehouse", "pylance", "pyarrow", "polars",
                                                  "numpy"}
    ops = report["operations"]
    assert set(ops) == set(INGEST_OPERATIONS)
    for name, (unit, target_kind) in INGEST_OPERATIONS.items():
        entry = ops[name]
        assert entry["unit"] == unit, name
        assert entry["lakehouse"] > 0 and entry["raw_lance"] > 0, name
        if unit == "rows/s":
            assert len(entry["lakehouse_seconds"]) == len(entry["raw_lance_seconds"]) == 1
            expected_ratio = entry["lakehouse"] / entry["raw_lance"]
        else:
            assert len(entry["lakehouse_ms"]) == len(entry["raw_lance_ms"]) == 3
            expected_ratio = entry["raw_lance"] / entry["lakehouse"]
        assert entry["ratio"] == pytest.approx(expected_ratio), name
        assert entry["target_kind"] == (target_kind or "none"), name
        if target_kind == "ratio":
            assert entry["met"] is (entry["ratio"] >= entry["target_value"]), name
        elif target_kind == "ms":
            assert entry["target_value"] == 5.0
            assert entry["met"] is (entry["lakehouse"] < 5.0), name
        else:
            assert entry["met"] is None, name
    assert ops["collect_filtered_btree"]["extra"] is True
    assert report["all_targets_met"] is all(
        e["met"] for e in ops.values() if e["met"] is not None and not e["extra"])

    # the printed table names every operation, and the scratch tables were removed
    for label in ("insert", "backfill a * 2 + b", "backfill row UDF", "count()",
                  "collect where a < 1000", "insert 1,000 rows"):
        assert label in run.stdout, run.stdout
    assert list(run.scratch.iterdir()) == []


MEDIA_OPERATIONS = ["insert_thumbnails", "insert_thumbnails_1_thread", "insert_files_thumbnails",
                    "insert_files_thumbnails_1_thread"]


def test_media_benchmark_small_runs_and_writes_both_parts(tmp_path: Path) -> None:
    run = run_benchmark(tmp_path, "media", "--small", "--repeat", "1")
    report = run.report

    assert report["benchmark"] == "media"
    assert report["small"] is True
    assert (report["images"], report["repeat"], report["budget_mib"]) == (40, 1, 16)
    assert set(report["machine"]["versions"]) == {"lakehouse", "pylance", "pyarrow", "polars",
                                                  "pillow"}
    dataset = report["dataset"]
    assert dataset["images"] == 40 and dataset["thumbnail"] == [256, 256]
    assert dataset["formats"]["JPEG"] > 0 and dataset["formats"]["PNG"] > 0
    assert sum(dataset["formats"].values()) == 40

    ops = report["operations"]
    assert set(ops) == set(MEDIA_OPERATIONS)
    for name in MEDIA_OPERATIONS:
        entry = ops[name]
        assert entry["unit"] == "images/s", name
        assert entry["lakehouse"] > 0 and entry["plain_loop"] > 0, (name, entry)
        assert len(entry["lakehouse_seconds"]) == len(entry["plain_loop_seconds"]) == 1, name
        assert entry["ratio"] == pytest.approx(entry["lakehouse"] / entry["plain_loop"]), name
        if name.endswith("_1_thread"):
            assert entry["threads"] == 1 and entry["met"] is None, name
        else:
            assert entry["threads"] == report["machine"]["cpu_count"], name  # one per core
            assert entry["met"] is (entry["ratio"] >= 1.5), name
            assert entry["speedup_over_1_thread"] == pytest.approx(
                entry["lakehouse"] / ops[f"{name}_1_thread"]["lakehouse"])

    memory = report["memory"]
    mib = 2**20
    budget = memory["budget_bytes"]
    assert memory["method"] in ("import_parquet", "insert_batches")
    assert budget == 16 * mib and memory["batch_rows"] >= 1
    assert set(memory["sizes"]) == {"1x", "10x"}
    for size, times in (("1x", 1), ("10x", 10)):
        entry = memory["sizes"][size]
        assert entry["times_budget"] == times, size
        assert times * budget <= entry["data_bytes"] < (times + 1) * budget, (size, entry)
        assert entry["rows"] > 0 and entry["shards"] >= 1, (size, entry)
        assert entry["largest_batch_bytes"] < budget, (size, entry)
        assert entry["seconds"] > 0 and entry["mib_per_s"] > 0, (size, entry)
        for side in ("", "raw_lance_"):
            before, peak = entry[f"{side}rss_before_bytes"], entry[f"{side}peak_rss_bytes"]
            growth = entry[f"{side}peak_rss_growth_bytes"]
            assert 0 < before <= peak, (size, side, entry)
            assert growth == max(0, peak - before) and growth > 0, (size, side, entry)
            assert entry[f"{side}growth_over_data"] == pytest.approx(
                growth / entry["data_bytes"]), (size, side)
        assert entry["raw_lance_seconds"] > 0, (size, entry)
    small, large = memory["sizes"]["1x"], memory["sizes"]["10x"]
    assert large["rows"] > small["rows"]
    assert memory["added_growth_bytes"] == (large["peak_rss_growth_bytes"]
                                            - small["peak_rss_growth_bytes"])
    assert memory["raw_lance_added_growth_bytes"] == (large["raw_lance_peak_rss_growth_bytes"]
                                                      - small["raw_lance_peak_rss_growth_bytes"])
    assert memory["growth_over_raw_lance_10x_bytes"] == (
        large["peak_rss_growth_bytes"] - large["raw_lance_peak_rss_growth_bytes"])
    assert isinstance(memory["second_half_rise_10x_bytes"], int)
    assert isinstance(memory["raw_lance_second_half_rise_10x_bytes"], int)
    # computed, not required
    assert memory["met"] is (memory["second_half_rise_10x_bytes"] <= budget)
    assert report["all_targets_met"] is (
        all(e["met"] for e in ops.values() if e["met"] is not None) and memory["met"])

    for label in ("insert + thumbnail", "insert_files + thumbnail", "LAKEHOUSE_THREADS=1",
                  "RSS before -> peak", "peak growth", "growth/data",
                  "growth(10x) - growth(1x)", "growth over raw Lance, 10x"):
        assert label in run.stdout, run.stdout
    assert list(run.scratch.iterdir()) == []


EMBED_OPERATIONS = ["images_clip", "images_clip_no_index", "images_vit_b_32", "texts_clip",
                    "texts_minilm"]


def test_embed_benchmark_small_runs_and_checks_vectors(tmp_path: Path) -> None:
    out = tmp_path / "results" / "embed.json"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "embed.py"), "--small", "--repeat", "1",
         "--rounds", "2", "--out", str(out), "--root", str(scratch)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())

    assert report["benchmark"] == "embed"
    assert report["small"] is True
    assert (report["images"], report["clip_texts"], report["minilm_texts"],
            report["repeat"]) == (128, 128, 64, 1)
    assert report["torch_threads"] >= 1 and report["device"] in ("cpu", "cuda")
    assert report["models"]["clip"]["dim"] == 128 and report["models"]["minilm"]["dim"] == 384
    assert set(report["machine"]["versions"]) == {
        "lakehouse", "torch", "open_clip_torch", "sentence-transformers", "pylance", "pyarrow",
        "pillow"}
    ops = report["operations"]
    assert set(ops) == set(EMBED_OPERATIONS)
    for name in EMBED_OPERATIONS:
        entry = ops[name]
        assert entry["unit"] == ("images/s" if name.startswith("images") else "texts/s"), name
        assert entry["lakehouse"] > 0 and entry["bare_model"] > 0, (name, entry)
        assert entry["bare_model_thread"] > 0, (name, entry)
        assert len(entry["lakehouse_seconds"]) == len(entry["bare_model_seconds"]) == len(
            entry["bare_model_thread_seconds"]) == 1, name
        assert entry["ratio"] == pytest.approx(entry["lakehouse"] / entry["bare_model"]), name
        best = max(entry["bare_model"], entry["bare_model_thread"])
        assert entry["ratio_best_bare"] == pytest.approx(entry["lakehouse"] / best), name
        if entry["extra"]:
            assert name == "images_clip_no_index" and entry["met"] is None, name
        else:
            assert entry["max_abs_diff"] < 1e-4, (name, entry)  # stored = bare model's vectors
            assert entry["met"] is (entry["ratio_best_bare"] >= 0.9), name
    assert report["all_targets_met"] is all(
        e["met"] for e in ops.values() if e["met"] is not None)
    # where the time goes: each side's parts from one instrumented run, adding up to its time
    parts = report["where_the_time_goes"]
    assert set(parts) == {"images_clip", "images_vit_b_32", "texts_clip", "texts_minilm"}
    for name, found in parts.items():
        for side in ("bare", "insert"):
            assert found[side]["parts"]["forward"] > 0, (name, side)
            assert sum(found[side]["parts"].values()) == pytest.approx(found[side]["wall"])
        assert found["insert"]["parts"]["validate"] > 0 and found["bare"]["parts"]["validate"] == 0
        assert found["insert"]["beside"]["commit"] > 0, name
    # two back-to-back rounds, each kept; operations hold each operation's worst round
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    for name, entry in ops.items():
        by_round = [r["operations"][name]["ratio_best_bare"] for r in report["rounds"]]
        assert entry["ratio_best_bare_by_round"] == by_round
        assert entry["ratio_best_bare"] == min(by_round), name
        if entry["met"] is not None:
            assert entry["met"] is all(r["operations"][name]["met"] for r in report["rounds"])
    assert "round 2 of 2" in proc.stdout and "worst of the 2 rounds" in proc.stdout

    for label in ("images, CLIP: insert", "no index (extra)", "texts, CLIP: insert",
                  "texts, MiniLM: insert", "bare, worker thread", "ratio vs best bare"):
        assert label in proc.stdout, proc.stdout
    assert list(scratch.iterdir()) == []


def test_search_benchmark_quick_runs_and_measures_every_method(tmp_path: Path) -> None:
    out = tmp_path / "results" / "search.json"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "search.py"), "--quick", "--queries", "12",
         "--distributions", "clusters,mixture", "--out", str(out), "--root", str(scratch)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())

    assert report["benchmark"] == "search"
    assert report["quick"] is True
    assert (report["queries"], report["k"], report["metric"]) == (12, 10, "cosine")
    assert set(report["machine"]["versions"]) == {"lakehouse", "pylance", "pyarrow", "polars",
                                                  "numpy"}
    assert report["raw_indexes"] == ["IVF_SQ", "IVF_PQ", "IVF_HNSW_SQ"]
    assert [d["distribution"] for d in report["distributions"]] == ["clusters", "mixture"]
    for dist in report["distributions"]:
        assert (dist["rows"], dist["dim"], dist["queries"]) == (20000, 64, 12)
        methods = dist["methods"]
        assert list(methods) == ["numpy", "lakehouse", "raw_ivf_sq", "raw_ivf_pq",
                                 "raw_ivf_hnsw_sq"]
        assert methods["numpy"]["recall_at_10"] == 1.0
        lake = methods["lakehouse"]
        assert lake["params"]["vector_index"] == "IVF_SQ" and lake["params"]["nprobes"] >= 1
        assert 0 < lake["calibration_s"] < lake["build_s"]
        assert lake["calibrated_recall"] >= 0.95
        for name, entry in methods.items():
            assert len(entry["latency_ms"]) == 12, name
            assert 0 < entry["p50_ms"] <= entry["p99_ms"], name
            assert entry["build_s"] > 0, name
            assert entry["recall_at_10"] >= 0.5, (name, entry["recall_at_10"])  # it searches
        for kind in ("ivf_sq", "ivf_pq", "ivf_hnsw_sq"):
            raw = methods[f"raw_{kind}"]
            assert raw["index_bytes"] > 0 and raw["params"]["nprobes"] >= 1, kind
            # the parameters found reach the lakehouse's recall, unless it says they did not
            assert raw["reached"] is (raw["recall_at_10"] >= lake["recall_at_10"]), kind
    # the same partition size on both sides
    raw_sq = report["distributions"][0]["methods"]["raw_ivf_sq"]
    assert raw_sq["index_params"] == {"target_partition_size": 256}
    (mixture,) = [d for d in report["distributions"] if d["distribution"] == "mixture"]
    assert set(mixture["targets"]) == {"recall_met", "p50_over_best_raw", "p50_met"}
    assert report["distributions"][0]["targets"] is None  # clusters: reported, no target

    for label in ("numpy brute force", "raw Lance IVF_PQ", "raw Lance IVF_HNSW_SQ", "lakehouse",
                  "recall@10", "p50 ms", "mixture targets"):
        assert label in proc.stdout, proc.stdout
    assert list(scratch.iterdir()) == []


def test_writers_benchmark_runs_both_sides(tmp_path: Path) -> None:
    out = tmp_path / "results" / "writers.json"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "writers.py"), "--inserts", "3", "--updates", "3",
         "--deletes", "3", "--out", str(out), "--root", str(scratch)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["benchmark"] == "writers"
    for side in ("lakehouse", "raw_lance"):
        for role, calls in (("insert", 6), ("update", 3), ("delete", 3)):
            entry = report["sides"][side][role]
            assert entry["ok"] + entry["failed"] == calls, (side, role)
    # the write protocol: an updater and a deleter beside inserters never fail
    assert all(report["sides"]["lakehouse"][role]["failed"] == 0
               for role in ("insert", "update", "delete"))
    assert set(report["ratios"]) <= {"insert_p50", "update_p50", "delete_p50"}


def test_iterators_benchmark_small_runs_both_sides(tmp_path: Path) -> None:
    out = tmp_path / "results" / "iterators.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "iterators.py"), "--small", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["benchmark"] == "iterators" and report["small"] is True
    assert report["cores"] == 1  # pinned: figures per core
    (video,) = report["videos"].values()
    assert video["every_frame"]["rows"] == video["raw_decode"]["rows"] == video["frames"] > 0
    assert video["fps_1"]["decoded"] < video["frames"]
    ops = report["operations"]
    every = ops["every_frame"]
    assert every["ratio"] == pytest.approx(every["lakehouse"] / every["raw_decode"])
    assert every["met"] is (every["ratio"] >= 0.8)
    assert ops["fps_1"]["met"] is all(s > 1 for s in ops["fps_1"]["per_video"].values())
    for name in ("chunks_sentences", "chunks_token_windows"):
        assert ops[name]["chunks"] > 0 and ops[name]["lakehouse"] > 0 < ops[name]["plain_loop"]
    assert report["all_targets_met"] is (every["met"] and ops["fps_1"]["met"])
    for label in ("raw decode f/s", "every frame f/s", "fps=1 speedup", "plain loop chunks/s"):
        assert label in proc.stdout, proc.stdout


VIEWS_OPERATIONS = {"upkeep": "s", "chunking": "chunks/s", "frames_every_frame": "frames/s",
                    "frames_fps_1": "s"}


def test_views_benchmark_small_runs_both_sides(tmp_path: Path) -> None:
    run = run_benchmark(tmp_path, "views", "--small")
    report = run.report
    assert report["benchmark"] == "views" and report["small"] is True
    assert (report["documents"], report["repeat"], report["cores"]) == (500, 1, 1)
    ops = report["operations"]
    assert {name: op["unit"] for name, op in ops.items()} == VIEWS_OPERATIONS
    upkeep = ops["upkeep"]
    assert upkeep["new_documents"] == 5 and upkeep["chunks"] == ops["chunking"]["chunks"] > 0
    assert upkeep["ratio"] == pytest.approx(upkeep["rebuild"] / upkeep["lakehouse"])
    assert upkeep["met"] is (upkeep["ratio"] >= 20)
    every, fps1 = ops["frames_every_frame"], ops["frames_fps_1"]
    assert every["ratio"] == pytest.approx(every["lakehouse"] / every["raw_decode"])
    assert every["met"] is (every["ratio"] >= 0.8)
    assert 0 < fps1["frames"] < every["frames"]
    assert fps1["met"] is (fps1["raw_decode"] > fps1["lakehouse"])
    assert ops["chunking"]["lakehouse"] > 0 < ops["chunking"]["plain_loop"]
    assert report["all_targets_met"] is (upkeep["met"] and every["met"] and fps1["met"])
    for label in ("upkeep: insert 5 into 500 documents", "(rebuild)", "chunks through the view",
                  "(raw decode)", "decode+JPEG", "fps=1"):
        assert label in run.stdout, run.stdout
    assert list(run.scratch.iterdir()) == []


def test_remote_benchmark_small_runs_and_loses_no_row(tmp_path: Path) -> None:
    run = run_benchmark(tmp_path, "remote", "--small", "--rows", "60")
    report = run.report
    assert report["benchmark"] == "remote" and report["small"] is True
    op = report["operations"]["backfill"]
    assert (op["rows"], op["rpm_limit"], op["lost_rows"]) == (60, 1200, 0)
    assert op["share_of_limit"] == pytest.approx(op["achieved_rpm"] / 1200)
    assert op["met"] is (op["share_of_limit"] >= 0.9 and op["lost_rows"] == 0)
    assert op["server_requests"] == 60 + op["server_429"] and op["retries"] == op["server_429"]
    assert report["all_targets_met"] is op["met"]
    for label in ("throughput (60 rows)", "lost rows", "server requests"):
        assert label in run.stdout, run.stdout
    assert list(run.scratch.iterdir()) == []


def test_long_work_benchmark_small_measures_both_sides_and_resumes(tmp_path: Path) -> None:
    run = run_benchmark(tmp_path, "long_work", "--small")
    report = run.report
    assert report["benchmark"] == "long_work" and report["small"] is True
    assert (report["rows"], report["fragments"], report["repeat"]) == (20_000, 20, 1)
    overhead, resume = report["operations"]["checkpoint_overhead"], report["operations"]["resume"]
    assert len(overhead["with_checkpoints_seconds"]) == \
        len(overhead["without_checkpoints_seconds"]) == 1
    assert overhead["overhead"] == pytest.approx(
        overhead["with_checkpoints"] / overhead["without_checkpoints"] - 1)
    assert overhead["met"] is (overhead["overhead"] <= 0.05)
    # the kill landed after half the fragments, and the resume computed only the rest
    assert 10 <= resume["killed_at_fragments"] < 20
    assert resume["rows_computed_total"] == \
        resume["rows_computed_before_kill"] + resume["rows_computed_after"]
    assert resume["rows_computed_total"] <= 20_000 + 1_000 == resume["limit_rows"]
    assert resume["values_ok"] is True and resume["partial_column_seen"] is False
    assert resume["jobs_left"] == 0 and resume["met"] is True
    assert report["all_targets_met"] is (overhead["met"] and resume["met"])
    for label in ("checkpoint overhead", "without checkpoints", "resumed run",
                  "rows computed in all", "values after the resume"):
        assert label in run.stdout, run.stdout
    assert list(run.scratch.iterdir()) == []


def test_maintenance_benchmark_quick_measures_every_part(tmp_path: Path) -> None:
    run = run_benchmark(
        tmp_path, "maintenance", "--quick", "--inserts", "40", "--compare", "20", "--filter-rows",
        "20000", "--calls", "3", "--no-loader")
    report = run.report
    assert report["benchmark"] == "maintenance" and report["small"] is True
    ops = report["operations"]
    rows = ops["row_by_row"]
    assert rows["inserts"] == 40 and rows["fragments"] < 40
    for part in (rows["point_query"], rows["bytes"]):
        assert part["maintained"] > 0 and part["compacted"] > 0
        assert part["ratio"] == pytest.approx(part["maintained"] / part["compacted"])
    assert ops["insert_cost"]["inserts"] == 20 and ops["insert_cost"]["ratio"] > 0
    assert ops["filtered_collect"]["rows"] == 20_000
    assert ops["filtered_collect"]["maintained_indexes"] == []  # 20,000 rows: no zone map yet
    assert "point query after 40 inserts" in run.stdout
    assert list(run.scratch.iterdir()) == []


SMALL_CALLS = {"similarity": "extra_ms", "similarity_filtered": "extra_ms", "point": "extra_ms",
               "count": "extra_ms", "insert_1k": "ratio", "insert_1k_maintained": "none"}


def test_small_calls_benchmark_quick_measures_both_sides(tmp_path: Path) -> None:
    run = run_benchmark(tmp_path, "small_calls", "--quick", "--calls", "3")
    report = run.report
    assert report["benchmark"] == "small_calls" and report["quick"] is True
    assert (report["rows"], report["vectors"], report["calls"]) == (20_000, 12_000, 3)
    assert len(report["machine"]["load_average"]) == len(report["machine"]["load_average_end"])
    ops = report["operations"]
    assert set(ops) == set(SMALL_CALLS)
    for name, target in SMALL_CALLS.items():
        entry = ops[name]
        assert len(entry["lakehouse_ms"]) == len(entry["raw_lance_ms"]) == 3, name
        assert entry["lakehouse_p50"] > 0 and entry["raw_lance_p50"] > 0, name
        assert entry["lakehouse_p99"] >= entry["lakehouse_p50"], name
        assert entry["extra_ms"] == pytest.approx(entry["lakehouse_p50"] - entry["raw_lance_p50"])
        assert entry["ratio"] == pytest.approx(entry["raw_lance_p50"] / entry["lakehouse_p50"])
        assert entry["target_kind"] == target, name
        if target == "extra_ms":
            assert entry["met"] is (entry["extra_ms"] <= 0.3), name
        elif target == "ratio":
            assert entry["met"] is (entry["ratio"] >= 0.8), name
        else:
            assert entry["met"] is None, name
    for label in ("similarity top-10", "prefilter", "point query a == 777", "count()",
                  "insert 1,000 rows (+c, u)", "maintenance on (extra)"):
        assert label in run.stdout, run.stdout
    assert list(run.scratch.iterdir()) == []
