"""Where an embedding insert's time goes, next to the bare model on the same inputs.

One extra run of each side, after the timed ones (never in them): named calls of the model
libraries and of lakehouse's insert path are wrapped with timers for the run and restored after.
Each part is the time spent inside its calls on its thread, less the time in other named calls
inside them (the normalisation inside ``encode_text`` counts as normalisation, not as the
model's forward pass), so the parts of the calling thread add up to the wall time:

  tokenisation            the CLIP tokenizer; sentence-transformers' ``preprocess``
  image preprocessing     CLIP's resize / crop / normalise transform of each picture
  model forward           ``encode_text`` / ``encode_image``; the sentence-transformer's forward
  normalisation           ``torch.nn.functional.normalize`` (both libraries call it)
  model call, other       the rest of the model call: batching, picture decode (bare side),
                          tensors to numpy, sentence-transformers' sorting and stacking
  validation              ``intake.validate``: rows to Arrow, types checked (pictures decoded
                          once to check them; the model reuses the decoded picture)
  computed columns        ``Plan.run`` outside the model: Arrow / Polars conversions, the vectors
                          into an Arrow column
  batch assembly          ``fragments.assemble``: the batch in the stored schema
  index upkeep            after the commit (``Table._update_indexes_and_views``)
  other                   the rest of the insert on the calling thread, including the wait for
                          the last batch's Lance write and the commit at the end

Beside them, on the write thread (``intake.written_beside``): Lance encoding and writing the
batches (not counting its waits for the next batch) and the commit; they cost the calling
thread only through the wait at the end and by taking CPU from the model while it runs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import torch

from lakehouse import table as table_module
from lakehouse.exec import evaluate, intake, protocol, writes
from lakehouse.functions.embeddings import EmbeddingFunction

#: (key, label) of the parts on the calling thread, in the order they are printed
CALLING = [
    ("tokenise", "tokenisation"),
    ("preprocess", "image preprocessing"),
    ("forward", "model forward"),
    ("normalise", "normalisation"),
    ("model_other", "model call, other (batching, numpy, decode)"),
    ("validate", "validation"),
    ("evaluate", "computed columns outside the model"),
    ("assemble", "batch assembly"),
    ("index", "index upkeep"),
    ("other", "other (incl. waiting for the last write + commit)"),
]
#: (key, label) of the parts on the write thread, beside the model
BESIDE = [("lance_write", "Lance write, beside the model (write thread)"),
          ("commit", "commit (write thread)")]
_MISSING = object()


class Spans:
    """Exclusive time inside named calls, per part: a call's time less the time in named calls
    it made on the same thread, as wall time (``seconds``) and as the CPU time of the thread
    that made the call (``cpu``: not the model's other threads; less noisy than wall time on a
    busy machine). Wrapped attributes are restored by :meth:`restore`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self._local = threading.local()
        self._undo: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def patch(self, owner: Any, attr: str, key: str) -> None:
        """Time every call of ``owner.attr`` as part ``key`` until :meth:`restore`."""
        saved = vars(owner).get(attr, _MISSING)
        self.replace(owner, attr, self.timed(key, getattr(owner, attr)))
        if saved is _MISSING:  # inherited: removing the wrapper restores it
            self._undo[-1] = lambda: delattr(owner, attr)

    def replace(self, owner: Any, attr: str, value: Any) -> None:
        """Set ``owner.attr`` to ``value`` until :meth:`restore`."""
        saved = vars(owner)[attr] if attr in vars(owner) else getattr(owner, attr)
        setattr(owner, attr, value)
        self._undo.append(lambda: setattr(owner, attr, saved))

    def timed(self, key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            stack = self._stack()
            stack.append((0.0, 0.0))
            start, start_cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                elapsed_cpu = time.thread_time() - start_cpu
                inner, inner_cpu = stack.pop()
                self.add(key, elapsed - inner, elapsed_cpu - inner_cpu)
                if stack:
                    outer, outer_cpu = stack[-1]
                    stack[-1] = (outer + elapsed, outer_cpu + elapsed_cpu)
        return call

    def add(self, key: str, seconds: float, cpu: float) -> None:
        with self._lock:
            self.seconds[key] += seconds
            self.cpu[key] += cpu

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _stack(self) -> list[tuple[float, float]]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack


def patch_model(spans: Spans, bare: Any) -> None:
    """Time the parts of the model's classes, as the bare side holds them (``tokenizer``,
    ``preprocess`` and an open_clip ``model``; or a sentence-transformer ``model``): the
    library's model is an instance of the same classes, so both sides are timed alike."""
    model = type(bare.model)
    if hasattr(bare, "tokenizer"):  # open_clip
        spans.patch(type(bare.tokenizer), "__call__", "tokenise")
        spans.patch(type(bare.preprocess), "__call__", "preprocess")
        spans.patch(model, "encode_text", "forward")
        spans.patch(model, "encode_image", "forward")
    else:  # sentence-transformers: preprocess tokenises, forward runs the network
        spans.patch(model, "preprocess", "tokenise")
        spans.patch(model, "forward", "forward")
    spans.patch(torch.nn.functional, "normalize", "normalise")


def patch_insert(spans: Spans) -> dict[str, float]:
    """Time the library's insert path; the returned dict gets ``tail``: the seconds the calling
    thread waited for the write thread after handing it the last batch."""
    for owner, attr in ((EmbeddingFunction, "embed_texts"), (EmbeddingFunction, "embed_images")):
        spans.patch(owner, attr, "model_other")
    spans.patch(intake, "validate", "validate")
    spans.patch(evaluate.Plan, "run", "evaluate")
    spans.patch(writes, "assemble", "assemble")
    spans.patch(table_module.Table, "_update_indexes_and_views", "index")
    spans.patch(protocol, "write_fragments", "lance_write")
    spans.patch(protocol, "commit", "commit")
    guard = protocol.Failures.guard
    tail: dict[str, float] = {}

    def timed_guard(failures: protocol.Failures, batches: Iterator[Any]) -> Iterator[Any]:
        return _less_waits(spans, guard(failures, batches))

    written_beside = intake.written_beside

    def timed_written_beside(items: Iterator[Any], write: Callable[[Iterator[Any]], Any],
                             *args: Any) -> Any:
        made: list[float] = []
        result = written_beside(_noting_end(items, made), write, *args)
        tail["tail"] = time.perf_counter() - made[0] if made else 0.0
        return result

    spans.replace(protocol.Failures, "guard", timed_guard)
    spans.replace(intake, "written_beside", timed_written_beside)
    return tail


def _less_waits(spans: Spans, batches: Iterator[Any]) -> Iterator[Any]:
    """``batches``, with the time Lance waits for each one taken off the Lance write part."""
    while True:
        start, start_cpu = time.perf_counter(), time.thread_time()
        try:
            batch = next(batches)
        except StopIteration:
            batch = _MISSING
        spans.add("lance_write", start - time.perf_counter(), start_cpu - time.thread_time())
        if batch is _MISSING:
            return
        yield batch


def _noting_end(items: Iterator[Any], made: list[float]) -> Iterator[Any]:
    yield from items
    made.append(time.perf_counter())


@contextlib.contextmanager
def timing(bare: Any, insert: bool) -> Iterator[tuple[Spans, dict[str, float]]]:
    """Spans of one run: the model's parts, and the insert path's when ``insert``."""
    spans = Spans()
    try:
        patch_model(spans, bare)
        tail = patch_insert(spans) if insert else {}
        yield spans, tail
    finally:
        spans.restore()


def measure(bare_model: Any, bare: Callable[[], Any], insert: Callable[[], Any]) -> dict[str, Any]:
    """One instrumented run of ``bare()`` (``bare_model`` holds the model it runs) and of
    ``insert()``: each side's parts in seconds (``other``: the rest of its wall time on the
    calling thread) and wall time, and for the insert the parts beside the model and ``tail``."""
    out: dict[str, Any] = {}
    for side, run, is_insert in (("bare", bare, False), ("insert", insert, True)):
        with timing(bare_model, is_insert) as (spans, tail):
            outer = run if is_insert else spans.timed("model_other", run)
            start, start_cpu = time.perf_counter(), time.thread_time()
            outer()
            wall, used = time.perf_counter() - start, time.thread_time() - start_cpu
        parts = {key: spans.seconds.get(key, 0.0) for key, _ in CALLING if key != "other"}
        parts["other"] = wall - sum(parts.values())
        cpu = {key: spans.cpu.get(key, 0.0) for key, _ in CALLING + BESIDE if key != "other"}
        cpu["other"] = used - sum(spans.cpu.get(key, 0.0) for key, _ in CALLING)
        out[side] = {"wall": wall, "parts": parts, "cpu": cpu}
        if is_insert:
            out[side]["beside"] = {key: spans.seconds.get(key, 0.0) for key, _ in BESIDE}
            out[side]["tail"] = tail.get("tail", 0.0)
    return out


def render(label: str, n: int, unit: str, found: dict[str, Any]) -> str:
    """The breakdown of one case as text: one row per part, bare, insert and the difference
    (wall time), and the insert's CPU time on the thread of the part."""
    from reporting import table

    bare, ours = found["bare"], found["insert"]
    rows = [(f"{label}: where the time goes ({n:,} {unit})", "bare model", "insert",
             "insert - bare", "insert, CPU of its thread")]
    for key, name in CALLING:
        b, o = bare["parts"][key], ours["parts"][key]
        if b == 0 and o == 0:
            continue
        rows.append((f"  {name}", _ms(b), _ms(o), _ms(o - b, signed=True),
                     _ms(ours["cpu"][key])))
    rows.append(("  total (wall)", _ms(bare["wall"]), _ms(ours["wall"]),
                 _ms(ours["wall"] - bare["wall"], signed=True), ""))
    rows.append(("  of other: after the last batch was made", "", _ms(ours["tail"]), "", ""))
    for key, name in BESIDE:
        rows.append((f"  {name}", "", _ms(ours["beside"][key]), "", _ms(ours["cpu"][key])))
    return table(rows)


def _ms(seconds: float, signed: bool = False) -> str:
    return f"{seconds * 1e3:+.1f} ms" if signed else f"{seconds * 1e3:.1f} ms"
