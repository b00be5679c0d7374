# The NVIDIA Triton GPU container (2.51 = 24.10): native onnxruntime backend for the ONNX models
# (vad), Python backend for stt/llm/tts/embedder with our code on VOICE_PYTHONPATH=/app.
FROM nvcr.io/nvidia/tritonserver:24.10-py3
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng curl && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir torch==2.5.1 \
 && CMAKE_ARGS="-DGGML_CUDA=on" pip install --no-cache-dir llama-cpp-python==0.3.36 \
 && grep -vE '^(nvidia-pytriton|onnxruntime|llama-cpp-python|pytest|matplotlib|openai|playwright)' /tmp/requirements.txt > /tmp/req-gpu.txt \
 && pip install --no-cache-dir -r /tmp/req-gpu.txt "onnxruntime-gpu[cuda,cudnn]==1.31.1"
# onnxruntime-gpu 1.31 is built for CUDA 13 (this image has 12.6, which ctranslate2 needs): its
# extras bring the CUDA 13 runtime and cuDNN wheels, which KokoroEngine preloads (a host driver >= 580)
COPY triton_models /app/triton_models
COPY RealTime_zeroshot_TTS_ko /app/RealTime_zeroshot_TTS_ko
