"""The schema the migrations build is the one the models declare: the same tables, columns (name,
type family, nullability), indexes (columns, uniqueness) and foreign keys. Run on a fresh SQLite
file, and on PostgreSQL when PROLIFERATE_TEST_DATABASE_URL names one (the `config` fixture)."""

import re

import peewee
import pytest

from proliferate import db
from proliferate import models

MODELS = models.ALL_MODELS

# The migration runner's own history table: it has no model.
RUNNER_TABLES = frozenset(('schema_migration',))


def type_family(declared):
    """A column type reduced to what the application relies on, so SQLite's and PostgreSQL's
    spellings of one type compare equal (VARCHAR(255) and character varying(255), BIGSERIAL and
    bigint, TIMESTAMP and timestamp without time zone). A bounded string keeps its bound: on
    PostgreSQL a longer value is refused where TEXT takes it."""
    declared = declared.upper()
    bound = re.search(r'CHAR[A-Z ]*\((\d+)\)', declared)
    if bound:
        return f'varchar({bound.group(1)})'
    families = (
        ('BIGINT', 'bigint'), ('BIGSERIAL', 'bigint'), ('INT8', 'bigint'),
        ('BOOL', 'boolean'),
        ('INT', 'integer'), ('SERIAL', 'integer'),
        ('CHAR', 'text'), ('TEXT', 'text'), ('CLOB', 'text'),
        ('TIMESTAMP', 'datetime'), ('DATETIME', 'datetime'),
        ('BLOB', 'blob'), ('BYTEA', 'blob'),
        ('REAL', 'float'), ('DOUBLE', 'float'), ('FLOAT', 'float'), ('NUMERIC', 'decimal'),
    )
    for marker, family in families:
        if marker in declared:
            return family
    return declared.lower()


def declared_type(database, field):
    """The type Peewee writes in CREATE TABLE for field on this database."""
    kind = field.field_type
    declared = database.field_types.get(kind) or peewee.FIELD.get(kind, kind)
    modifiers = field.get_modifiers()
    return f'{declared}({",".join(map(str, modifiers))})' if modifiers else declared


def model_columns(database, model):
    key = model._meta.primary_key
    # A composite key's columns are each part of the primary key.
    in_key = set(key.field_names) if isinstance(key, peewee.CompositeKey) else set()
    return {field.column_name: (type_family(declared_type(database, field)), bool(field.null),
                                field.primary_key or field.name in in_key)
            for field in model._meta.sorted_fields}


def table_columns(database, table):
    return {column.name: (type_family(column.full_type), bool(column.null), column.primary_key)
            for column in database.get_columns(table)}


def model_indexes(model):
    """{(columns, unique)} as Peewee creates them: Meta.indexes, and an index for each field
    with index=True or unique=True (a ForeignKeyField has index=True unless told otherwise)."""
    found = set()
    for index in model._meta.fields_to_index():
        columns = tuple(expression.column_name for expression in index._expressions)
        found.add((columns, bool(index._unique)))
    return found


def table_indexes(database, table):
    """{(columns, unique)} of the table, leaving out the primary key's own index (PostgreSQL
    lists it; SQLite has none for an INTEGER PRIMARY KEY)."""
    primary = tuple(database.get_primary_keys(table))
    return {(tuple(index.columns), bool(index.unique)) for index in database.get_indexes(table)
            if not (index.unique and tuple(index.columns) == primary)}


def model_foreign_keys(model):
    """{(column, referenced table, referenced column, ON DELETE action)}."""
    return {(field.column_name, field.rel_model._meta.table_name, field.rel_field.column_name,
             (field.on_delete or 'NO ACTION').upper())
            for field in model._meta.sorted_fields if isinstance(field, peewee.ForeignKeyField)}


# pg_constraint.confdeltype's letters.
PG_ON_DELETE = {'a': 'NO ACTION', 'r': 'RESTRICT', 'c': 'CASCADE', 'n': 'SET NULL',
                'd': 'SET DEFAULT'}


def on_delete_actions(database, table):
    """column -> its foreign key's ON DELETE action (Peewee's introspection leaves it out)."""
    if isinstance(database, peewee.SqliteDatabase):
        rows = database.execute_sql(f'PRAGMA foreign_key_list("{table}")').fetchall()
        return {row[3]: row[6].upper() for row in rows}
    rows = database.execute_sql(
        'SELECT a.attname, c.confdeltype FROM pg_constraint c '
        'JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] '
        "WHERE c.contype = 'f' AND c.conrelid = %s::regclass", (f'"{table}"',)).fetchall()
    return {column: PG_ON_DELETE[action] for column, action in rows}


def table_foreign_keys(database, table):
    actions = on_delete_actions(database, table)
    return {(key.column, key.dest_table, key.dest_column, actions.get(key.column))
            for key in database.get_foreign_keys(table)}


@pytest.fixture
def migrated(config):
    database = db.open_database(config.database_url)
    db.migrate()
    database.connect()
    yield database
    database.close()


def drift(expected, found):
    """Lines naming what one side has and the other lacks or has otherwise."""
    lines = []
    for key in sorted(set(expected) | set(found), key=str):
        if key not in found:
            lines.append(f'model only: {key} {expected[key]}')
        elif key not in expected:
            lines.append(f'table only: {key} {found[key]}')
        elif expected[key] != found[key]:
            lines.append(f'{key}: model {expected[key]}, table {found[key]}')
    return lines


def report(title, problems):
    return title + '\n' + '\n'.join(f'  {line}' for line in problems)


def test_every_model_has_its_table_and_every_table_its_model(migrated):
    tables = set(migrated.get_tables()) - RUNNER_TABLES
    declared = {model._meta.table_name for model in MODELS}
    assert tables == declared, (f'tables without a model: {sorted(tables - declared)}; '
                                f'models without a table: {sorted(declared - tables)}')


def test_columns_match_the_models(migrated):
    """Each column as (type family, nullable, primary key)."""
    problems = []
    for model in MODELS:
        table = model._meta.table_name
        problems += [f'{table}.{line}' for line in
                     drift(model_columns(migrated, model), table_columns(migrated, table))]
    assert not problems, report('columns that differ from the models:', problems)


def test_indexes_match_the_models(migrated):
    problems = []
    for model in MODELS:
        table = model._meta.table_name
        expected = model_indexes(model)
        found = table_indexes(migrated, table)
        problems += [f'{table}: model only {columns} unique={unique}'
                     for columns, unique in sorted(expected - found)]
        problems += [f'{table}: table only {columns} unique={unique}'
                     for columns, unique in sorted(found - expected)]
    assert not problems, report('indexes that differ from the models:', problems)


def test_foreign_keys_match_the_models(migrated):
    problems = []
    for model in MODELS:
        table = model._meta.table_name
        expected = model_foreign_keys(model)
        found = table_foreign_keys(migrated, table)
        problems += [f'{table}: model only {key}' for key in sorted(expected - found)]
        problems += [f'{table}: table only {key}' for key in sorted(found - expected)]
    assert not problems, report('foreign keys that differ from the models:', problems)


def test_type_families():
    assert type_family('VARCHAR(255)') == type_family('character varying(255)') == 'varchar(255)'
    assert type_family('TEXT') == type_family('text') == 'text'
    assert type_family('BIGSERIAL') == type_family('bigint') == 'bigint'
    assert type_family('INTEGER') == type_family('SERIAL') == 'integer'
    assert type_family('TIMESTAMP') == type_family('timestamp without time zone') == 'datetime'
    assert type_family('BOOLEAN') == 'boolean'
    assert type_family('BYTEA') == type_family('BLOB') == 'blob'
