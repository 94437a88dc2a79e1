"""One declaration per resource, from which the shared code derives everything else.

A `Resource` names its table, its fields (each with its rule and OpenAPI schema), which fields
sort and how, and its unique constraints with what a conflict says. Its references to
other resources (foreign keys) give the 422 of an unknown id, the 409 of deleting a row still
referenced, their OpenAPI entries and the index each needs. The body checks
(validation.py), the SQL (store.py), the list query and its cursors (listing.py), the routes
(resource_api.py) and the OpenAPI document (openapi.py) are all derived from it. What is truly
special to one resource (city's word-by-word `q` search, its state-led order) is a named hook.

The pieces are plain classes with slots: defining one costs next to nothing at Lambda init, where
a NamedTuple or a dataclass is generated code, and a validation library (pydantic, marshmallow,
jsonschema) is tens of milliseconds of imports (figures: docs/benchmarks.md, Design measurements).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cities.http.resource_api import ResourceViews

# Every resource's table has these columns besides its fields: an identity id, and when the row
# was created and last written (store.TOUCH moves updated_at forward on every write).
ID = "id"
TIMESTAMPS = ("created_at", "updated_at")
# How a row's timestamps are read: as the API writes them (RFC 3339 in UTC, always six decimals,
# so clients can compare them as strings), formatted by the server. A datetime per value, then
# its conversion and formatting in Python, cost more client CPU than the rest of the row.
RFC3339_UTC = """to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS {0}"""

# A rule turns an untrusted JSON value into (checked value, None) or (None, reason).
Rule = Callable[[Any], tuple[Any, Any]]


class Field:
    """A column a client writes. `required`: must be given on create and replace (POST, PUT);
    an optional field left out gets its column's default. `nullable`: JSON null is accepted and
    stored as NULL (the rule never sees it). `schema` is the OpenAPI schema of a non-null value."""

    __slots__ = ("name", "nullable", "required", "rule", "schema")

    def __init__(
        self, name: str, rule: Rule, schema: Mapping[str, Any], *,
        required: bool = True, nullable: bool = False,
    ) -> None:
        self.name, self.rule, self.schema = name, rule, schema
        self.required, self.nullable = required, nullable


class Sort:
    """A `sort` value (and its descending `-` twin): rows ordered by `expression` with `{}` for
    the column, then by id. Its index is (expression, id), a drift test checks that it exists.

    A nullable field's sort declares where its NULLs go, `nulls="first"` or `"last"`, in the
    ascending sort; the descending twin is its exact reverse (NULLs last under `population` are
    first under `-population`), as SQL's own `DESC` is. So `-x` lists exactly the rows of `x`
    backwards, one index walked either way serves both, and a cursor's comparison stays a range
    of that index on either side of the NULLs (cities.db.store.list_page). Its index is
    `(expression NULLS FIRST, id)` for "first", `(expression, id)` for "last" (ascending order
    puts NULLs last unless told otherwise, and PostgreSQL prints it back without the words)."""

    __slots__ = ("column", "field", "nulls", "placeholder")

    def __init__(self, field: str, expression: str = "{}", *, nulls: str | None = None) -> None:
        if nulls not in (None, "first", "last"):
            raise ValueError(f"sort {field!r}: nulls is \"first\" or \"last\"")
        self.field = field
        self.column = expression.format(field)
        self.placeholder = expression.format("%s")  # a cursor's value as SQL compares it
        self.nulls = nulls

    @property
    def index_column(self) -> str:
        """The sort's column as its index is written, and as PostgreSQL prints it back."""
        return f"{self.column} NULLS FIRST" if self.nulls == "first" else self.column


class Filter:
    """A list query parameter checked by `rule` (a text value); the resource's `list_filter`
    hook turns the checked values into SQL."""

    __slots__ = ("description", "name", "rule", "schema")

    def __init__(
        self, name: str, rule: Callable[[str], tuple[Any, Any]],
        schema: Mapping[str, Any], description: str,
    ) -> None:
        self.name, self.rule, self.schema, self.description = name, rule, schema, description


class Range(Filter):
    """A list filter bounding a sorted field: `min_population=N` is `population >= N`, written
    on the field's sort expression (`bound` ">=" or "<="). Derived by the shared SQL
    (store.list_page), no hook. Under its field's sort the sort's index starts its walk at the
    bound (on another expression than the sort's it could not, and would read far more of it).
    Under any other sort, the index that sort walks carries the range's column after its own
    (`required_indexes`), so the bound is checked inside the index rather than on the rows it
    leads to (docs/benchmarks.md, Design measurements)."""

    __slots__ = ("bound", "field")

    def __init__(
        self, name: str, field: str, bound: str, rule: Callable[[str], tuple[Any, Any]],
        schema: Mapping[str, Any], description: str,
    ) -> None:
        if bound not in (">=", "<="):
            raise ValueError(f"range filter {name!r}: bound is >= or <=")
        super().__init__(name, rule, schema, description)
        self.field, self.bound = field, bound


