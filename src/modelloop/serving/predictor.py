"""The served models and their hot swap.

Everything a request needs is one immutable :class:`Serving` snapshot: the deployment, the
champion, the challenger (if any) and the canary split. The :class:`Predictor` holds the current
snapshot in one attribute; a request reads it once and uses that snapshot to the end, so a swap
never mixes two versions inside a request and never waits for one.

A background thread asks the :class:`ModelSource` every ``poll_interval`` seconds which version
each alias points at (and, for a deployment stored in the registry, re-reads its config). When
something moved, it loads the new version in that thread, off the request path, reusing the
already-loaded models that did not change, and then replaces the snapshot: one reference
assignment, atomic under the GIL. Requests in flight finish on the snapshot they started with.
A version that fails to load is logged and skipped (the old one keeps serving) until the alias
moves again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from modelloop.errors import InvalidArgument, ModelloopError, ServerUnavailable
from modelloop.serving.deployment import Deployment, Mode, ModelRef
from modelloop.serving.routing import CanarySplit
from modelloop.settings import Settings

log = logging.getLogger("modelloop.serving")

CHAMPION, CHALLENGER, SHADOW = "champion", "challenger", "shadow"


class Model(Protocol):
    """What serving needs of a loaded model (``modelloop.flavors.LoadedModel``)."""

    @property
    def signature(self) -> Any: ...

    def predict_matrix(self, X: np.ndarray) -> np.ndarray: ...


class ModelSource(Protocol):
    """Where served models come from: the registry, or anything a test substitutes."""

    def resolve(self, ref: ModelRef) -> int:
        """The version ``ref`` points at now."""
        ...

    def load(self, ref: ModelRef, version: int) -> Model:
        """That version, loaded and ready to predict."""
        ...


@dataclass(frozen=True, eq=False)
class ServedModel:
    """One loaded model version, with what its answers and log rows need."""

    name: str
    version: int
    alias: str
    model: Model

    @property
    def signature(self) -> Any:
        return self.model.signature

    def contributions(self, X: np.ndarray) -> Any:
        """Attributions of the rows of ``X``, from the matrix when the flavor allows it (a
        DataFrame round trip costs more than LightGBM's TreeSHAP of a row)."""
        from modelloop.flavors import Contributions

        model: Any = self.model
        fast = getattr(model, "contributions_matrix", None)
        if fast is not None:
            return fast(X)
        if getattr(model, "flavor", None) == "lightgbm" and hasattr(model, "booster"):
            raw = np.asarray(model.booster.predict(X, pred_contrib=True), dtype=np.float64)
            if raw.shape[1] == X.shape[1] + 1:
                return Contributions(
                    self.signature.names, raw[:, :-1], raw[:, -1], self.input_values(X)
                )
        return model.contributions(self.signature.matrix_to_frame(X))

    def input_values(self, X: np.ndarray) -> np.ndarray:
        """``X`` as an object array of the values the client sent (category names, not codes;
        None for missing)."""
        values = X.astype(object)
        values[np.isnan(X)] = None
        for j, spec in enumerate(self.signature.inputs):
            if spec.dtype == "category":
                values[:, j] = [
                    None if v is None else spec.categories[int(v)] for v in values[:, j]
                ]
            elif spec.dtype in ("int", "bool"):
                cast = int if spec.dtype == "int" else bool
                values[:, j] = [None if v is None else cast(v) for v in values[:, j]]
        return values

    def input_columns(self, matrix: np.ndarray) -> dict[str, Any]:
        """The matrix as the prediction log stores it: categories as their names, ints as ints."""
        import pyarrow as pa

        columns: dict[str, Any] = {}
        for j, spec in enumerate(self.signature.inputs):
            values = matrix[:, j]
            missing = np.isnan(values)
            if spec.dtype == "category":
                levels = np.asarray(spec.categories, dtype=object)
                codes = np.where(missing, 0, values).astype(np.int64)
                columns[spec.name] = pa.array(levels[codes], pa.string(), mask=missing)
            elif spec.dtype == "string":  # not in the matrix: not logged
                columns[spec.name] = pa.nulls(len(values), pa.string())
            elif spec.dtype == "bool" and not missing.any():
                columns[spec.name] = values != 0
            elif spec.dtype == "int" and not missing.any() and np.all(np.abs(values) < 2**62):
                columns[spec.name] = values.astype(np.int64)
            else:
                columns[spec.name] = values
        return columns


@dataclass(frozen=True, eq=False)
class Serving:
    """What one request sees: never changes once built."""

    deployment: Deployment
    champion: ServedModel
    challenger: ServedModel | None
    split: CanarySplit | None
    same_inputs: bool  # the challenger reads the champion's matrix as it is

    def models(self) -> dict[str, ServedModel]:
        found = {CHAMPION: self.champion}
        if self.challenger is not None:
            found[CHALLENGER] = self.challenger
        return found


def _build(
    deployment: Deployment, champion: ServedModel, challenger: ServedModel | None
) -> Serving:
    split = None
    if deployment.mode is Mode.canary:
        split = CanarySplit(deployment.name, deployment.canary_percent or 0.0)
    same = challenger is not None and _same_inputs(champion.signature, challenger.signature)
    return Serving(deployment, champion, challenger, split, same)


def _same_inputs(a: Any, b: Any) -> bool:
    return a is b or tuple(a.inputs) == tuple(b.inputs)


class Predictor:
    """Holds the current :class:`Serving` and keeps it in step with the registry."""

    def __init__(
        self,
        deployment: Deployment,
        source: ModelSource,
        *,
        poll_interval: float = 2.0,
        reload_deployment: Callable[[], Deployment] | None = None,
        on_swap: Callable[[Serving], None] | None = None,
    ) -> None:
        self._deployment = deployment
        self._source = source
        self._poll_interval = poll_interval
        self._reload = reload_deployment
        self._on_swap = on_swap
        self._current: Serving | None = None
        self._failed: set[tuple[str, int]] = set()
        self._targets: dict[str, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()
        self.load_failures = 0
        self.swaps = 0

    @property
    def current(self) -> Serving:
        serving = self._current
        if serving is None:
            raise ServerUnavailable("The model is still loading")
        return serving

    @property
    def ready(self) -> bool:
        return self._current is not None

    def start(self) -> None:
        """Load the deployment's models (errors propagate: a server without them is useless),
        then watch for alias moves."""
        self.refresh(initial=True)
        if self._poll_interval > 0:
            self._thread = threading.Thread(
                target=self._watch, name="modelloop-hot-swap", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop watching (the models stay usable) and release the source."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def refresh(self, *, initial: bool = False) -> bool:
        """Check the aliases once; load and swap in what moved. True when something changed."""
        with self._refresh_lock:
            deployment = self._reload() if self._reload is not None else self._deployment
            current = self._current
            wanted: dict[str, tuple[ModelRef, int]] = {
                CHAMPION: (deployment.model, self._resolve(deployment.model))
            }
            if deployment.challenger is not None:
                ref = deployment.challenger
                wanted[CHALLENGER] = (ref, self._resolve(ref))
            targets = {role: (ref.name, v) for role, (ref, v) in wanted.items()}
            if targets != self._targets:  # an alias moved: versions that failed get a new try
                self._failed.clear()
                self._targets = targets
            have = current.models() if current is not None else {}
            if current is not None and current.deployment == deployment:
                moved = [r for r, (ref, v) in wanted.items() if not _is(have.get(r), ref, v)]
                if not moved:
                    return False
            loaded: dict[str, ServedModel] = {}
            for role, (ref, version) in wanted.items():
                reuse = [m for m in have.values() if _is(m, ref, version)]
                if reuse:
                    loaded[role] = reuse[0]
                    continue
                model = self._load(ref, version, initial=initial)
                if model is None:  # keep what we have for every role, try again later
                    return False
                loaded[role] = model
            serving = _build(deployment, loaded[CHAMPION], loaded.get(CHALLENGER))
            self._deployment = deployment
            self._current = serving  # the swap
            self.swaps += current is not None
        if current is not None:
            log.info("Now serving %s", _describe(serving))
        if self._on_swap is not None:
            self._on_swap(serving)
        return True

    def _resolve(self, ref: ModelRef) -> int:
        return ref.version if ref.version is not None else self._source.resolve(ref)

    def _load(self, ref: ModelRef, version: int, *, initial: bool) -> ServedModel | None:
        if (ref.name, version) in self._failed:
            return None
        try:
            model = self._source.load(ref, version)
        except Exception as exc:
            if initial:
                raise
            self._failed.add((ref.name, version))
            self.load_failures += 1
            reason = exc.message if isinstance(exc, ModelloopError) else repr(exc)
            log.error(
                "Cannot load %s version %s; still serving the old one: %s", ref, version, reason
            )
            return None
        return ServedModel(ref.name, version, ref.alias or str(version), model)

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_interval):
            try:
                self.refresh()
            except Exception as exc:  # the registry is briefly unreachable, an alias was deleted
                reason = exc.message if isinstance(exc, ModelloopError) else repr(exc)
                log.warning("Checking the served aliases failed; still serving: %s", reason)


def _is(model: ServedModel | None, ref: ModelRef, version: int) -> bool:
    return model is not None and model.name == ref.name and model.version == version


def _describe(serving: Serving) -> str:
    parts = [f"{m.name} v{m.version} as {role}" for role, m in serving.models().items()]
    return f"{serving.deployment.name}: " + ", ".join(parts)


def version_labels(serving: Serving) -> Mapping[tuple[str, str], int]:
    """``(name@alias, role) -> version`` for the model-version gauge."""
    labels = {}
    for role, model in serving.models().items():
        ref = serving.deployment.model if role == CHAMPION else serving.deployment.challenger
        labels[(str(ref), role)] = model.version
    return labels


class RegistrySource:
    """Models from the registry the settings name (local store or server): versions resolve
    through aliases, packages download once into the digest-addressed cache, and loading
    refuses pickle unless the person starting the server allowed it."""

    def __init__(self, settings: Settings, *, allow_pickle: bool = False) -> None:
        from modelloop.registry.client import Registry
        from modelloop.tracking.client import Client

        self._registry = Registry(Client(settings=settings))
        self._allow_pickle = allow_pickle

    def resolve(self, ref: ModelRef) -> int:
        return self._registry.resolve_model_uri(ref.uri).version

    def load(self, ref: ModelRef, version: int) -> Model:
        from modelloop import flavors

        found = self._registry.get_version(ref.name, version)
        if found.flavor is None:
            raise InvalidArgument(
                f"{found.uri} was registered from files modelloop did not package (no "
                "manifest), so it cannot be served"
            )
        loaded: Model = flavors.load_model(
            self._registry.download_model(found), allow_pickle=self._allow_pickle
        )
        return loaded

    def close(self) -> None:
        self._registry.close()
        self._registry.client.close()
