"""Where a connection's long work runs: in this process (the default) or on a Ray cluster.

``lh.connect(..., engine="ray")`` or ``engine=lh.RayEngine(...)`` makes the backfills of
computed columns (``add_computed_column``, ``recompute``), embedding index builds (in actors that
keep the model loaded), view expansions (``create_view`` and the upkeep that follows the base,
:mod:`lakehouse.views`) and compaction (``optimize()`` and the automatic one) run as Ray tasks,
one per fragment (or group of fragments), on the cluster this process is connected to. The
driver keeps what must happen once: the plan, the checkpoint and the one commit
(:mod:`lakehouse.exec.ray_engine`).

The calls that take work to Ray (``add_computed_column``, ``recompute``,
``add_embedding_index``, ``create_view``, ``optimize`` and the bulk imports) also take
``engine=`` for that one call, which overrides the connection's (:func:`resolve_engine`).

This module is only the setting: it imports nothing of Ray, so the core install does not need
it. Ray itself comes with the ``lakehouse[ray]`` extra.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from typing import Any

from lakehouse.errors import EngineNotInstalledError, InvalidOptionError

EXTRA = 'pip install "lakehouse[ray]"'


@dataclasses.dataclass(frozen=True)
class RayEngine:
    """Run backfills on Ray. ``address`` is the cluster to join when this process is not
    connected to one yet: ``"auto"`` (the default: the cluster ``ray start`` runs on this
    machine, or ``RAY_ADDRESS``), ``"ray://head:10001"``, or None to start a local Ray here
    with ``num_cpus`` CPUs. A process that called ``ray.init(...)`` itself keeps that cluster.

    ``runtime_env`` is Ray's runtime environment of the job, given to ``ray.init`` when
    lakehouse joins or starts the cluster: how the modules of your UDFs reach the workers
    (``{"py_modules": [my_udfs]}`` or ``{"working_dir": "."}``). A process that calls
    ``ray.init`` itself passes its own.
    ``cpus_per_task`` and ``fragments_per_task`` size the tasks. A backfill that runs a model
    (an embedding index) runs in ``model_actors`` Ray actors instead (None: as many as the
    cluster's CPUs, or GPUs with ``gpus_per_model_task``, allow), each loading the model once
    and computing the fragments it is given, with ``gpus_per_model_task`` GPUs each. A task
    whose worker dies is retried up to ``max_retries`` times, an actor restarted as often.

    >>> engine = lh.RayEngine(address=None, num_cpus=2)
    >>> engine.address, engine.fragments_per_task
    (None, 1)
    """

    address: str | None = "auto"
    num_cpus: int | None = None
    runtime_env: Mapping[str, Any] | None = dataclasses.field(default=None, hash=False)
    cpus_per_task: float = 1.0
    fragments_per_task: int = 1
    max_retries: int = 3
    gpus_per_model_task: float = 0.0
    model_actors: int | None = None

    def __post_init__(self) -> None:
        if self.fragments_per_task < 1 or self.cpus_per_task <= 0 or self.max_retries < 0 \
                or (self.model_actors is not None and self.model_actors < 1):
            raise InvalidOptionError(
                f"RayEngine: fragments_per_task ({self.fragments_per_task}) must be at least 1, "
                f"cpus_per_task ({self.cpus_per_task}) above 0 and max_retries "
                f"({self.max_retries}) 0 or more, model_actors ({self.model_actors}) None or "
                "at least 1")


def engine_from(engine: str | RayEngine | None) -> RayEngine | None:
    """The engine ``lh.connect(engine=...)`` names: None for this process (``None`` or
    ``"local"``), a :class:`RayEngine` for ``"ray"`` or one given. Ray must be installed.

    >>> engine_from("local") is None
    True
    >>> engine_from("spark")
    Traceback (most recent call last):
    lakehouse.errors.InvalidOptionError: engine must be "local", "ray" or a lakehouse.RayEngine, \
got 'spark'
    """
    if engine is None or engine == "local":
        return None
    if engine == "ray":
        engine = RayEngine()
    if not isinstance(engine, RayEngine):
        raise InvalidOptionError(
            f'engine must be "local", "ray" or a lakehouse.RayEngine, got {engine!r}')
    if importlib.util.find_spec("ray") is None:
        raise EngineNotInstalledError(
            f"engine='ray' needs Ray, which is not installed: {EXTRA} adds Ray and lance-ray "
            "(or connect without engine= to compute in this process)")
    return engine


def resolve_engine(call_engine: str | RayEngine | None,
                   connection_engine: RayEngine | None) -> RayEngine | None:
    """Where one call runs: its own ``engine=`` if given, else the connection's. ``"local"``
    runs in this process whatever the connection says; ``"ray"`` runs on the connection's
    :class:`RayEngine` if it has one (its address and task sizes), else on a default one; a
    :class:`RayEngine` runs on that one. None: this process.

    >>> ray = RayEngine(address=None, fragments_per_task=2)
    >>> resolve_engine(None, ray) is ray, resolve_engine("local", ray)
    (True, None)
    >>> resolve_engine("ray", ray) is ray
    True
    """
    if call_engine is None:
        return connection_engine
    if call_engine == "ray" and connection_engine is not None:
        return connection_engine
    return engine_from(call_engine)
