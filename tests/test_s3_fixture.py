"""The moto S3 fixture itself: boto3, Lance through storage options, and Lance through env vars."""

from __future__ import annotations

import boto3
import lance
import pyarrow as pa
import pytest


@pytest.mark.s3
def test_boto3_put_get(s3_bucket: str, s3_env: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_env)  # credentials and region from the env
    client.put_object(Bucket=s3_bucket, Key="hello.txt", Body=b"hello moto")
    body = client.get_object(Bucket=s3_bucket, Key="hello.txt")["Body"].read()
    assert body == b"hello moto"
    assert s3_bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]


@pytest.mark.s3
def test_each_test_gets_a_fresh_bucket(s3_bucket: str, s3_env: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_env)
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0


@pytest.mark.s3
def test_lance_roundtrip_with_storage_options(s3_bucket: str, s3_env: str) -> None:
    options = {
        "aws_endpoint": s3_env,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "allow_http": "true",
    }
    uri = f"s3://{s3_bucket}/x.lance"
    table = pa.table({"n": [1, 2, 3], "s": ["a", "b", "c"]})
    lance.write_dataset(table, uri, storage_options=options)
    lance.write_dataset(table, uri, mode="append", storage_options=options)

    ds = lance.dataset(uri, storage_options=options)
    assert ds.version == 2
    assert ds.count_rows() == 6
    assert ds.to_table(filter="n > 1").column("s").to_pylist() == ["b", "c", "b", "c"]

    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert any(k.startswith("x.lance/_versions/") for k in keys), keys


@pytest.mark.s3
def test_lance_roundtrip_with_env_only(s3_bucket: str, s3_env: str) -> None:
    """The AWS_* variables set by the fixture are enough for Lance (and so for subprocesses)."""
    uri = f"s3://{s3_bucket}/env.lance"
    lance.write_dataset(pa.table({"n": [1, 2]}), uri)
    assert lance.dataset(uri).to_table().column("n").to_pylist() == [1, 2]


def test_lakehouse_root_fixture(lakehouse_root, backend: str) -> None:
    uri = f"{lakehouse_root.uri}/t.lance"
    lance.write_dataset(pa.table({"n": [7]}), uri, storage_options=lakehouse_root.storage_options)
    ds = lance.dataset(uri, storage_options=lakehouse_root.storage_options)
    assert ds.to_table().column("n").to_pylist() == [7]
    assert lakehouse_root.uri.startswith("s3://") == (backend == "s3")
