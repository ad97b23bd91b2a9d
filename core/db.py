"""Engine, session and the declarative base every model uses.

The edge (request or task wrapper) owns the transaction: services only ``flush()``. Side effects that must not
happen for a rolled-back write (a Celery send, a call, an SMS) are registered with :func:`after_commit`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

from core.time import as_utc

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, always hands back an aware datetime (SQLite forgets the zone; PostgreSQL keeps it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use core.time.utcnow()")
        return as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


session: scoped_session[Session] = scoped_session(sessionmaker(expire_on_commit=False))

_engine: Engine | None = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling sends no BEGIN before reads and none before a SAVEPOINT, which breaks
    # nested transactions; SQLAlchemy's recipe is to switch it off and begin explicitly (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front: web, worker and CLI processes share the file, and a deferred
    # transaction that reads and then writes would fail at once (SQLITE_BUSY) instead of waiting its turn.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql"):
        # An unreachable server (a network partition, not a refusal) fails in seconds, not after TCP's minutes:
        # webhooks have 15 s before the carrier gives up, and can answer from the spool (ivr.spool) instead.
        kwargs.setdefault("connect_args", {"connect_timeout": 5})
    return create_engine(url, pool_pre_ping=True, **kwargs)


def init_engine(url: str, **kwargs: Any) -> Engine:
    global _engine
    if _engine is not None and str(_engine.url) == url:
        session.configure(bind=_engine)
        return _engine
    _engine = make_engine(url, **kwargs)
    session.remove()
    session.configure(bind=_engine)
    return _engine


def get_engine() -> Engine:
    if _engine is None:
        raise RuntimeError("database engine not initialised; create the app first")
    return _engine


_AFTER_COMMIT_KEY = "lifeline_after_commit"


def after_commit(fn: Callable[[], Any]) -> None:
    """Run ``fn`` once the current transaction commits; dropped if it rolls back."""
    s = session()
    s.info.setdefault(_AFTER_COMMIT_KEY, []).append(fn)


@event.listens_for(Session, "after_commit")
def _run_after_commit(s: Session) -> None:
    hooks = s.info.pop(_AFTER_COMMIT_KEY, [])
    for fn in hooks:
        fn()


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(s: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        s.info.pop(_AFTER_COMMIT_KEY, None)


def commit() -> None:
    """Used only by edges (request teardown, task wrapper, CLI)."""
    session.commit()


def rollback() -> None:
    session.rollback()


def enum_type(enum_cls: Any, length: int = 32) -> Any:
    """Enums are stored by value as plain strings, so adding a member needs no database type change."""
    from sqlalchemy import Enum as SAEnum

    return SAEnum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )
