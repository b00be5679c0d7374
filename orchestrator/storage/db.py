"""MariaDB via SQLAlchemy 2 async: users, sessions, turns (text, per-stage timings, audio durations)."""
from __future__ import annotations

import asyncio
import datetime as dt
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, event, func, inspect, select, text
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.schema import CreateColumn
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Timestamp = DATETIME(fsp=6)  # plain DateTime keeps whole seconds on MariaDB


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    voice_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)


class Session(Base):
    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(Timestamp, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)


class Turn(Base):
    __tablename__ = "turns"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id"), index=True)
    turn_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # completed | interrupted | failed
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)  # why a failed turn failed
    user_text: Mapped[str] = mapped_column(Text)
    assistant_text: Mapped[str] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    ended_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    user_audio_ms: Mapped[int] = mapped_column(Integer)
    assistant_audio_ms: Mapped[int] = mapped_column(Integer)
    # per-stage timings (ms from end of user speech), the same numbers the metrics observe
    timings: Mapped[dict[str, Any]] = mapped_column(JSON)
    model_versions: Mapped[dict[str, Any]] = mapped_column(JSON)
    memory_hits: Mapped[int] = mapped_column(Integer, default=0)


async def ensure_database(url: str) -> None:
    """CREATE DATABASE IF NOT EXISTS for the URL's database (the one-command run starts from nothing)."""
    parsed = make_url(url)
    if not parsed.database or not parsed.drivername.startswith("mysql"):
        return
    server = create_async_engine(parsed.set(database=""), pool_pre_ping=True)
    try:
        async with server.begin() as conn:
            await conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{parsed.database}` "
                                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    finally:
        await server.dispose()


def add_missing_columns(sync_conn) -> None:
    """Tables made by an older version gain the nullable columns added since (create_all skips them)."""
    inspector = inspect(sync_conn)
    for table in Base.metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                ddl = CreateColumn(column).compile(dialect=sync_conn.dialect)
                sync_conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))


class Database:
    """`timeout_s` bounds waits on the server's side too: connecting, and lock waits (a table locked by
    someone else fails the statement instead of stalling it forever)."""

    def __init__(self, url: str, timeout_s: float = 10.0):
        self.url = url
        mysql = make_url(url).drivername.startswith("mysql")
        self.engine: AsyncEngine = create_async_engine(
            url, pool_pre_ping=True, pool_recycle=1800,
            connect_args={"connect_timeout": max(1, int(timeout_s))} if mysql else {})
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        if mysql:
            wait_s = max(1, int(timeout_s / 2))  # the statement fails before the caller's own bound

            @event.listens_for(self.engine.sync_engine, "connect")
            def bound_lock_waits(dbapi_connection, _record):
                cursor = dbapi_connection.cursor()
                cursor.execute(f"SET SESSION lock_wait_timeout = {wait_s}, innodb_lock_wait_timeout = {wait_s}")
                cursor.close()

    async def init(self) -> None:
        await ensure_database(self.url)
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.run_sync(add_missing_columns)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self, timeout_s: float = 5.0) -> bool:
        async def select_one() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        try:
            await asyncio.wait_for(select_one(), timeout_s)
            return True
        except Exception:  # noqa: BLE001 - health reports, never raises
            return False

    @asynccontextmanager
    async def transaction(self):
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def start_session(self, session_id: str, user_id: str) -> User:
        """Upsert the user, open (or reopen) the session row; returns the user."""
        async with self.transaction() as s:
            user = await s.get(User, user_id)
            if user is None:
                user = User(id=user_id)
                s.add(user)
                await s.flush()
            row = await s.get(Session, session_id)
            if row is None:
                s.add(Session(id=session_id, user_id=user_id))
            elif row.user_id != user_id:
                raise PermissionError("session belongs to another user")
            else:
                row.ended_at = None
            return user

    async def set_voice(self, user_id: str, voice_id: str) -> None:
        async with self.transaction() as s:
            (await s.get(User, user_id)).voice_id = voice_id

    async def end_session(self, session_id: str) -> None:
        async with self.transaction() as s:
            row = await s.get(Session, session_id)
            if row is not None:
                row.ended_at = utcnow()

    async def next_turn_index(self, session_id: str) -> int:
        async with self.sessionmaker() as s:
            n = await s.scalar(select(func.count()).select_from(Turn).where(Turn.session_id == session_id))
            return int(n or 0)

    async def turns(self, session_id: str) -> list[Turn]:
        async with self.sessionmaker() as s:
            rows = await s.scalars(select(Turn).where(Turn.session_id == session_id).order_by(Turn.turn_index))
            return list(rows)

    async def session(self, session_id: str) -> Session | None:
        async with self.sessionmaker() as s:
            return await s.get(Session, session_id)
