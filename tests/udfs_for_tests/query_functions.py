"""@lh.query functions used by the search tests (importable as
``udfs_for_tests.query_functions``, so that a computed column calling one is kept current by any
process that has ``tests/`` on its path).

The queries read the table :data:`DOCS` of the lakehouse that ``lh.connect()`` opens, that is
``$LAKEHOUSE_ROOT``: a test and the subprocesses it starts share that variable, so they search the
same table.
"""

from __future__ import annotations

import lakehouse as lh

DOCS = "docs"


@lh.query
def top_docs(question: str, k: int = 2):
    """The ``k`` documents of :data:`DOCS` most similar to ``question``: title and score."""
    docs = lh.connect().get_table(DOCS)
    sim = docs.text.similarity(question)
    return docs.order_by(sim, asc=False).limit(k).select(docs.title, score=sim)
