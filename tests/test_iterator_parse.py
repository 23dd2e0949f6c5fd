"""Iterator calls read from text (``lh.parse_iterator``, the CLI's ``--iterator``): every accepted
text gives the call its public constructor gives; every other text is refused with a lakehouse
error naming the part (and, for the shape of the call, the iterators there are); and no text,
however it is made, runs anything.

Local tables only: parsing reads the table's columns, nothing else of the backend.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakehouse as lh
from lakehouse.iterators.registry import builtin_names

BUILTINS = "document_splitter, frame_iterator, tile_iterator, audio_splitter"
# what running code from the text would raise (a parser that compiled or evaluated it)
RUNNING = ("exec", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
           "subprocess.Popen", "import", "builtins.input", "socket.connect")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> lh.Table:
    db = lh.connect(str(tmp_path_factory.mktemp("iterators") / "lh"))
    return db.create_table("media", {"doc": lh.String, "page": lh.Document, "video": lh.Video,
                                     "image": lh.Image, "sound": lh.Audio, "n": lh.Int})


class Audit:
    """The audit events of :data:`RUNNING` raised inside :meth:`watching`."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.active = False
        sys.addaudithook(self.hook)  # a hook cannot be removed: it records only while active

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if self.active and event.startswith(RUNNING):
            self.events.append(event)

    @contextmanager
    def watching(self) -> Iterator[list[str]]:
        self.events.clear()
        self.active = True
        try:
            yield self.events
        finally:
            self.active = False


@pytest.fixture(scope="module")
def audit() -> Audit:
    return Audit()


@pytest.mark.parametrize(("text", "make"), [
    ("frame_iterator(video, fps=1)",
     lambda t: lh.iterators.frame_iterator(t.video, fps=1)),
    ("frame_iterator(video)", lambda t: lh.iterators.frame_iterator(t.video)),
    ("  frame_iterator( video ,\n keyframes_only=True, )  ",
     lambda t: lh.iterators.frame_iterator(t.video, keyframes_only=True)),
    ("document_splitter(doc, separators=('heading','sentence'))",
     lambda t: lh.iterators.document_splitter(t.doc, separators=("heading", "sentence"))),
    ("document_splitter(page, separators=['paragraph', 'token_limit'], limit=200, overlap=20, "
     "metadata=('page',))",
     lambda t: lh.iterators.document_splitter(t.page, separators=("paragraph", "token_limit"),
                                              limit=200, overlap=20, metadata=("page",))),
    ("tile_iterator(image, tile_size=(256, 128), overlap=+16)",
     lambda t: lh.iterators.tile_iterator(t.image, tile_size=(256, 128), overlap=16)),
    ("audio_splitter(sound, duration=2.5, overlap=0.5)",
     lambda t: lh.iterators.audio_splitter(t.sound, duration=2.5, overlap=0.5)),
    ("audio_splitter(video, duration=10)",
     lambda t: lh.iterators.audio_splitter(t.video, duration=10)),
])
def test_accepted_text_is_the_constructors_call(media: lh.Table, text: str, make) -> None:
    call = lh.parse_iterator(text, media)
    assert call == make(media)
    assert repr(call) == repr(make(media))
    assert call.to_json() == make(media).to_json()


@pytest.mark.parametrize(("text", "error", "message", "column"), [
    # the shape of the call: the iterators there are are listed
    ("__import__('os')", lh.ExpressionSyntaxError, "'__import__' is not an iterator", 1),
    ("__import__('os').system('ls')", lh.ExpressionSyntaxError,
     "cannot call \"__import__('os').system\"", 1),
    ("os.system('ls')", lh.ExpressionSyntaxError, "cannot call 'os.system'", 1),
    ("lh.iterators.frame_iterator(video)", lh.ExpressionSyntaxError,
     "cannot call 'lh.iterators.frame_iterator'", 1),
    ("frame_iterater(video)", lh.ExpressionSyntaxError,
     "'frame_iterater' is not an iterator (did you mean 'frame_iterator'?)", 1),
    ("open('/etc/passwd')", lh.ExpressionSyntaxError, "'open' is not an iterator", 1),
    ("video", lh.ExpressionSyntaxError, "expected an iterator call, got 'video'", 1),
    ("(lambda: 1)()", lh.ExpressionSyntaxError, "cannot call 'lambda: 1'", 2),
    ("frame_iterator(*columns)", lh.ExpressionSyntaxError,
     "cannot use a starred argument '*columns'", 16),
    ("frame_iterator(video, **options)", lh.ExpressionSyntaxError,
     "cannot use a starred argument '**options'", 23),
    # the column
    ("frame_iterator(video.fileurl)", lh.ExpressionSyntaxError,
     "frame_iterator() reads a column, named as it is", 16),
    ("frame_iterator('video')", lh.ExpressionSyntaxError,
     "frame_iterator() reads a column, named as it is", 16),
    ("frame_iterator(__class__)", lh.ExpressionSyntaxError,
     "frame_iterator() reads a column, named as it is", 16),
    ("frame_iterator(video, 1)", lh.ExpressionSyntaxError,
     "frame_iterator() takes one column, then options by name", 23),
    ("frame_iterator()", lh.ExpressionSyntaxError, "takes one column", 1),
    ("frame_iterator(vidoe)", lh.ColumnNotFoundError,
     "table 'media' has no column 'vidoe'", None),
    ("frame_iterator(doc)", lh.TypeMismatchError,
     "frame_iterator() reads a Video column; column 'doc' is String at column 16", None),
    # the options: literals only, checked by the constructor
    ("frame_iterator(video, fps=int('1'))", lh.ExpressionSyntaxError,
     "expected a literal value (a string, number, True, False or None), got 'int(...)'", 27),
    ("frame_iterator(video, fps=__import__('os'))", lh.ExpressionSyntaxError,
     "got '__import__(...)'", 27),
    ("frame_iterator(video, fps=lambda: 1)", lh.ExpressionSyntaxError, "got 'lambda: 1'", 27),
    ("frame_iterator(video, fps=f'{video}')", lh.ExpressionSyntaxError, "got \"f'{video}'\"", 27),
    ("frame_iterator(video, fps=n)", lh.ExpressionSyntaxError, "got 'n'", 27),
    ("frame_iterator(video, fps=2**3)", lh.ExpressionSyntaxError, "got '2**3'", 27),
    ("frame_iterator(video, fsp=1)", lh.InvalidOptionError,
     "unexpected keyword argument 'fsp' (did you mean 'fps'?); its options are fps, every_n, "
     "keyframes_only", None),
    ("tile_iterator(image)", lh.InvalidOptionError,
     "missing a required argument: 'tile_size'; its options are tile_size, overlap", None),
    ("frame_iterator(video, fps=-1)", lh.InvalidOptionError,
     "fps must be a number above 0, got -1", None),
    # text that is not a call at all, or names a user iterator
    ("frame_iterator(video,", lh.ExpressionSyntaxError, "iterator: ", None),
    ("   ", lh.ExpressionSyntaxError, "the text is empty; write an iterator call", 1),
    ("my.module:split(doc)", lh.ExpressionSyntaxError,
     "'my.module:split' names a user iterator; a user iterator runs code of its module, so "
     "it cannot be given as text: create the view in Python", 1),
    ("'my_module:split'(doc)", lh.ExpressionSyntaxError, "'my_module:split' names a user", 1),
])
def test_refused_text_names_the_problem(media: lh.Table, text: str, error: type[lh.Error],
                                        message: str, column: int | None) -> None:
    with pytest.raises(error) as info:
        lh.parse_iterator(text, media)
    assert type(info.value) is error
    assert str(info.value).startswith("iterator: ")
    assert message in str(info.value)
    if column is not None:
        assert info.value.column == column


