"""Statements whose SQL is compiled once, then run again with other values: a select by a list of values, an insert.

Django compiles a queryset's SQL every time it runs it. For the read that
starts every send, the conversations with their persona, models and
providers (`selectors.conversations_get_for_users`: six models' columns),
compiling took more time than the query and the instances together: half of
the CPU a lone send spent before its upstream request left, and 1 to 2 ms
of its way there on an idle site (bench/README.md, the nineteenth round).
Here the SQL and the compiler's column layout are kept for each number of
values, and the rows become instances as `QuerySet` makes them
(`ModelIterable`: the same converters and related populators).

So for the inserts of a class's sends, their questions and replies
(`services.replies_request`): compiling them was a fifth of the CPU of a
hop of 50 sends, 11.6 ms of it (bench/README.md, the twentieth round).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, NotSupportedError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import AutoField, Model, QuerySet
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]  # ModelIterable's own.
from django.db.models.sql import InsertQuery

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


@dataclass(frozen=True)
class _Insert:
    """The SQL of the insert of some number of rows, and how its parameters are laid out."""

    sql: str
    by_column: bool  # One array of each column's values (PostgreSQL's UNNEST), not each row's values in turn.
    converters: dict[int, tuple[list[Any], Any]]  # Of the returned columns.


@dataclass(frozen=True)
class PreparedRows(Generic[M]):
    """Instances and their values prepared for `InsertMany.insert`: each row's values in field order, its
    foreign keys left as None until the insert (their objects may be saved in between)."""

    instances: list[M]
    rows: list[list[Any]]


class InsertMany(Generic[M]):
    """`Model.objects.bulk_create(instances)`: the rows written and their keys set, the SQL compiled once per row count.

    For a model of one table whose key the database gives (an `AutoField`),
    and instances without a key that hold plain values (no expressions). Each
    value is prepared as the ORM's insert prepares it (`pre_save(add=True)`,
    then `get_db_prep_save`), in as many statements as `bulk_create` runs
    (`bulk_batch_size`), and the returned columns set as it sets them; no
    signals are sent, as by `bulk_create`. The statements are kept per database
    vendor and number of rows, for the life of the process.

    `as_set`: names of fields written as the instances hold them where the
    ORM would stamp the time of the insert (`auto_now_add`), e.g. the times
    of imported messages.

    The values can be prepared before a transaction begins (`prepare`) and
    written in it (`insert`): an import's batch holds the database's writer
    for the statements alone (`transfer.jobs`).
    """

    def __init__(self, model: type[M], *, as_set: Iterable[str] = ()) -> None:
        opts = model._meta
        if opts.parents or not isinstance(opts.pk, AutoField):
            raise ValueError("InsertMany takes a model of one table whose key the database gives")
        self._model = model
        self._fields = [f for f in opts.concrete_fields if not f.generated and f is not opts.pk]
        as_set_fields = {concrete_field(model, name)[1] for name in as_set}
        # (position, field, whether it is written as set) of the values `prepare` prepares.
        self._plain = [(i, f, f in as_set_fields) for i, f in enumerate(self._fields) if not f.is_relation]
        # (position, field) of the foreign keys, whose values are taken at the insert.
        self._related = [(i, f) for i, f in enumerate(self._fields) if f.is_relation]
        self._returning = opts.db_returning_fields
        self._statements: dict[tuple[str, int], _Insert] = {}

    def __call__(self, instances: list[M]) -> list[M]:
        """Insert `instances`, set their keys (and other returned columns) and return them (`prepare`, `insert`).

        Raises:
            As `prepare` and `insert`.
        """
        return self.insert(self.prepare(instances))

    def prepare(self, instances: list[M]) -> PreparedRows[M]:
        """Prepare the values of `instances` but their foreign keys, for `insert`; run no statement.

        Raises:
            ValueError: an instance has a key already.
        """
        db = connections[DEFAULT_DB_ALIAS]
        rows = []
        for instance in instances:
            if instance.pk is not None:
                raise ValueError("InsertMany inserts instances without a key")
            row: list[Any] = [None] * len(self._fields)
            for i, field, as_set in self._plain:
                value = getattr(instance, field.attname) if as_set else field.pre_save(instance, add=True)
                row[i] = field.get_db_prep_save(value, db)
            rows.append(row)
        return PreparedRows(instances=instances, rows=rows)

    def insert(self, prepared: PreparedRows[M]) -> list[M]:
        """Insert `prepared`'s rows with their foreign keys as they are now, set the keys and return the instances.

        Raises:
            ValueError: an instance has an unsaved related object (as `bulk_create`).
            NotSupportedError: the database does not return the keys of rows inserted together.
            DatabaseError: the insert failed (an integrity error among them).
        """
        db = connections[DEFAULT_DB_ALIAS]
        if not db.features.can_return_rows_from_bulk_insert:
            raise NotSupportedError("InsertMany needs the keys of rows inserted together")
        instances, rows = prepared.instances, prepared.rows
        for instance, row in zip(instances, rows, strict=True):
            instance._prepare_related_fields_for_save(operation_name="bulk_create")  # type: ignore[attr-defined]
            for i, field in self._related:
                row[i] = field.get_db_prep_save(getattr(instance, field.attname), db)
        size = max(db.ops.bulk_batch_size(self._fields, instances), 1)
        for start in range(0, len(instances), size):
            chunk, chunk_rows = instances[start : start + size], rows[start : start + size]
            statement = self._statements.get((db.vendor, len(chunk))) or self._compile(db, chunk, chunk_rows)
            with db.cursor() as cursor:
                cursor.execute(statement.sql, _by_column(chunk_rows) if statement.by_column else _by_row(chunk_rows))
                # Every backend that returns the rows of a bulk insert has it (`can_return_rows_from_bulk_insert`).
                returned = db.ops.fetch_returned_insert_rows(cursor)  # type: ignore[attr-defined]
            if statement.converters:
                compiler = InsertQuery(self._model).get_compiler(connection=db)
                returned = list(compiler.apply_converters(returned, statement.converters))
            for instance, values in zip(chunk, returned, strict=True):
                for field, value in zip(self._returning, values, strict=True):
                    setattr(instance, field.attname, value)
                instance._state.adding = False
                instance._state.db = db.alias
        return instances

    def _compile(self, db: BaseDatabaseWrapper, chunk: list[M], rows: list[list[Any]]) -> _Insert:
        """Compile the insert of as many rows as `chunk` on `db`, keep it and return it."""
        query = InsertQuery(self._model)
        # Raw: the values as they are now, `pre_save` having run for `rows` (a second run would take another time).
        objs: list[Model] = [*chunk]
        query.insert_values(self._fields, objs, raw=True)
        compiler = query.get_compiler(connection=db)
        compiler.returning_fields = self._returning
        [(sql, params)] = compiler.as_sql()
        # The values are the only parameters, in one of the two layouts: then the SQL serves any rows of that number.
        if list(params) == _by_row(rows):
            by_column = False
        elif list(params) == _by_column(rows):
            by_column = True
        else:
            raise ValueError("InsertMany takes instances whose values are plain, each one parameter")
        columns = [field.get_col(self._model._meta.db_table) for field in self._returning]
        statement = _Insert(sql=sql, by_column=by_column, converters=compiler.get_converters(columns))
        self._statements[(db.vendor, len(chunk))] = statement
        return statement


def _by_row(rows: list[list[Any]]) -> list[Any]:
    return [value for row in rows for value in row]


def _by_column(rows: list[list[Any]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]
