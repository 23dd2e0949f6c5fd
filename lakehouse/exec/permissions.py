"""What this process lets stored definitions import and load, sent with the work to the
processes that do it for this one (the Ray workers of :mod:`lakehouse.exec.ray_engine`).

Trust belongs to the process (:mod:`lakehouse.trust`): the modules and hub models the user
trusts by name (``lh.connect(..., trusted_modules=..., trusted_models=...)``, the environment),
the hub models the user built with ``lh.functions.clip(...)`` or ``sentence_transformer(...)``
and the endpoints the user built remote models for. A Ray worker is another process, which has
none of these: without them it would refuse a model its driver loads. So a job carries the
driver's :class:`Permissions`, taken from the driver's process when the job is made, never from
the table's storage, and the worker grants exactly those before it rebuilds the plan. It still
refuses whatever the driver did not allow.
"""

from __future__ import annotations

import dataclasses

from lakehouse import trust
from lakehouse.functions import embeddings
from lakehouse.functions.remote import openai


@dataclasses.dataclass(frozen=True)
class Permissions:
    """The modules and models a process allows: trusted module and model names, the hub models
    built in it (kind, model, pretrained) and the endpoints of the remote models built in it.

    >>> _ = lh.functions.sentence_transformer("all-MiniLM-L6-v2")  # allowed by building it
    >>> ("sentence_transformer", "all-MiniLM-L6-v2", None) in Permissions.held().built_models
    True
    """

    modules: frozenset[str]
    models: frozenset[str]
    built_models: frozenset[tuple[str, str, str | None]]
    endpoints: frozenset[str]

    @staticmethod
    def held() -> Permissions:
        """What this process allows now.

        >>> isinstance(Permissions.held().modules, frozenset)
        True
        """
        modules, models = trust.trusted()
        return Permissions(modules, models, embeddings.models_built(),
                           openai.endpoints_allowed())

    def grant(self) -> None:
        """Allow the same in this process (a worker, for its driver), in addition to what it
        allows already.

        >>> Permissions(frozenset({"their_udfs"}), frozenset(), frozenset(), frozenset()).grant()
        >>> trust.module_trusted("their_udfs")
        True
        """
        trust.trust(modules=self.modules, models=self.models)
        embeddings.allow_built(self.built_models)
        openai.allow_endpoints(self.endpoints)


__all__ = ["Permissions"]
