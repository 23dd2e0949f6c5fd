"""Data that leaves the lakehouse: Parquet files (:mod:`~lakehouse.export.parquet`), PyTorch
datasets (:mod:`~lakehouse.export.pytorch`) and SQL over the tables
(:mod:`~lakehouse.export.sql`).

Every export reads one table version, fixed when it starts: a write made meanwhile changes
nothing it returns. Table and Query methods (``to_parquet``, ``to_pytorch``) and
``Catalog.sql`` are thin calls into these modules.
"""
