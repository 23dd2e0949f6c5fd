"""Secrets by name: ``lh.secret("OPENAI_API_KEY")`` stands for a key that is never stored.

A definition (a computed column calling a remote model, an embedding index) stores a secret as
``{"secret": NAME}`` (with ``"file": PATH`` when the user named a dotenv-style file); the value is
read from the environment, or from that file, when a call runs, and only sent where the call
sends it (an ``Authorization`` header). Reprs show the name: ``secret('OPENAI_API_KEY')``.

Storing a definition refuses a literal that looks like a key (:func:`refuse_literals`, which
:mod:`lakehouse.exprs.serialize` calls for every function call it stores, UDFs included): a
string under an argument or option whose name holds ``key``, ``token``, ``secret`` or
``password``, or any string argument shaped like a known key (OpenAI ``sk-``/``sk-proj-``,
AWS ``AKIA...``, GitHub ``ghp_``/``github_pat_``, Hugging Face ``hf_``, Slack ``xoxb-``/``xoxp-``,
Anthropic ``sk-ant-``) or a long random-looking base64 token. The message shows the
``lh.secret(...)`` to use instead.

>>> key = lh.secret("OPENAI_API_KEY")
>>> key, key.to_json()
(secret('OPENAI_API_KEY'), {'secret': 'OPENAI_API_KEY'})
>>> refuse_literals("my_udfs:caption", [("api_key", "sk-proj-abc123")])
Traceback (most recent call last):
...
lakehouse.errors.SecretLiteralError: my_udfs:caption: argument 'api_key' holds a literal that \
looks like a secret; it would be stored in the table definition and data files. Pass \
lh.secret('API_KEY') (read from the environment variable API_KEY when the call runs) or \
lh.secret('API_KEY', file='~/.config/lakehouse.env') instead
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lakehouse.errors import InvalidOptionError, SecretLiteralError, SecretNotFoundError

#: Argument and option names whose plain string values are taken for secrets.
SECRET_NAME = re.compile(r"key|token|secret|passw(or)?d|credential", re.IGNORECASE)
#: Values shaped like keys of well-known services.
KEY_SHAPES = re.compile(
    r"^(sk-(proj-|ant-|svcacct-)?[A-Za-z0-9_\-]{8,}"
    r"|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|hf_[A-Za-z0-9]{20,}"
    r"|xox[bpas]-[A-Za-z0-9\-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{30,}"
    r"|glpat-[A-Za-z0-9_\-]{20,})$")
_TOKEN = re.compile(r"^[A-Za-z0-9+/=_\-]{32,}$")
_MIN_ENTROPY = 4.4  # bits per character: random base64 of 40 characters has about 4.8, model
# names and CamelCase identifiers of that length about 4.0 to 4.2
_FILE_EXAMPLE = "~/.config/lakehouse.env"


@dataclasses.dataclass(frozen=True)
class Secret:
    """A secret named, not held: the name of an environment variable (or of an entry of the
    dotenv-style ``file``), resolved when a call runs. Build it with :func:`secret`.

    >>> lh.secret("HF_TOKEN", file="~/.config/hf.env")
    secret('HF_TOKEN', file='~/.config/hf.env')
    """

    name: str
    file: str | None = None

    def __repr__(self) -> str:
        where = f", file={self.file!r}" if self.file else ""
        return f"secret({self.name!r}{where})"

    def to_json(self) -> dict[str, str]:
        """What a definition stores: the name, and the file when one was named.

        >>> lh.secret("OPENAI_API_KEY").to_json()
        {'secret': 'OPENAI_API_KEY'}
        """
        return {"secret": self.name, **({"file": self.file} if self.file else {})}

    @staticmethod
    def from_json(data: Any) -> Secret:
        """The secret a stored ``{"secret": NAME}`` names.

        >>> Secret.from_json({"secret": "OPENAI_API_KEY"})
        secret('OPENAI_API_KEY')
        """
        if not is_secret_json(data):
            raise InvalidOptionError(f"a stored secret must be {{'secret': NAME}}, got {data!r}")
        return secret(data["secret"], file=data.get("file"))

    def resolve(self) -> str:
        """The value, read now: from the file when one was named, else the environment.

        >>> import os
        >>> os.environ["DOCS_DEMO_KEY"] = "demo-value"
        >>> lh.secret("DOCS_DEMO_KEY").resolve()
        'demo-value'
        >>> lh.secret("NO_SUCH_SECRET_HERE").resolve()
        Traceback (most recent call last):
        ...
        lakehouse.errors.SecretNotFoundError: secret 'NO_SUCH_SECRET_HERE' is not set: looked \
