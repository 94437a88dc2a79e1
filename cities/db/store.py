"""The SQL every declared resource shares, built from its declaration (cities.resources.resource).

Values always travel as query parameters. Column and table names come from the declaration and
the sort's SQL from its whitelisted sort keys, never from input.

What the database refuses in a write is translated here, where the SQL is, into the API's
errors by the declaration: a unique index's violation into its 409, a foreign key's into a 422
on the field (an id naming no row) or, on delete, a 409 (the row is still referenced).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg2 import errors as pgerrors
from psycopg2.extensions import connection

from cities.http.errors import Conflict, ValidationFailed
from cities.http.listing import ListQuery
from cities.resources.resource import Order, Resource
from cities.resources.validation import detail

# Each write moves `updated_at` forward, even within one transaction or clock tick.
TOUCH = "updated_at = greatest(now(), updated_at + interval '1 microsecond')"


def as_json(resource: Resource, row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    """A row of `resource.columns` as its JSON object, by column name (its timestamps come
    formatted: resource.RFC3339_UTC)."""
    if row is None:
        return None
    return dict(zip(resource.column_names, row, strict=True))


def _constraint(error: Any) -> str | None:
    return getattr(error.diag, "constraint_name", None)


def conflict(resource: Resource, error: pgerrors.UniqueViolation) -> Conflict:
    """The 409 of the unique constraint the database names; a generic one if undeclared."""
    index = _constraint(error)
    for unique in resource.uniques:
        if unique.index == index:
            return Conflict(unique.message, [detail(f, m) for f, m in unique.details])
    return Conflict()


def unknown_target(resource: Resource, error: pgerrors.ForeignKeyViolation) -> ValidationFailed:
    """The 422 of a reference naming no row of its target."""
    reference = resource.reference_named(_constraint(error))
    if reference is None:
        return ValidationFailed(details=[detail("body", "refers to an item that does not exist")])
    target = reference.target.singular
    return ValidationFailed(details=[detail(reference.field, f"is not the id of any {target}")])


def still_referenced(resource: Resource, error: pgerrors.IntegrityError) -> Conflict:
    """The 409 of deleting a row that a RESTRICT reference still points at."""
    reference = resource.referenced_by.get(_constraint(error))
    if reference is None or reference.source is None:
        return Conflict(f"This {resource.singular} is still referenced by other items.")
    return Conflict(f"This {resource.singular} is still referenced by "
                    f"{reference.source.plural} ({reference.field}): delete or change them first.")


@contextmanager
def _writing(resource: Resource) -> Iterator[None]:
    """Run an INSERT or UPDATE, its refusals by a declared constraint turned into API errors."""
    try:
        yield
    except pgerrors.UniqueViolation as error:
        raise conflict(resource, error) from None
    except pgerrors.ForeignKeyViolation as error:
        raise unknown_target(resource, error) from None


def get(conn: connection, resource: Resource, item_id: int) -> dict[str, Any] | None:
    with conn.cursor() as cur:
        cur.execute(resource.select_by_id, (item_id,))
        return as_json(resource, cur.fetchone())


def _after(order: Order, after: tuple[Any, ...]) -> list[tuple[list[str], list[Any]]]:
    """The conditions of the rows that follow a cursor's key, as one or two ranges of the sort's
    index (each a condition list and its parameters), whose union is the rest of the walk.

    A row comparison leaves NULLs out (NULL compares as unknown), so a nullable sort's walk
    past a value also reads its NULLs when they come after the values, and past a NULL (the
    key's value None) reads the NULLs with a further id, then the values if they come after.
    Each range is an index scan that starts at its bound; an OR of them would not be one."""
    comparison = "<" if order.descending else ">"
    row = [f"({', '.join(order.columns)}) {comparison} ({order.placeholders})"], list(after)
    if order.nulls is None:
        return [row]
    column, id_column = order.columns
    value, last_id = after
    nulls_first = (order.nulls == "first") != order.descending  # in this walk's direction
    if value is None:
        nulls = [f"{column} IS NULL", f"{id_column} {comparison} %s"], [last_id]
        return [nulls, ([f"{column} IS NOT NULL"], [])] if nulls_first else [nulls]
    return [row] if nulls_first else [row, ([f"{column} IS NULL"], [])]


def list_page(
    conn: connection, resource: Resource, query: ListQuery, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` rows matching `query`, in its order, after its cursor's row."""
    conditions, params, prefix = resource.list_filter(conn, query)
    for spec, on in resource.ranges:  # declared range filters, on their sort's expression
        if spec.name in query.filters:
            conditions = [*conditions, f"{on.column} {spec.bound} {on.placeholder}"]
            params = [*params, query.filters[spec.name]]
    order = resource.sort_keys[query.sort]
    order_by = order.order_by(prefix)
    # The page starts right after the cursor's row key. Behind a prefix (say, city's state) this
    # stays on the sort key alone: after the = on the prefix, the index can start at a bound on
    # its next columns, but not at a row comparison that repeats the prefix.
    ranges = [([], [])] if query.after is None else _after(order, query.after)
    parts, args = [], []
    for more, values in ranges:
        where = " AND ".join([*conditions, *more])
        parts.append(f"SELECT {resource.columns} FROM {resource.table}"
                     f"{f' WHERE {where}' if where else ''} ORDER BY {order_by} LIMIT %s")
        args += [*params, *values, limit]
    statement = parts[0]
    if len(parts) > 1:  # each range its own index scan, merged in the same order
        union = " UNION ALL ".join(f"({part})" for part in parts)
        statement = (f"SELECT {resource.column_list} FROM ({union}) AS page "
                     f"ORDER BY {order_by} LIMIT %s")
        args.append(limit)
    with conn.cursor() as cur:
        cur.execute(statement, args)
        return [as_json(resource, row) for row in cur.fetchall()]


def create(conn: connection, resource: Resource, fields: dict[str, Any]) -> dict[str, Any]:
    """Insert the given fields (those left out get their column's default)."""
    names = [f.name for f in resource.fields if f.name in fields]
    with conn.cursor() as cur, _writing(resource):
        cur.execute(
            f"INSERT INTO {resource.table} ({', '.join(names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))}) RETURNING {resource.columns}",
            [fields[name] for name in names],
        )
        return as_json(resource, cur.fetchone())


def _where(when: tuple[str, list] | None) -> tuple[str, list]:
    """`WHERE id = %s`, and the request's precondition when it has one (cities.http.conditional)."""
    if when is None:
        return "WHERE id = %s", []
    return f"WHERE id = %s AND {when[0]}", when[1]


def exists(conn: connection, resource: Resource, item_id: int) -> bool:
    """Whether the row exists: asked only after a conditional write wrote nothing (412 or 404)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT 1 FROM {resource.table} WHERE id = %s", (item_id,))
        return cur.fetchone() is not None


def update(
    conn: connection, resource: Resource, item_id: int, fields: dict[str, Any], *,
    replace: bool = False, when: tuple[str, list] | None = None,
) -> dict[str, Any] | None:
    """Set the given fields (a None value stores NULL); None when there is no such row, or
    when it does not meet the precondition `when`.

    `replace` (PUT) resets every field left out to its column's default, as a create would.
    """
    sets, params = [], []
    for field in resource.fields:
        if field.name in fields:
            sets.append(f"{field.name} = %s")
            params.append(fields[field.name])
        elif replace:
            sets.append(f"{field.name} = DEFAULT")
    where, condition = _where(when)
    with conn.cursor() as cur, _writing(resource):
        cur.execute(
            f"UPDATE {resource.table} SET {', '.join(sets)}, {TOUCH} "
            f"{where} RETURNING {resource.columns}",
            [*params, item_id, *condition],
        )
        return as_json(resource, cur.fetchone())


def delete(
    conn: connection, resource: Resource, item_id: int, *, when: tuple[str, list] | None = None
) -> dict[str, Any] | None:
    """Delete the row (None when there is none, or it does not meet `when`); 409 while a
    RESTRICT reference still points at it."""
    where, condition = _where(when)
    with conn.cursor() as cur:
        try:
            cur.execute(
                f"DELETE FROM {resource.table} {where} RETURNING {resource.columns}",
                [item_id, *condition],
            )
        except (pgerrors.ForeignKeyViolation, pgerrors.RestrictViolation) as error:
            # NO ACTION reports the first, RESTRICT the second: both mean "still referenced"
            raise still_referenced(resource, error) from None
        return as_json(resource, cur.fetchone())
