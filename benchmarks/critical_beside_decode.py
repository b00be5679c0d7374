"""A turn's final transcript beside another conversation's TTS decode, through the real Triton.

Two conversations on two cores: one reply is mid-way (a long later phrase decoding in the `tts` model)
when the other user stops speaking and the final transcript starts in the `stt` model. Measured per
human clip of ../shared/ko_speech_dev (Whisper, greedy, as the turn calls it), interleaved:

  alone        the final transcript with nothing else running
  decode runs on   beside the decode, which runs to its end (the tts model's `stop_for_critical` = 0)
  decode stops     beside the decode, which stops for it and starts over after it (the default)

for a decode that is critical for its listener's lead and for a background one (audio buffered).

    .venv/bin/python -m benchmarks.critical_beside_decode [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
from tqdm import tqdm

from benchmarks.common import RESULTS, bar_plot, percentiles, triton, write
from benchmarks.corpus import human_clips, to_pcm16, trim_to_speech
from benchmarks.voice_latency import model_parameter

LONG = "네, 알겠습니다. 오늘 회의에서는 다음 분기의 예산과 일정, 그리고 새로운 프로젝트의 방향에 대해 아주 자세히 논의했습니다."
DECODES = {"lead": {"lead_s": 0.0, "lead_min_s": 30.0}, "background": {}}


async def final_beside(gateway, pcm: np.ndarray, decode: dict | None) -> float:
    """Seconds the final transcript of `pcm` takes, asked 0.1 s into the decode of LONG's second
    sentence when `decode` (the tts options) is given."""
    speaking = None
    if decode is not None:
        first_arrived = asyncio.Event()

        async def reply():
            async for item in gateway.tts_stream("tts", LONG, decode):
                if not item.final and not item.info.get("heartbeat"):
                    first_arrived.set()

        speaking = asyncio.create_task(reply())
        await asyncio.wait_for(first_arrived.wait(), 60)
        await asyncio.sleep(0.1)
    t0 = time.perf_counter()
    await gateway.transcribe("stt", pcm, vad=False, order=time.time())
    seconds = time.perf_counter() - t0
    if speaking is not None:
        await asyncio.wait_for(speaking, 120)
    return seconds


async def measure(server, clips: list[np.ndarray], rounds: int) -> dict[str, list[float]]:
    from orchestrator.triton_client import TritonGateway

    gateway = TritonGateway(server.grpc_url)
    out: dict[str, list[float]] = {}
    try:
        for pcm in clips[:1]:  # both paths once, whole
            await final_beside(gateway, pcm, DECODES["lead"])
        for stop in ("1", "0"):
            await asyncio.to_thread(model_parameter, server, "tts", "stop_for_critical", stop)
            label = "decode stops" if stop == "1" else "decode runs on"
            for _ in range(rounds):
                for pcm in tqdm(clips, desc=label):
                    out.setdefault("alone", []).append(await final_beside(gateway, pcm, None))
                    for kind, options in DECODES.items():
                        out.setdefault(f"{label}, {kind}", []).append(await final_beside(gateway, pcm, options))
    finally:
        await asyncio.to_thread(model_parameter, server, "tts", "stop_for_critical", "1")
        await gateway.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    clips = [to_pcm16(trim_to_speech(audio)) for audio, _text, _name in human_clips()]
    with triton(["stt", "tts"], port=18700) as server:
        seconds = asyncio.run(measure(server, clips, args.rounds))
    summary = {label: percentiles([s * 1000 for s in values]) | {"n": len(values)} for label, values in seconds.items()}
    plot = bar_plot(RESULTS / "critical_beside_decode.png", "final transcript beside a TTS decode (ms)",
                    {p: {label: s[p] for label, s in summary.items()} for p in ("p50", "mean")}, "ms")
    write("critical_beside_decode", {"material": "ko_speech_dev, trailing silence cut; decode: " + LONG,
                                     "summary": summary, "plot": str(plot)})


if __name__ == "__main__":
    main()
