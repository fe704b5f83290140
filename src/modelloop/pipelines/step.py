"""``@step``: a plain function plus the metadata a :class:`~modelloop.pipelines.Pipeline` needs.

The decorator only attaches a :class:`StepSpec` as ``fn.__modelloop_step__`` and returns the very
same function, so a step stays callable and testable on its own and importing a module registers
nothing anywhere. Undecorated functions may be used in a pipeline too (default spec).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from modelloop.errors import InvalidArgument

F = TypeVar("F", bound=Callable[..., Any])
SPEC_ATTRIBUTE = "__modelloop_step__"


@dataclass(frozen=True)
class StepSpec:
    """How a step is wired and cached.

    ``outputs`` names what the function returns: one name (default: the function's name) or, for
    a returned tuple, one name per element. ``env`` lists package names whose installed versions
    enter the cache key (Python's version always does).
    """

    name: str
    outputs: tuple[str, ...]
    cache: bool = True
    allow_pickle: bool = False
    env: tuple[str, ...] = ()
    tuple_output: bool = False


@dataclass(frozen=True)
class FanOut:
    """A step run once per entry of ``trials`` (in parallel where the executor allows), each
    trial a child run; the trial whose output ``metric`` is best gives the node's outputs."""

    fn: Callable[..., Any]
    trials: tuple[Mapping[str, Any], ...]
    metric: str
    mode: str = "max"
    spec: StepSpec = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", spec_of(self.fn))
        if not self.trials:
            raise InvalidArgument(f"fan_out({self.spec.name}) needs at least one trial")
        if self.mode not in ("max", "min"):
            raise InvalidArgument(f"fan_out mode must be 'max' or 'min', not {self.mode!r}")
        if self.metric not in self.spec.outputs:
            raise InvalidArgument(
                f"fan_out({self.spec.name}) metric {self.metric!r} is not one of its outputs "
                f"{list(self.spec.outputs)}"
            )


@overload
def step(fn: F, /) -> F: ...
@overload
def step(
    *,
    name: str | None = None,
    outputs: str | Sequence[str] | None = None,
    cache: bool = True,
    allow_pickle: bool = False,
    env: Sequence[str] = (),
) -> Callable[[F], F]: ...
def step(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    outputs: str | Sequence[str] | None = None,
    cache: bool = True,
    allow_pickle: bool = False,
    env: Sequence[str] = (),
) -> F | Callable[[F], F]:
    """Mark ``fn`` as a pipeline step (``@step`` or ``@step(outputs=("train", "test"))``)."""

    def attach(func: F) -> F:
        if not inspect.isfunction(func):
            raise InvalidArgument(f"@step decorates functions, not {type(func).__name__}")
        step_name = name or func.__name__
        tuple_output = outputs is not None and not isinstance(outputs, str)
        if outputs is None:
            names: tuple[str, ...] = (step_name,)
        elif isinstance(outputs, str):
            names = (outputs,)
        else:
            names = tuple(outputs)
        if not names or len(set(names)) != len(names):
            raise InvalidArgument(f"step {step_name}: outputs must be distinct names: {names}")
        spec = StepSpec(step_name, names, cache, allow_pickle, tuple(env), tuple_output)
        setattr(func, SPEC_ATTRIBUTE, spec)
        return func

    return attach(fn) if fn is not None else attach


def fan_out(
    fn: Callable[..., Any],
    trials: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    mode: str = "max",
) -> FanOut:
    """Map ``fn`` over ``trials`` (per-trial params, e.g. ``[{"lr": 0.1}, {"lr": 0.3}]``)."""
    return FanOut(fn, tuple(dict(t) for t in trials), metric, mode)


def spec_of(fn: Callable[..., Any]) -> StepSpec:
    """The attached spec, or the default one for an undecorated function."""
    spec = getattr(fn, SPEC_ATTRIBUTE, None)
    if isinstance(spec, StepSpec):
        return spec
    if not inspect.isfunction(fn):
        raise InvalidArgument(f"a pipeline step must be a function, not {fn!r:.80}")
    return StepSpec(fn.__name__, (fn.__name__,))


def target_of(fn: Callable[..., Any]) -> str:
    """``module:qualname``, how a worker process finds the function again."""
    return f"{fn.__module__}:{fn.__qualname__}"