@pytest.mark.parametrize("text", ["__import__('os')", "os.system('ls')", "video",
                                  "frame_iterater(video)", "frame_iterator(*columns)"])
def test_a_refused_shape_lists_the_iterators(media: lh.Table, text: str) -> None:
    with pytest.raises(lh.ExpressionSyntaxError) as info:
        lh.parse_iterator(text, media)
    assert f"only a built-in iterator can be named here ({BUILTINS}), like " \
        "frame_iterator(video, fps=1)" in str(info.value)


def test_user_iterators_are_made_in_python(media: lh.Table) -> None:
    """Only the built-ins have a name text can give; a user iterator is never imported."""
    assert builtin_names() == BUILTINS.split(", ")
    before = set(sys.modules)
    with pytest.raises(lh.ExpressionSyntaxError, match="create the view in Python"):
        lh.parse_iterator("json.tool:main(doc)", media)
    assert set(sys.modules) == before


_NAMES = st.sampled_from([*builtin_names(), "__import__", "eval", "exec", "open", "os.system",
                          "getattr", "x", "frame_iterator.__globals__", "mod:func", ""])
_ARGS = st.sampled_from(["video", "doc", "page", "image", "sound", "n", "nope", "__class__",
                         "video.fileurl", "*video", "'video'", "1", "open('x')", ""])
_LITERALS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple),
    max_leaves=6).map(repr)
_VALUES = _LITERALS | st.sampled_from(["__import__('os').system('true')", "lambda: 0",
                                       "f'{x}'", "[*x]", "{1: 2}", "x.y", "1 if x else 2",
                                       "(yield)", "10**10**10", "b'x'", "1j", "...", "-x"])
_OPTIONS = st.sampled_from(["fps", "every_n", "keyframes_only", "separators", "limit",
                            "overlap", "metadata", "tile_size", "duration", "__class__", "**"])
_CALLS = st.builds(
    lambda name, arg, options: f"{name}({', '.join([arg, *options])})",
    _NAMES, _ARGS,
    st.lists(st.builds(lambda k, v: f"**{v}" if k == "**" else f"{k}={v}", _OPTIONS, _VALUES),
             max_size=3))

# calls of the built-ins on their columns with literal options: what reaches the constructors
_WELL_FORMED = st.builds(
    lambda name, arg, options: f"{name}({', '.join([arg, *options])})",
    st.sampled_from(builtin_names()), st.sampled_from(["video", "doc", "page", "image", "sound"]),
    st.lists(st.builds(lambda k, v: f"{k}={v}", _OPTIONS.filter(lambda k: k != "**"),
                       _LITERALS), max_size=3, unique_by=lambda o: o.split("=")[0]))


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60) | _CALLS | _WELL_FORMED | st.builds(
    lambda a, b: a + b, _CALLS, st.text(alphabet="()[],=*.:'\"\\ \n#", max_size=4)))
def test_any_text_raises_only_lakehouse_errors_and_runs_nothing(
        media: lh.Table, audit: Audit, text: str) -> None:
    call = None
    with audit.watching() as events, suppress(lh.Error):
        call = lh.parse_iterator(text, media)
    assert events == [], (text, events)
    if call is not None:
        assert call.name in builtin_names()
        assert call == call.from_json(call.to_json(), lambda name, col_id: media[name])


def test_the_audit_sees_code_that_runs(audit: Audit) -> None:
    """The check above would catch a parser that evaluated its text."""
    with audit.watching() as events:
        eval(compile("__import__('os').getpid()", "text", "eval"))  # noqa: S307
    assert "exec" in events
