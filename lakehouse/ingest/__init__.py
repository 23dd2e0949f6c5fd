"""Bulk ingest: media files from folders, globs and S3 prefixes into a media column, and whole
tables from Parquet shards (the Hugging Face layout included), CSV files and in-memory frames.

Each function streams its input in bounded memory into a single insert, so it adds exactly one
version to the table: a failure half way leaves the table as it was. The import functions create
the table first (from the types found in the input) and drop it again if the import fails, so a
failed import leaves no half-made table behind. With a Ray engine (``lh.connect(...,
engine="ray")``, or ``engine=`` on the call), the Parquet, CSV and JSON imports and
:func:`insert_files` share their input out to Ray tasks, which read, convert, compute and write
it, and this process commits it all in that one insert (:mod:`lakehouse.exec.ray_ingest`).

>>> import os, shutil
>>> os.makedirs("photos/space")
>>> _ = shutil.copy(photo, "photos/space/astronaut.png")
>>> photos = db.create_table("photos", {"image": lh.Image, "label": lh.String})
>>> label = lambda uri: {"label": parent_folder(uri)}  # the name of the file's folder
>>> photos.insert_files("photos/**/*.png", extra=label)
WriteResult(rows_written=1, rows_with_errors=0, version=2)
>>> pl.DataFrame({"player": ["ann", "bo"], "score": [3, 5]}).write_parquet("scores.parquet")
>>> db.import_parquet("scores", "scores.parquet", progress=False).count()
2
>>> db.create_table("more", source=pl.DataFrame({"a": [1]})).collect().rows()
[(1,)]

The package holds one concept per module:

* :mod:`~lakehouse.ingest.files`: finding files (paths, folders, globs, ``s3://`` prefixes) and
  :func:`insert_files`, :func:`expand_sources`, :func:`parent_folder`;
* :mod:`~lakehouse.ingest.arrow_types`: the Arrow -> lakehouse type mapping (:func:`lh_type`,
  Hugging Face media detection) and the conversion of input batches to the table's columns;
* :mod:`~lakehouse.ingest.json_files`: reading JSON arrays and JSON Lines in batches;
* :mod:`~lakehouse.ingest.sources`: the input files of an import, a stream (stdin) copied to a
  temporary file;
* :mod:`~lakehouse.ingest.tables`: creating tables from Parquet, CSV, JSON and DataFrames
  (:func:`import_parquet`, :func:`import_csv`, :func:`import_json`, :func:`import_frame`,
  :func:`create_from_source`, which also reads a stream such as stdin), each returning an
  :class:`ImportResult`: the rows written, the rows with errors, the version and the table
  (``db.import_parquet`` and the other catalog methods return just the table).
"""

from lakehouse.ingest.arrow_types import lh_type
from lakehouse.ingest.files import MEDIA_EXTENSIONS, expand_sources, insert_files, parent_folder
from lakehouse.ingest.json_files import JSON_EXTENSIONS
from lakehouse.ingest.tables import (
    BATCH_ROWS,
    CSV_EXTENSIONS,
    IMPORT_FORMATS,
    MEDIA_BATCH_ROWS,
    PARQUET_EXTENSIONS,
    ImportResult,
    create_from_source,
    import_csv,
    import_frame,
    import_json,
    import_parquet,
)

__all__ = [
    "BATCH_ROWS", "CSV_EXTENSIONS", "IMPORT_FORMATS", "JSON_EXTENSIONS", "MEDIA_BATCH_ROWS",
    "MEDIA_EXTENSIONS", "PARQUET_EXTENSIONS", "ImportResult", "create_from_source",
    "expand_sources", "import_csv", "import_frame", "import_json", "import_parquet",
    "insert_files", "lh_type", "parent_folder",
]
