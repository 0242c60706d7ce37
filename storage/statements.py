"""Prepared statements: the hot statements are built once per shape, then only executed.

Building an SQLAlchemy statement costs more CPU than running it on SQLite, so a statement
is built once per shape (which columns it sets, which conditions it has) with bind
parameters, and kept. Condition values are bound as `w_*`, new column values as `v_<column>`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

S = TypeVar("S", bound=sa.Executable)

_PREPARED: dict[Hashable, Any] = {}


def prepared(key: Hashable, build: Callable[[], S]) -> S:
    """The statement of shape `key`, built by `build` the first time."""
    stmt: S | None = _PREPARED.get(key)
    if stmt is None:
        stmt = _PREPARED[key] = build()
    return stmt


def setters(table: sa.Table, names: Iterable[str]) -> dict[str, sa.BindParameter[Any]]:
    """`column = :v_column` for each name (the values of an INSERT or UPDATE)."""
    return {name: sa.bindparam(f"v_{name}", type_=table.c[name].type) for name in names}


def bound(values: Mapping[str, Any], **conditions: Any) -> dict[str, Any]:
    """The parameters of a statement built with `setters`, plus its conditions' values."""
    return {**{f"v_{name}": value for name, value in values.items()}, **conditions}


def one_of(column: sa.Column[Any], name: str, count: int) -> sa.ColumnElement[bool]:
    """`column IN (:name0, :name1, ...)`: one parameter per value, the count in the shape (an
    "expanding" parameter would render the SQL again on every execution)."""
    return column.in_([sa.bindparam(f"{name}{i}") for i in range(count)])


def listed(name: str, values: Sequence[Any]) -> dict[str, Any]:
    """The parameters of `one_of(column, name, len(values))`."""
    return {f"{name}{i}": value for i, value in enumerate(values)}
