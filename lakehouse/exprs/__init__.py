"""Expressions: the tree (``nodes``), its compilers (``polars``, ``sql``) and JSON form."""