in the environment variable NO_SUCH_SECRET_HERE; set it (export NO_SUCH_SECRET_HERE=...) or name \
a file holding it with lh.secret('NO_SUCH_SECRET_HERE', file=...)
        """
        if self.file is None:
            value = os.environ.get(self.name)
            where = f"the environment variable {self.name}"
            fix = (f"set it (export {self.name}=...) or name a file holding it with "
                   f"lh.secret({self.name!r}, file=...)")
        else:
            path = Path(self.file).expanduser()
            value = _read_file(path).get(self.name)
            missing = "" if path.is_file() else " (which does not exist)"
            where = f"the file {str(path)!r}{missing}"
            fix = f"add a line {self.name}=... to it"
        if not value:
            raise SecretNotFoundError(f"secret {self.name!r} is not set: looked in {where}; {fix}")
        return value


def secret(name: str, *, file: str | os.PathLike[str] | None = None) -> Secret:
    """A reference to a secret by name, for the ``api_key`` of remote model functions (and any
    UDF option): the definition stores ``name`` (and ``file``), never the value, which is read
    from the environment variable ``name``, or from the dotenv-style ``file`` (``NAME=value``
    lines), each time a call runs.

    >>> lh.secret("OPENAI_API_KEY")
    secret('OPENAI_API_KEY')
    >>> lh.secret("not a name")
    Traceback (most recent call last):
    ...
    lakehouse.errors.InvalidOptionError: lh.secret() takes the name of an environment variable \
(letters, digits and _), got 'not a name'
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", name):
        raise InvalidOptionError("lh.secret() takes the name of an environment variable (letters,"
                                 f" digits and _), got {name!r}")
    return Secret(name, None if file is None else os.fspath(file))


def is_secret_json(data: Any) -> bool:
    """Whether ``data`` is a stored secret reference (``{"secret": NAME}``, maybe a file).

    >>> is_secret_json({"secret": "OPENAI_API_KEY"}), is_secret_json({"secret": 1})
    (True, False)
    """
    return (isinstance(data, Mapping) and isinstance(data.get("secret"), str)
            and set(data) <= {"secret", "file"} and isinstance(data.get("file", ""), str))


def looks_like_key(value: str) -> bool:
    """Whether a string is shaped like a key: a known service's form, or a long random token
    (base64 characters, mixed case and digits, high entropy; hex digests are not taken).

    >>> looks_like_key("sk-proj-4f9Qx7"), looks_like_key("AKIAIOSFODNN7EXAMPLE")
    (True, True)
    >>> looks_like_key("sentence-transformers/all-MiniLM-L6-v2"), looks_like_key("a" * 64)
    (False, False)
    >>> looks_like_key("laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    False
    >>> looks_like_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY")
    True
    """
    if KEY_SHAPES.match(value):
        return True
    if not _TOKEN.match(value):
        return False
    kinds = [sum(c.isupper() for c in value), sum(c.islower() for c in value),
             sum(c.isdigit() for c in value)]
    return (kinds[0] >= 2 and kinds[1] >= 2 and kinds[2] >= 1
            and sum(kinds) >= 0.8 * len(value) and _entropy(value) >= _MIN_ENTROPY)


def refuse_literals(function: str, named: Iterable[tuple[str, Any]]) -> None:
    """Refuse to store a call of ``function`` whose arguments or options (``(name, value)``
    pairs, nested lists and mappings searched too) hold a literal that looks like a secret;
    stored secret references (``{"secret": NAME}``) are what is wanted and pass.

    >>> refuse_literals("str.contains", [("arg0", "needle")])  # nothing secret: no error
    >>> refuse_literals("my_udfs:fetch", [("headers", {"Authorization": "ghp_" + "x" * 36})])
    Traceback (most recent call last):
    ...
    lakehouse.errors.SecretLiteralError: my_udfs:fetch: argument 'headers.Authorization' holds \
a literal that looks like a secret; ...
    """
    for path, value in _strings(named):
        leaf = path.rsplit(".", 1)[-1]
        if value and (SECRET_NAME.search(leaf) or looks_like_key(value)):
            env = re.sub(r"[^A-Z0-9]+", "_", leaf.upper()).strip("_") or "API_KEY"
            if not SECRET_NAME.search(env) or env.startswith("ARG"):
                env = "API_KEY"
            msg = (f"{function}: argument {path!r} holds a literal that looks like a secret; it "
                   "would be stored in the table definition and data files. Pass "
                   f"lh.secret({env!r}) (read from the environment variable {env} when the call "
                   f"runs) or lh.secret({env!r}, file={_FILE_EXAMPLE!r}) instead")
            raise SecretLiteralError(msg)


def _strings(named: Iterable[tuple[str, Any]]) -> Iterable[tuple[str, str]]:
    stack = list(named)
    while stack:
        path, value = stack.pop(0)
        if isinstance(value, str):
            yield path, value
        elif is_secret_json(value) or isinstance(value, Secret):
            continue
        elif isinstance(value, Mapping):
            stack.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((path, v) for v in value)


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _read_file(path: Path) -> dict[str, str | None]:
    """The entries of a dotenv-style file (python-dotenv reads it: quotes, ``export``,
    comments); none when the file does not exist."""
    from dotenv import dotenv_values  # small; only when a secret names a file

    if not path.is_file():
        return {}
    return dict(dotenv_values(path))


__all__ = ["KEY_SHAPES", "SECRET_NAME", "Secret", "is_secret_json", "looks_like_key",
           "refuse_literals", "secret"]
