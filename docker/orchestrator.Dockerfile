FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN grep -E '^(tritonclient|numpy|fastapi|uvicorn|websockets|pydantic|sqlalchemy|asyncmy|pymilvus|prometheus-client|httpx|tqdm|pyarrow|soxr|jamo)' requirements.txt > req-app.txt \
 && pip install --no-cache-dir -r req-app.txt
COPY orchestrator orchestrator
COPY triton_models/__init__.py triton_models/common.py triton_models/
COPY RealTime_zeroshot_TTS_ko RealTime_zeroshot_TTS_ko
EXPOSE 8080
CMD ["python", "-m", "orchestrator"]
