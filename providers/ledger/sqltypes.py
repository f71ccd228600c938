"""Column types and SQL functions that behave the same on SQLite and PostgreSQL.

SQLite has no decimal or time-zone-aware types: a ``NUMERIC`` column turns
``0.000000123`` into a float, and a ``DATETIME`` drops the offset. Costs and
timestamps are the ledger's whole point, so these types store them exactly on
both backends, and the functions below aggregate them without rounding.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal, Inexact
from typing import Any

from sqlalchemy import DateTime, Numeric, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Float, TypeDecorator, TypeEngine

# Wide enough that summing millions of tiny costs never rounds.
SUM_CONTEXT = Context(prec=80)


def check_decimal(value: Any) -> Decimal:
    """``value`` as a finite Decimal; floats are refused (they are already rounded)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"expected a Decimal amount, got {type(value).__name__} {value!r}")
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"amount must be finite, got {value}")
    return value


# Costs are also stored as integers of this unit (schema version 7, sums.py).
FEMTO_EXPONENT = -15
# Below 2^62 per row: a group's SUM of the high and low parts never overflows 64 bits.
_FEMTO_LIMIT = 1 << 62
# Scaling by 10^15 must never round: the Inexact trap turns rounding into "no femto value".
_FEMTO_CONTEXT = Context(prec=80, traps=[Inexact])


def femto_of(value: Decimal | None) -> int | None:
    """``value`` in units of 10^-15 USD when that is an exact integer below 2^62, else None."""
    if value is None or not value.is_finite():
        return None
    try:
        scaled = _FEMTO_CONTEXT.scaleb(value, -FEMTO_EXPONENT)
    except Inexact:
        return None  # more digits than the context holds: summed from the decimal text
    if scaled != scaled.to_integral_value():
        return None  # finer than a femto-dollar: summed from the decimal text
    units = int(scaled)
    return units if -_FEMTO_LIMIT < units < _FEMTO_LIMIT else None


class AutoString(TypeDecorator[str]):
    """VARCHAR, of 255 on MySQL when no length is given: SQLModel's ``AutoString``, the type
    the ledger's strings were created with, here so reading a ledger never imports SQLModel."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        length = getattr(self.impl, "length", None)
        if length is None and dialect.name == "mysql":
            return dialect.type_descriptor(String(255))
        return super().load_dialect_impl(dialect)


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal stored without rounding.

    PostgreSQL: unconstrained ``NUMERIC`` (exact, keeps the scale). SQLite: the
    decimal's own text (``format(d, "f")``) in a ``TEXT`` column, summed by the
    ``decimal_sum`` aggregate that :func:`register_sqlite_functions` installs.
    """

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = check_decimal(value)
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on the way in and out; naive input is taken as UTC.

    SQLite stores naive UTC text (so text order is time order); PostgreSQL
    stores ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Lower-case class names: these read as SQL functions in query code.
class exact_sum(FunctionElement[Decimal]):
    """``SUM`` of an :class:`ExactDecimal` column, exact on every backend (NULL if no values)."""

    type = ExactDecimal()
    inherit_cache = True
    name = "exact_sum"


class approx_sum(FunctionElement[float]):
    """A sum of an :class:`ExactDecimal` column good enough to sort by (never to report)."""

    type = Float()
    inherit_cache = True
    name = "approx_sum"


class utc_day(FunctionElement[str]):
    """``YYYY-MM-DD`` of a :class:`UTCDateTime` column, in UTC."""

    type = Text()
    inherit_cache = True
    name = "utc_day"


class utc_hour(FunctionElement[str]):
    """``YYYY-MM-DD HH`` of a :class:`UTCDateTime` column, in UTC (see :func:`parse_utc_hour`)."""

    type = Text()
    inherit_cache = True
    name = "utc_hour"


def parse_utc_hour(text: str) -> datetime:
    """The start of the hour a :class:`utc_hour` value names, as an aware UTC datetime."""
    return datetime.strptime(text, "%Y-%m-%d %H").replace(tzinfo=UTC)


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(exact_sum)
def _exact_sum_default(element: exact_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"sum({_args(element, compiler, **kw)})"


@compiles(exact_sum, "sqlite")
def _exact_sum_sqlite(element: exact_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"decimal_sum({_args(element, compiler, **kw)})"


@compiles(approx_sum)
def _approx_sum_default(element: approx_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"coalesce(sum({_args(element, compiler, **kw)}), 0)"


@compiles(approx_sum, "sqlite")
def _approx_sum_sqlite(element: approx_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"total(CAST({_args(element, compiler, **kw)} AS REAL))"


# Constants are inlined, not bound: PostgreSQL only matches a GROUP BY
# expression to the select list when both are textually identical.
@compiles(utc_day)
def _utc_day_default(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(timezone('UTC', {_args(element, compiler, **kw)}), 'YYYY-MM-DD')"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"substr({_args(element, compiler, **kw)}, 1, 10)"


@compiles(utc_hour)
def _utc_hour_default(element: utc_hour, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(timezone('UTC', {_args(element, compiler, **kw)}), 'YYYY-MM-DD HH24')"


@compiles(utc_hour, "sqlite")
def _utc_hour_sqlite(element: utc_hour, compiler: SQLCompiler, **kw: Any) -> str:
    return f"substr({_args(element, compiler, **kw)}, 1, 13)"


class _DecimalSum:
    """SQLite aggregate: exact sum of decimal text values; NULL when there are none."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: object) -> None:
        if value is None:
            return
        amount = Decimal(str(value))
        self.total = amount if self.total is None else SUM_CONTEXT.add(self.total, amount)

    def finalize(self) -> str | None:
        return None if self.total is None else format(self.total, "f")


def register_sqlite_functions(dbapi_connection: Any) -> None:
    """Install the SQL functions the ledger's queries need on one sqlite3 connection."""
    dbapi_connection.create_aggregate("decimal_sum", 1, _DecimalSum)
