"""A select by a list of values whose SQL is compiled once, then run again with other values.

Django compiles a queryset's SQL every time it runs it. For the read that
starts every send, the conversations with their persona, models and
providers (`selectors.conversations_get_for_users`: six models' columns),
compiling took more time than the query and the instances together: half of
the CPU a lone send spent before its upstream request left, and 1 to 2 ms
of its way there on an idle site (bench/README.md, the nineteenth round).
Here the SQL and the compiler's column layout are kept for each number of
values, and the rows become instances as `QuerySet` makes them
(`ModelIterable`: the same converters and related populators).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]  # ModelIterable's own.

from conversations.rows import concrete_field

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class _Statement:
    """The SQL of the select for some number of values, and what the compiler knew of its columns."""

    sql: str
    own_columns: slice  # The row's columns of the model itself; the related models' follow.
    converters: dict[int, tuple[list[Any], Any]]
    init_list: list[str]
    populators: list[Any]


class SelectIn(Generic[M]):
    """`queryset.filter(<field>__in=values)`: its instances, in no order, its SQL compiled once per number of values.

    `queryset`: of the model, with its `select_related` and filters but no
    annotations, ordering or slicing (the rows are made into instances as
    Django's `ModelIterable` makes them, without those). The statements are
    kept per database vendor and number of values, for the life of the process.
    """

    def __init__(self, queryset: QuerySet[M], field_name: str) -> None:
        if queryset.query.annotations or queryset.query.order_by or queryset.query.is_sliced:
            raise ValueError("SelectIn takes a queryset without annotations, ordering or slicing")
        self._queryset = queryset.order_by()
        self._field_name = field_name
        _column, self._field = concrete_field(queryset.model, field_name)
        self._statements: dict[tuple[str, int], _Statement] = {}

    def __call__(self, values: Iterable[object]) -> list[M]:
        """Return the instances whose field is one of `values` (their related objects selected), in no order.

        Raises:
            DatabaseError: the query failed.
        """
        distinct = list(dict.fromkeys(values))  # `__in` sends each value once.
        if not distinct:
            return []
        # This thread's connection, not the `connection` proxy: it costs a lookup per attribute read.
        db = connections[DEFAULT_DB_ALIAS]
        statement = self._statements.get((db.vendor, len(distinct))) or self._compile(db, distinct)
        with db.cursor() as cursor:
            cursor.execute(statement.sql, [self._field.get_db_prep_value(value, db) for value in distinct])
            rows = cursor.fetchall()
        if statement.converters:
            # The converters only read the settings of the connection they were found for: any thread's serves.
            rows = self._queryset.query.get_compiler(connection=db).apply_converters(rows, statement.converters)
        model = self._queryset.model
        found = []
        for row in rows:
            instance = model.from_db(db.alias, statement.init_list, row[statement.own_columns])
            for populator in statement.populators:
                populator.populate(row, instance)
            found.append(instance)
        return found

    def _compile(self, db: BaseDatabaseWrapper, distinct: list[object]) -> _Statement:
        """Compile the select for as many values as `distinct` on `db`, keep it and return it."""
        compiler = self._queryset.filter(**{f"{self._field_name}__in": distinct}).query.get_compiler(connection=db)
        sql, params = compiler.as_sql()
        # The values are the only parameters, in their order: then the SQL serves any values of that number.
        if list(params) != [self._field.get_db_prep_value(value, db) for value in distinct]:
            raise ValueError("SelectIn takes a queryset whose filters have no parameters of their own")
        select_fields = compiler.klass_info["select_fields"]
        own_columns = slice(select_fields[0], select_fields[-1] + 1)
        statement = _Statement(
            sql=sql,
            own_columns=own_columns,
            converters=compiler.get_converters([column[0] for column in compiler.select[: compiler.col_count]]),
            init_list=[column[0].target.attname for column in compiler.select[own_columns]],
            populators=get_related_populators(compiler.klass_info, compiler.select, db.alias),
        )
        self._statements[(db.vendor, len(distinct))] = statement
        return statement