class Unique:
    """A unique index (by its name in the migration) and what a 409 for it tells the client:
    a message, a detail per field and the OpenAPI description of the 409."""

    __slots__ = ("description", "details", "index", "message")

    def __init__(
        self, index: str, message: str, details: tuple[tuple[str, str], ...], description: str
    ) -> None:
        self.index, self.message, self.details, self.description = (
            index, message, details, description
        )


# What deleting a referenced row does (the foreign key's ON DELETE): refuse it (a 409 naming who
# still refers to it), delete the referencing rows too, or set their field to NULL.
RESTRICT, CASCADE, SET_NULL = "restrict", "cascade", "set null"


class Reference:
    """A field holding the id of a row of `target` (a foreign key, `REFERENCES target (id)` with
    ON DELETE `on_delete`, named `constraint`, by default PostgreSQL's `<table>_<field>_fkey`).
    An id naming no such row is a 422 on that field; with RESTRICT, deleting a row still
    referenced is a 409. Its index (the field first) is required, as deleting a target row looks
    up the rows referencing it."""

    __slots__ = ("constraint", "field", "on_delete", "source", "target")

    def __init__(
        self, field: str, target: Resource, *, on_delete: str = RESTRICT,
        constraint: str | None = None,
    ) -> None:
        if on_delete not in (RESTRICT, CASCADE, SET_NULL):
            raise ValueError(f"reference {field!r}: on_delete is restrict, cascade or set null")
        self.field, self.target, self.on_delete = field, target, on_delete
        self.constraint = constraint or ""  # the referencing Resource fills in the default
        self.source: Resource | None = None


class Order:
    """What one `sort` value means in SQL: the order's columns, its direction, the row fields a
    cursor's key holds (one per column), how SQL compares a key with the columns, where NULLs of
    its first column go in the ascending order (None: a non-null field) and its index's columns
    as PostgreSQL prints them."""

    __slots__ = ("columns", "descending", "index_columns", "key", "nulls", "placeholders")

    def __init__(
        self, columns: tuple[str, ...], descending: bool, key: tuple[str, ...], placeholders: str,
        nulls: str | None = None, index_columns: tuple[str, ...] | None = None,
    ) -> None:
        self.columns, self.descending, self.key, self.placeholders = (
            columns, descending, key, placeholders
        )
        self.nulls, self.index_columns = nulls, index_columns or columns

    def order_by(self, prefix: tuple[str, ...] = ()) -> str:
        """The ORDER BY list: the prefix, then the sort's columns, NULLs where declared."""
        direction = " DESC" if self.descending else ""
        terms = [f"{column}{direction}" for column in (*prefix, *self.columns)]
        if self.nulls:
            first = (self.nulls == "first") != self.descending  # DESC reverses the NULLs too
            terms[len(prefix)] += " NULLS FIRST" if first else " NULLS LAST"
        return ", ".join(terms)


# (conn, query) -> (SQL conditions, their parameters, columns put before the sort's order).
ListFilter = Callable[[Any, Any], tuple[list[str], list[Any], tuple[str, ...]]]


def _no_filter(conn: Any, query: Any) -> tuple[list[str], list[Any], tuple[str, ...]]:
    return [], [], ()


