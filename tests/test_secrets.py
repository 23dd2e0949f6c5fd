"""No repr, log line or error message shows a secret (issue 11, point 10): the storage options of
a real S3 lakehouse, the user and password of a URI, and the signature, credential and token of
a presigned URL stay out of reprs, error messages (their tracebacks included) and the error
messages recorded for rows."""

from __future__ import annotations

import io
import socket
import traceback

import boto3
import numpy as np
import pytest
from botocore.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import lakehouse as lh
from lakehouse.storage import redact_text, redact_uri

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessionTOKENvalue0123456789"
ALLOW_PRIVATE = lh.FetchPolicy(allow_private_network=True)


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _everything_said(exc: BaseException) -> str:
    """The message and the whole printed traceback, chained causes included."""
    return str(exc) + "".join(traceback.format_exception(exc))


@pytest.fixture
def s3_with_secrets(s3_bucket: str, s3_env: str) -> tuple[str, dict[str, str]]:
    """A moto bucket, and storage options that also hold a session token; moto accepts any
    secret, so the table works with these values."""
    options = {"aws_endpoint": s3_env, "aws_access_key_id": "AKIAEXAMPLEKEYID",
               "aws_secret_access_key": SECRET_KEY, "aws_session_token": SESSION_TOKEN,
               "aws_region": "us-east-1", "allow_http": "true"}
    return f"s3://{s3_bucket}/lh", options


def test_reprs_of_a_real_s3_lakehouse_hide_its_secrets(s3_with_secrets) -> None:
    root, options = s3_with_secrets
    db = lh.connect(root, storage_options=options, fetch=ALLOW_PRIVATE)
    t = db.create_table("t", {"n": lh.Int, "image": lh.Image})
    t.insert([{"n": 1, "image": _png()}], progress=False)
    assert t.count_rows() == 1  # the secrets still reach S3

    location = db.location
    shown = [repr(location), str(location), repr(location.storage_options),
             str(location.storage_options), repr(db), repr(t), repr(t._context()),
             repr(lh.FetchPolicy())]
    for text in shown:
        assert SECRET_KEY not in text and SESSION_TOKEN not in text, text
    assert "'aws_secret_access_key': '***'" in repr(location)
    assert options["aws_endpoint"] in repr(location)  # what is not secret stays readable
    # the options still hold the real values for Lance and s3fs
    assert location.storage_options["aws_secret_access_key"] == SECRET_KEY


def test_storage_errors_hide_secrets(s3_with_secrets) -> None:
    root, options = s3_with_secrets
    endpoint = f"http://ann:hunter2-password@127.0.0.1:{_closed_port()}"
    with pytest.raises(lh.StorageError) as info:
        lh.connect(root, storage_options={**options, "aws_endpoint": endpoint})
    said = str(info.value)
    assert "hunter2-password" not in said and SECRET_KEY not in said, said
    assert "http://***@127.0.0.1" in said


def _presigned(s3_env: str, bucket: str, key: str, version: str = "s3v4") -> str:
    """A real presigned URL from boto3: SigV4 (X-Amz-Signature, X-Amz-Credential) or the older
    form (Signature, AWSAccessKeyId)."""
    client = boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(signature_version=version))
    return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                         ExpiresIn=600)


def _secrets_of(url: str) -> list[str]:
    """The values of the query parameters that must never be shown."""
    query = url.split("?", 1)[1]
    pairs = [p.split("=", 1) for p in query.split("&")]
    found = [v for k, v in pairs if k in ("X-Amz-Signature", "X-Amz-Credential",
                                           "X-Amz-Security-Token", "Signature", "AWSAccessKeyId")]
    assert found
    return found


