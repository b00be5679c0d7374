"""FastAPI app: the voice WebSocket, health, turns, model swaps, Prometheus metrics."""
from __future__ import annotations

import asyncio
import hmac
import logging
import re
import uuid
from collections import Counter
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.websockets import WebSocketDisconnect, WebSocketState

from orchestrator import protocol as P
from orchestrator.auth import KeyRing, RateLimit, check_exposure, origin_allowed, presented_key
from orchestrator.realtime.adapter import RealtimeConnection
from orchestrator.realtime.page import PAGE_DIR
from orchestrator.session import Services, VoiceSession
from orchestrator.warmup import warm_up
from orchestrator.settings import Settings, get_settings
from orchestrator.storage.db import Database
from orchestrator.storage.turns import TurnStore
from orchestrator.storage.vectors import VectorMemory
from orchestrator.triton_client import TritonCallError, TritonGateway

log = logging.getLogger("orchestrator.app")


def enabled_models(s: Settings) -> list[str]:
    models = [s.vad_model, s.embedder_model]
    models += [s.stt_model] if s.stt_enabled else []
    models += [s.llm_model] if s.llm_enabled else []
    models += [s.tts_model] if s.tts_enabled else []
    return models


def socket_sender(ws: WebSocket):
    """Serialised sends from a session's tasks (str, JSON dict or bytes); a closed socket drops them."""
    lock = asyncio.Lock()

    async def send(payload: str | dict | bytes) -> None:
        async with lock:
            if ws.application_state == WebSocketState.CONNECTED:
                try:
                    if isinstance(payload, bytes):
                        await ws.send_bytes(payload)
                    else:
                        await (ws.send_text(payload) if isinstance(payload, str) else ws.send_json(payload))
                except (WebSocketDisconnect, RuntimeError):
                    pass

    return send


