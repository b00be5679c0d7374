"""The schema on a real MariaDB: a database made by an older version (no `turns.error` column) gains
the columns added since when the app starts, and keeps its rows."""
from __future__ import annotations

from sqlalchemy import text

from benchmarks.stack import reset_database
from orchestrator.storage.db import Database

URL = "mysql+asyncmy://voice:voice@127.0.0.1:3306/voicechat_schema_test"


async def test_an_older_turns_table_gains_the_new_columns_and_keeps_its_rows():
    await reset_database(URL)
    db = Database(URL)
    try:
        await db.init()
        await db.start_session("s1", "u1")
        async with db.engine.begin() as conn:  # the table as an older version made it
            await conn.execute(text("ALTER TABLE turns DROP COLUMN error"))
            await conn.execute(text(
                "INSERT INTO turns (session_id, turn_index, status, user_text, assistant_text, started_at, ended_at, "
                "user_audio_ms, assistant_audio_ms, timings, model_versions, memory_hits) VALUES ('s1', 0, "
                "'completed', '안녕', '네', NOW(), NOW(), 1000, 500, '{}', '{}', 0)"))
        await db.init()  # the app starts again on that database
        [row] = await db.turns("s1")
        assert row.user_text == "안녕" and row.error is None
        async with db.engine.connect() as conn:
            columns = {r[0] for r in await conn.execute(text("SHOW COLUMNS FROM turns"))}
        assert "error" in columns
    finally:
        await db.close()
        await reset_database(URL)
