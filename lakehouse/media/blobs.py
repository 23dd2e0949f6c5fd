"""Lance blob columns: how media bytes are written to and read from a dataset.

A media column is a Lance blob column (``lance.blob_field``): Lance keeps small objects inline in
the data file and large ones in packed or dedicated blob files, reads them only when the column
is projected, and gives lazy file objects (``take_blobs``) for ranged reads.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from lance.blob import BlobType

_BLOB = BlobType()


def is_blob(t: pa.DataType) -> bool:
    return isinstance(t, BlobType)


def to_blob(data: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Encoded bytes (null where there is no value) as a blob array Lance can write.

    >>> blob = to_blob(pa.array([b"GIF89a", None]))
    >>> is_blob(blob.type), blob.is_null().to_pylist()
    (True, [False, True])
    """
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks()
    data = data.cast(pa.large_binary())
    n = len(data)
    fields = list(_BLOB.storage_type)
    storage = pa.StructArray.from_arrays(
        [data, pa.nulls(n, pa.string()), pa.nulls(n, pa.uint64()), pa.nulls(n, pa.uint64())],
        fields=fields, mask=pc.is_null(data))
    return pa.ExtensionArray.from_storage(_BLOB, storage)


def without_referenced(data: pa.Array | pa.ChunkedArray,
                       uris: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """The bytes to store for a ``store="reference"`` column: none where a source URI is kept.

    >>> without_referenced(pa.array([b"from a file", b"inserted bytes"]),
    ...                    pa.array(["file:///data/a.png", None])).to_pylist()
    [None, b'inserted bytes']
    """
    return pc.if_else(pc.is_valid(uris), pa.scalar(None, pa.large_binary()),
                      data.cast(pa.large_binary()))