async def receive_loop(ws: WebSocket, on_text, on_bytes) -> None:
    """Hand every frame to the session until the client leaves."""
    try:
        while (message := await ws.receive())["type"] != "websocket.disconnect":
            if message.get("text") is not None:
                await on_text(message["text"])
            elif message.get("bytes") is not None:
                await on_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        db = Database(settings.database_url, timeout_s=settings.storage_timeout_s)
        await db.init()
        memory = await asyncio.to_thread(VectorMemory, settings.milvus_uri, settings.milvus_collection,
                                         timeout_s=settings.storage_timeout_s)
        gateway = TritonGateway(settings.triton_url, lazy_load=settings.lazy_load, timeout_s=settings.triton_timeout_s,
                                stream_gap_s=settings.triton_stream_gap_s)

        async def embed(texts: list[str]):
            return await gateway.embed(settings.embedder_model, texts, kind="passage")

        turn_store = TurnStore(db, memory, embed, settings.storage_timeout_s, settings.store_retry_s)
        app.state.services = Services(settings, gateway, db, memory, turn_store,
                                      RateLimit(settings.enrollments_per_hour, 3600.0))
        log.info("orchestrator up: triton=%s db=%s milvus=%s", settings.triton_url,
                 db.engine.url.render_as_string(hide_password=True), settings.milvus_uri)
        app.state.warm_up = {"state": "off"}
        warming = (asyncio.create_task(warm_up(app.state.services, lambda: bool(open_sockets), app.state.warm_up))
                   if settings.warm_up_at_start else None)
        try:
            yield
        finally:
            if warming is not None:
                warming.cancel()
                await asyncio.gather(warming, return_exceptions=True)
            await turn_store.close(settings.storage_timeout_s)
            await gateway.close()
            await db.close()
            memory.close()

    app = FastAPI(title="Korean real-time voice chat", lifespan=lifespan)
    keys = KeyRing(settings.api_keys, settings.api_keys_file)
    live_sessions: set[str] = set()
    open_sockets: Counter[str] = Counter()  # per key's user ("" = development mode)

    connections = RateLimit(settings.connections_per_minute, 60.0)

    async def admit(user: str, ws: WebSocket, refuse) -> bool:
        """The connection rate and session caps, per key's user and on the server; a refused socket
        hears why."""
        if not connections.allow(user or f"address:{ws.client.host if ws.client else ''}"):
            await refuse(f"more than {settings.connections_per_minute} connections a minute", P.ErrorCode.RATE_LIMITED)
            return False
        if sum(open_sockets.values()) >= settings.max_sessions:
            await refuse(f"the server has {settings.max_sessions} open sessions; try again later")
            return False
        if user and open_sockets[user] >= settings.max_sessions_per_user:
            await refuse(f"this key has {settings.max_sessions_per_user} open sessions")
            return False
        open_sockets[user] += 1
        return True

    def release(user: str) -> None:
        open_sockets[user] -= 1
        if open_sockets[user] <= 0:
            del open_sockets[user]
    warning = check_exposure(keys, settings.host)
    if warning:
        log.warning(warning)

    def socket_user(ws: WebSocket) -> tuple[str | None, list[str]]:
        """(the key's user, or "" in development mode; None = refused, offered subprotocols)."""
        offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        if not origin_allowed(ws.headers, settings.allowed_origins):
            return None, offered
        if not keys.enabled:
            return "", offered
        return keys.user_for(presented_key(ws.headers, ws.query_params, offered)), offered

    def caller(request: Request) -> str | None:
        """HTTP routes: the key's user (None in development mode), else 401."""
        if not keys.enabled:
            return None
        user = keys.user_for(presented_key(request.headers, request.query_params, []))
        if user is None:
            raise HTTPException(401, "missing or unknown API key", headers={"WWW-Authenticate": "Bearer"})
        return user

    def admin(request: Request) -> None:
        if not keys.enabled:
            return
        key = presented_key(request.headers, request.query_params, [])
        if not settings.admin_key or not key or not hmac.compare_digest(key.encode(), settings.admin_key.encode()):
            raise HTTPException(403, "admin routes need ADMIN_KEY")

    @app.websocket("/v1/realtime")
    async def realtime(ws: WebSocket):
        """OpenAI Realtime (GA, or beta with `OpenAI-Beta: realtime=v1`) over the same session as /ws/voice."""
        user_id, offered = socket_user(ws)
        user_id = "local" if user_id == "" else user_id
        if user_id is None:
            await ws.close(code=4401)  # before accept: the handshake is refused (HTTP 403)
            return
        await ws.accept(subprotocol="realtime" if "realtime" in offered else None)
        beta = "realtime=v1" in ws.headers.get("openai-beta", "") or "openai-beta.realtime-v1" in offered
        send = socket_sender(ws)

        async def refuse(message: str, code: str = P.ErrorCode.SERVER_BUSY) -> None:
            await send({"type": "error", "event_id": f"event_{uuid.uuid4().hex[:22]}", "error": {
                "type": "server_error", "code": code, "message": message, "param": None,
                "event_id": None}})
            await ws.close(code=1013)

        if not await admit(user_id, ws, refuse):
            return
        try:
            connection = RealtimeConnection(app.state.services, send, beta=beta, user_id=user_id,
                                            model=ws.query_params.get("model") or settings.realtime_model_name)
            if not await connection.open():
                await ws.close(code=1011)
                return
            try:
                await receive_loop(ws, connection.handle_text, connection.handle_bytes)
            finally:
                await connection.close()
        finally:
            release(user_id)

    @app.get("/")
    async def page():
        return FileResponse(PAGE_DIR / "index.html")

    @app.get("/static/{name}")
    async def static(name: str):
        if name not in {"app.js", "capture-worklet.js"}:
            raise HTTPException(404, "not found")
        return FileResponse(PAGE_DIR / name, media_type="text/javascript")

    @app.websocket("/ws/voice/{session_id}")
    async def voice(ws: WebSocket, session_id: str):
        user_id, offered = socket_user(ws)
        if user_id is None:
            await ws.close(code=4401)  # before accept: the handshake is refused (HTTP 403)
            return
        await ws.accept(subprotocol="realtime" if "realtime" in offered else None)
        send = socket_sender(ws)
        if not re.match(P.ID_PATTERN, session_id):
            await send(P.error_event(P.ErrorCode.BAD_SESSION_ID, "session ids are 1–64 of [A-Za-z0-9_.-]"))
            await ws.close(code=4400)
            return
        if session_id in live_sessions:  # one socket per session: two would interleave turns and rows
            await send(P.error_event(P.ErrorCode.SESSION_BUSY, "this session is open on another socket"))
            await ws.close(code=4409)
            return


        async def refuse(message: str, code: str = P.ErrorCode.SERVER_BUSY) -> None:
            await send(P.error_event(code, message))
            await ws.close(code=1013)

        if not await admit(user_id, ws, refuse):
            return
        live_sessions.add(session_id)
        session = VoiceSession(session_id, app.state.services, send, send, key_user=user_id or None)

        async def start_deadline() -> None:  # a socket that never starts a session does not stay open
            await asyncio.sleep(settings.start_timeout_s)
            if session.user_id is None:
                await send(P.error_event(P.ErrorCode.START_TIMEOUT,
                                         f"no session.start within {settings.start_timeout_s:g} s"))
                await ws.close(code=4408)

        deadline = asyncio.create_task(start_deadline())
        try:
            await receive_loop(ws, session.handle_text, session.handle_audio)
        finally:
            deadline.cancel()
            await session.close()
            live_sessions.discard(session_id)
            release(user_id)

    @app.get("/api/health/")
    async def health():
        svc: Services = app.state.services
        db_ok, vec_ok, triton_ok = await asyncio.gather(svc.db.ping(settings.storage_timeout_s), svc.memory.ping(),
                                                        svc.gateway.server_ready())
        names = enabled_models(settings)
        models = await svc.gateway.model_status(names) if triton_ok else {n: {"ready": False} for n in names}
        for name in svc.gateway.broken & set(models):  # its process died: Triton still says READY
            models[name] |= {"ready": False, "state": "RELOADING"}
        for status in models.values():  # LAZY_LOAD: present in the repository but not loaded yet is fine
            status["ok"] = status["ready"] or (settings.lazy_load and status.get("state") in ("UNAVAILABLE", "UNKNOWN")
                                               and "unloaded" in status.get("reason", "unloaded"))
        ok = db_ok and vec_ok and triton_ok and all(m["ok"] for m in models.values())
        body = {"status": "ok" if ok else "degraded", "database": db_ok, "vector_db": vec_ok, "triton": triton_ok,
                "models": models, "lazy_load": settings.lazy_load, "turns_unstored": len(svc.turns.pending),
                "warm_up": app.state.warm_up}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/api/sessions/{session_id}/turns")
    async def turns(session_id: str, user: str | None = Depends(caller)):
        svc: Services = app.state.services
        row = await svc.db.session(session_id) if re.match(P.ID_PATTERN, session_id) else None
        if row is None or (user is not None and row.user_id != user):  # another user's session: not found
            raise HTTPException(404, "unknown session")
        rows = await svc.db.turns(session_id)
        return [{"turn_index": t.turn_index, "status": t.status, "user_text": t.user_text,
                 "assistant_text": t.assistant_text, "user_audio_ms": t.user_audio_ms,
                 "assistant_audio_ms": t.assistant_audio_ms, "timings": t.timings,
                 "model_versions": t.model_versions, "memory_hits": t.memory_hits, "error": t.error} for t in rows]

    @app.post("/api/admin/models/{name}/load", dependencies=[Depends(admin)])
    async def load_model(name: str):
        """Swap: after `python -m export <model> --new-version`, make Triton serve the new version."""
        if name not in enabled_models(settings):
            raise HTTPException(404, f"unknown model {name!r}")
        try:
            version = await app.state.services.gateway.load_model(name)
        except TritonCallError as exc:
            raise HTTPException(409, exc.message) from None
        return {"model": name, "version": version}

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
