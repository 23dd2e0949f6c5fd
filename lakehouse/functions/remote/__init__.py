"""Remote models as functions: OpenAI-compatible endpoints called from computed columns.

One module per job: :mod:`~lakehouse.functions.remote.limits` (pacing and when to retry),
:mod:`~lakehouse.functions.remote.transport` (one request: retries, errors, counters),
:mod:`~lakehouse.functions.remote.cache` (results kept in the lakehouse) and
:mod:`~lakehouse.functions.remote.openai` (the functions, ``lh.functions.openai``).
"""