def test_errors_from_presigned_urls_hide_the_signature(tmp_path, s3_bucket, s3_env) -> None:
    boto3.client("s3", endpoint_url=s3_env).put_object(Bucket=s3_bucket, Key="media/not.png",
                                                       Body=b"not an image")
    presigned = {
        "missing": _presigned(s3_env, s3_bucket, "media/missing.png"),
        "not an image": _presigned(s3_env, s3_bucket, "media/not.png", "s3"),
        "unreachable": (f"http://127.0.0.1:{_closed_port()}/a.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                        "&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
                        f"&X-Amz-Security-Token={SESSION_TOKEN}"
                        "&X-Amz-Signature=0123456789abcdef0123456789abcdef"),
    }
    t = lh.connect(tmp_path / "lh", fetch=ALLOW_PRIVATE).create_table(
        "t", {"image": lh.Image, "n": lh.Int})
    for i, (case, url) in enumerate(presigned.items()):
        with pytest.raises(lh.MediaError) as info:
            t.insert([{"image": url, "n": i}], progress=False)
        said = _everything_said(info.value)
        for secret in _secrets_of(url):
            assert secret not in said, (case, said)
        assert "Signature=***" in said, said
        assert url.split("?")[0] in said  # the message still names the source

    t.insert([{"image": url, "n": i} for i, url in enumerate(presigned.values())],
             on_error="ignore", progress=False)
    messages = t.select(t.n, msg=t.image.errormsg).collect()["msg"].to_list()
    assert all(messages)
    for url, message in zip(presigned.values(), messages, strict=True):
        for secret in _secrets_of(url):
            assert secret not in message, message


def test_a_reference_that_can_no_longer_be_read_hides_the_signature(tmp_path, s3_bucket,
                                                                     s3_env) -> None:
    client = boto3.client("s3", endpoint_url=s3_env)
    client.put_object(Bucket=s3_bucket, Key="media/a.png", Body=_png())
    url = _presigned(s3_env, s3_bucket, "media/a.png")
    t = lh.connect(tmp_path / "lh", fetch=ALLOW_PRIVATE).create_table(
        "t", {"image": lh.Image(store="reference")})
    t.insert([{"image": url}], progress=False)
    client.delete_object(Bucket=s3_bucket, Key="media/a.png")
    with pytest.raises(lh.MediaError, match="cannot be read") as info:
        t.select(t.image).collect()
    said = _everything_said(info.value)
    for secret in _secrets_of(url):
        assert secret not in said, said


def test_userinfo_in_a_source_url_is_hidden(tmp_path) -> None:
    url = f"http://ann:hunter2-password@127.0.0.1:{_closed_port()}/a.png"
    t = lh.connect(tmp_path / "lh", fetch=ALLOW_PRIVATE).create_table("t", {"image": lh.Image})
    with pytest.raises(lh.MediaError) as info:
        t.insert([{"image": url}], progress=False)
    said = _everything_said(info.value)
    assert "hunter2-password" not in said and "http://***@127.0.0.1" in said, said


_token = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+",
                 min_size=12, max_size=60)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(signature=_token, credential=_token, password=_token,
       param=st.sampled_from(["X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
                              "Signature", "sig", "X-Goog-Signature", "access_token", "api_key"]),
       host=st.sampled_from(["bucket.s3.amazonaws.com", "127.0.0.1:9000", "[::1]:80"]),
       scheme=st.sampled_from(["http", "https", "s3"]))
def test_redaction_hides_every_generated_secret(signature: str, credential: str, password: str,
                                                param: str, host: str, scheme: str) -> None:
    url = (f"{scheme}://user:{password}@{host}/photos/a.jpg?size=2&{param}={signature}"
           f"&X-Amz-Credential={credential}")
    for shown in (redact_uri(url), redact_text(f"cannot read '{url}': HTTP 403 Forbidden")):
        assert signature not in shown and credential not in shown and password not in shown
        assert "/photos/a.jpg?size=2&" in shown  # what is not secret stays


@pytest.mark.parametrize("module", ["lakehouse.storage", "lakehouse.media.policy",
                                    "lakehouse.functions.document"])
def test_docstring_examples_of_the_fetch_modules(module: str, docstring_examples) -> None:
    import importlib

    result = docstring_examples(importlib.import_module(module))
    assert result.attempted and result.failed == 0, result.report
