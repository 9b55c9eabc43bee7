"""Fast copies of the model's frozen dataclasses with some fields changed.

`dataclasses.replace` inspects the class's fields on every call; the state
machine replaces a ConversationState once or twice per event, and that
introspection was half of its time (docs/benchmarks.md). `replacer(cls)` compiles,
once per class, a function that copies every slot through the slot descriptors
(a frozen dataclass forbids plain assignment, not descriptor writes) and takes the
changed fields as keyword arguments. Same result as `dataclasses.replace` for the
model's slotted dataclasses, which have no `__post_init__` and no init-only fields.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


@cache
def replacer(cls: type[T]) -> Callable[..., T]:
    """`replace(obj, **changes)` for instances of `cls` (a slotted, frozen dataclass)."""
    fields = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if set(getattr(cls, "__slots__", ())) != set(fields) or hasattr(cls, "__post_init__"):
        return dataclasses.replace
    env: dict[str, Any] = {
        "_new": object.__new__,
        "_cls": cls,
        "_get": operator.attrgetter(*fields),
        "_setters": {name: cls.__dict__[name].__set__ for name in fields},
    }
    # All slots from one C-level attrgetter call, then the changed ones over them.
    lines = ["def replace(obj, **changes):", "    values = _get(obj)", "    new = _new(_cls)"]
    for number, name in enumerate(fields):
        env[f"_s{number}"] = cls.__dict__[name].__set__
        lines.append(f"    _s{number}(new, values[{number}])")
    lines += ["    for name, value in changes.items():", "        _setters[name](new, value)",
              "    return new"]  # fmt: skip
    exec(compile("\n".join(lines), f"<replacer {cls.__name__}>", "exec"), env)
    function: Callable[..., T] = env["replace"]
    return function


@cache
def constructor(cls: type[T]) -> Callable[..., T]:
    """`cls(**fields)` for a slotted, frozen dataclass, through the slot descriptors.

    Keyword-only like the generated model; fields with defaults may be left out.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if set(getattr(cls, "__slots__", ())) != {f.name for f in fields} or hasattr(
        cls, "__post_init__"
    ):
        return cls
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params = []
    body = ["    new = _new(_cls)"]
    for number, field in enumerate(fields):
        if field.default is not dataclasses.MISSING:
            env[f"_d{number}"] = field.default
            params.append(f"{field.name}=_d{number}")
        elif field.default_factory is not dataclasses.MISSING:
            raise NotImplementedError(f"{cls.__name__}.{field.name}: default_factory")
        else:
            params.append(field.name)
        env[f"_s{number}"] = cls.__dict__[field.name].__set__
        body.append(f"    _s{number}(new, {field.name})")
    source = "\n".join([f"def construct(*, {', '.join(params)}):", *body, "    return new"])
    exec(compile(source, f"<constructor {cls.__name__}>", "exec"), env)
    function: Callable[..., T] = env["construct"]
    return function


def replace(obj: T, /, **changes: Any) -> T:
    """`dataclasses.replace`, through `replacer` for the slotted, frozen dataclasses."""
    make: Callable[..., T] = replacer(type(obj))  # type: ignore[arg-type]
    return make(obj, **changes)
