"""Updates of many rows at once, each row its own values, in one prepared statement.

Django's `bulk_update` builds a CASE expression per row and field in Python:
seconds for ten thousand imported messages, all of it inside the
transaction, and a quarter of the CPU of a class's batch of sends
(bench/README.md, the tenth round). Here one UPDATE is run for every row
(DB-API `executemany`, PEP 249), its values prepared by the fields as the
ORM prepares them.
"""

from collections.abc import Mapping

from django.db import connection
from django.db.models import Field, Model


def rows_update(
    model: type[Model], field_names: list[str], rows: list[tuple], *, where: Mapping[str, object] | None = None
) -> int:
    """Set `field_names` of many rows of `model`: `rows` are (pk, value, ...) in the order of the names.

    where: {field name: value} each row must also have to be updated (`WHERE pk = %s AND ...`), e.g. a status.

    Return how many rows were updated: fewer than `rows` when some are gone or do not match `where`.

    Raises:
        ValueError: a name is not a field with a column of its own (the far end of a relation).
        DatabaseError: the update failed.
    """
    if not rows:
        return 0
    targets = [concrete_field(model, name) for name in field_names]
    conditions = [(concrete_field(model, name), value) for name, value in (where or {}).items()]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column)} = %s" for column, _field in targets)
    matches = "".join(f" AND {quote(column)} = %s" for (column, _field), _value in conditions)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s{matches}"
    matched = [field.get_db_prep_value(value, connection) for (_column, field), value in conditions]
    params = [
        [field.get_db_prep_value(value, connection) for (_column, field), value in zip(targets, values, strict=True)]
        + [pk, *matched]
        for pk, *values in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
        return cursor.rowcount  # The sum over the rows, for sqlite3 and psycopg alike.


def concrete_field(model: type[Model], name: str) -> tuple[str, Field]:
    """Return the column and the field `name` of `model`, a field with a column (not the far end of a relation)."""
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or field.column is None:
        raise ValueError(f"{model.__name__}.{name} has no column of its own")
    return field.column, field