class Resource:
    """A declared resource and the tables and statements derived from it, computed once."""

    def __init__(
        self,
        *,
        singular: str,
        plural: str,
        fields: tuple[Field, ...],
        sorts: tuple[Sort, ...] = (),
        uniques: tuple[Unique, ...] = (),
        filters: tuple[Filter, ...] = (),
        list_filter: ListFilter = _no_filter,
        order_prefixes: tuple[tuple[str, ...], ...] = (),
        references: tuple[Reference, ...] = (),
        table: str | None = None,
        views: type[ResourceViews] | None = None,
    ) -> None:
        self.singular = singular  # "city": messages, schema names ("City", "CityInput")
        self.plural = plural  # "cities": the collection's path, /cities
        self.table = table or singular
        # A ResourceViews subclass overriding some operations (one verb), or None: the shared.
        self.views = views
        self.fields = fields
        self.field = {f.name: f for f in fields}
        self.sorts = (Sort(ID), *sorts)  # sort=id (the primary key) comes first, the default
        self.uniques = uniques
        self.filters = filters
        self.list_filter = list_filter
        # Leading columns the list_filter hook may put before a sort's (for the drift test).
        self.order_prefixes = order_prefixes
        for sort in sorts:
            field = self.field.get(sort.field)
            if field is None or field.nullable != (sort.nulls is not None):
                raise ValueError(
                    f"{singular}: sort {sort.field!r} must be a field, and declares where its "
                    "NULLs go (nulls=\"first\" or \"last\") exactly when the field is nullable")
        self.ranges: list[tuple[Range, Sort]] = []
        for spec in filters:
            if isinstance(spec, Range):
                sort = next((s for s in sorts if s.field == spec.field), None)
                if sort is None:
                    raise ValueError(f"{singular}: range filter {spec.name!r} needs a Sort of "
                                     f"{spec.field!r}: its SQL is on the sort's expression")
                self.ranges.append((spec, sort))
        self.references = references
        # The references to this resource's rows, by constraint name: filled in as referencing
        # resources are declared (a re-declaration replaces its entry), for the 409 of a delete.
        self.referenced_by: dict[str, Reference] = {}
        for reference in references:
            self._refer(reference)

        self.column_names = (ID, *(f.name for f in fields), *TIMESTAMPS)
        # What a SELECT or RETURNING of rows of the table names; `column_list`, the same columns
        # of a subquery's rows (already formatted).
        self.columns = ", ".join(
            RFC3339_UTC.format(name) if name in TIMESTAMPS else name for name in self.column_names)
        self.column_list = ", ".join(self.column_names)
        self.select_by_id = f"SELECT {self.columns} FROM {self.table} WHERE id = %s"
        # sort parameter ("name", "-name") -> its Order; ties break by id
        self.sort_keys: dict[str, Order] = {}
        for sort in self.sorts:
            if sort.field == ID:
                columns, key, placeholders = (sort.column,), (ID,), sort.placeholder
            else:
                columns, key = (sort.column, ID), (sort.field, ID)
                placeholders = f"{sort.placeholder}, %s"
            indexed = (sort.index_column, *columns[1:])
            for name, descending in ((sort.field, False), (f"-{sort.field}", True)):
                self.sort_keys[name] = Order(columns, descending, key, placeholders,
                                             sort.nulls, indexed)
        self.sort_names = tuple(self.sort_keys)

    def _refer(self, reference: Reference) -> None:
        field = self.field.get(reference.field)
        if field is None or (reference.on_delete == SET_NULL and not field.nullable):
            raise ValueError(f"{self.singular}: reference {reference.field!r} must be a field, "
                             "nullable when on_delete is set null")
        reference.source = self
        reference.constraint = reference.constraint or f"{self.table}_{reference.field}_fkey"
        reference.target.referenced_by[reference.constraint] = reference

    def reference_named(self, constraint: str | None) -> Reference | None:
        """This resource's reference whose foreign key the database names, if declared."""
        return next((r for r in self.references if r.constraint == constraint), None)

    def restricting(self) -> list[Reference]:
        """The references that make deleting one of this resource's rows a 409 while in use."""
        return [r for r in self.referenced_by.values() if r.on_delete == RESTRICT]

    @property
    def title(self) -> str:
        """`City`: the prefix of the OpenAPI schema and operation names."""
        return "".join(part.capitalize() for part in self.singular.split("_"))

    @property
    def title_plural(self) -> str:
        return "".join(part.capitalize() for part in self.plural.split("_"))

    @property
    def with_article(self) -> str:
        """`a city`, `an item`."""
        return f"{'an' if self.singular[0] in 'aeiou' else 'a'} {self.singular}"

    def required_indexes(self) -> list[tuple[str, ...]]:
        """The leading columns of every b-tree index a query relies on, as PostgreSQL prints
        them: one per sort, one per sort behind each order prefix of the list_filter hook, one
        per reference (without it, each delete of a target row reads the whole referencing
        table), and one per range filter under each other sort: that sort's index with the
        range's column after it, so the bound is checked in the index and a row the bound
        excludes costs no heap read (tests/db/test_list_plans.py measures it)."""
        wanted = []
        for prefix in ((), *self.order_prefixes):
            for sort in self.sorts:
                columns = (*prefix, *self.sort_keys[sort.field].index_columns)
                wanted.append(columns)
                wanted.extend((*columns, on.column) for _, on in self.ranges if on is not sort)
        wanted.extend((reference.field,) for reference in self.references)
        return list(dict.fromkeys(wanted))
