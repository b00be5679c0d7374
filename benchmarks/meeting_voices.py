"""Two more human speakers for the voice benchmark, both with a female pitch (median F0 ~190-220 Hz):
the 30 s English meeting excerpt the pyannote.audio wheel ships as its sample (`pyannote/audio/sample/
sample.wav` + `sample.rttm`; the wheel is MIT-licensed and does not name the recording's origin).

ko_speech_dev has only male speakers; this adds female voices the fit was never developed on. It is
English conversational speech, so similarities are cross-lingual (our voice speaks Korean) and lower
than on read Korean; compare fitted against stock, not against the Korean table. Each speaker's turns
are cut by the RTTM with every stretch another speaker overlaps removed; pieces under 1 s are dropped.

    .venv/bin/python -m benchmarks.meeting_voices DIR      # → DIR/speaker90/*.wav, DIR/speaker91/*.wav
    .venv/bin/python -m benchmarks.voice_clone --speaker f90=DIR/speaker90 --speaker f91=DIR/speaker91
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import soundfile as sf

WHEEL = "pyannote.audio==3.3.2"
MIN_PIECE_S = 1.0


def rttm_turns(text: str) -> list[tuple[str, float, float]]:
    """(speaker, start, end) of each RTTM line."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == "SPEAKER":
            out.append((f[7], float(f[3]), float(f[3]) + float(f[4])))
    return out


def solo_pieces(turns: list[tuple[str, float, float]]) -> dict[str, list[tuple[float, float]]]:
    """Each speaker's time with nobody else speaking, in pieces of at least MIN_PIECE_S."""
    out: dict[str, list[tuple[float, float]]] = {}
    for speaker, start, end in turns:
        pieces = [(start, end)]
        for other, o_start, o_end in turns:
            if other == speaker:
                continue
            pieces = [p for a, b in pieces
                      for p in ((a, min(b, o_start)), (max(a, o_end), b)) if p[1] > p[0]]
        out.setdefault(speaker, []).extend(p for p in pieces if p[1] - p[0] >= MIN_PIECE_S)
    return out


def extract(dest: Path) -> dict[str, Path]:
    """Download the wheel (PyPI), cut the sample, write one folder of clips per speaker."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL], check=True)
        with zipfile.ZipFile(next(Path(tmp).glob("*.whl"))) as wheel:
            rttm = wheel.read("pyannote/audio/sample/sample.rttm").decode()
            wav = Path(tmp) / "sample.wav"
            wav.write_bytes(wheel.read("pyannote/audio/sample/sample.wav"))
        audio, sr = sf.read(wav, dtype="float32")
    folders = {}
    for speaker, pieces in solo_pieces(rttm_turns(rttm)).items():
        folders[speaker] = dest / speaker
        folders[speaker].mkdir(parents=True, exist_ok=True)
        for i, (a, b) in enumerate(sorted(pieces)):
            sf.write(folders[speaker] / f"{i:02d}.wav", audio[int(a * sr):int(b * sr)], sr)
    return folders


if __name__ == "__main__":
    for name, folder in extract(Path(sys.argv[1])).items():
        print(name, folder, [f"{sf.info(p).duration:.2f}" for p in sorted(folder.glob("*.wav"))])
