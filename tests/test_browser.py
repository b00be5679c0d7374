"""The page at `/` in a real browser: Debian's headless Chromium (driven by Playwright), its microphone a
WAV of real Korean speech. The page captures through an AudioWorklet, talks to /v1/realtime with the
browser's key subprotocol, and plays the reply. Installs Chromium itself when missing (CI too)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from benchmarks.stack import AppServer, make_settings
from tests.realtime_script import speech_24k

CHROMIUM = Path("/usr/lib/chromium/chromium-headless-shell")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
KEY, USER = "browser-key-0123456789abcdef", "browser-user"


def ensure_chromium() -> Path:
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.fail("chromium-headless-shell is missing and cannot be installed here (needs root + apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium-headless-shell",
                        "fonts-nanum"], check=True, env=env)
    return CHROMIUM


@pytest.fixture(scope="module")
def app(triton, tmp_path_factory):
    settings = make_settings(triton, tmp_path_factory.mktemp("browser"), llm_max_tokens=48,
                             api_keys=f"{KEY}:{USER}")
    with AppServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory) -> Path:
    """48 kHz mono PCM16 (what Chromium's fake capture reads): 0.5 s silence, speech, 6 s silence."""
    pcm24 = np.frombuffer(speech_24k(1)[0][0], np.int16).astype(np.float32)
    audio = resample_poly(pcm24, 2, 1)
    audio = np.concatenate([np.zeros(24000), audio, np.zeros(48000 * 6)]).astype(np.int16)
    path = tmp_path_factory.mktemp("mic") / "speech48k.wav"
    sf.write(path, audio, 48000, subtype="PCM_16")
    return path


async def test_page_talks_through_the_microphone_and_plays_the_reply(app, microphone_wav):
    from playwright.async_api import async_playwright

    chromium = ensure_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone_wav}%noloop", "--autoplay-policy=no-user-gesture-required"])
        page = await browser.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        await page.goto(f"{app.http}/?key={KEY}")
        await page.click("#talk")
        await page.wait_for_function("window.voiceState.connected", timeout=15000)
        try:
            # the reply plays: half a second heard, and playback catching up with what arrived (audio
            # can arrive faster than real time, so the played share grows only as it plays)
            await page.wait_for_function(
                "window.voiceState.replies.length >= 1 && window.voiceState.playedSamples > 24000 * 0.5"
                " && window.voiceState.playedSamples >= window.voiceState.scheduledSamples * 0.5",
                timeout=120000)
        finally:
            await page.screenshot(path=str(ARTIFACTS / "browser_page.png"), full_page=True)
        state = await page.evaluate("window.voiceState")
        user_lines = await page.locator("#log .user").all_inner_texts()
        bot_lines = await page.locator("#log .bot").all_inner_texts()
        print(f"\nbrowser heard {user_lines} → {bot_lines}; played {state['playedSamples'] / 24000:.1f} s; "
              f"screenshot {ARTIFACTS / 'browser_page.png'}")
        assert user_lines and user_lines[0].strip() == state["transcripts"][0].strip() != ""
        assert bot_lines and bot_lines[0].strip()
        assert state["playedSamples"] >= state["scheduledSamples"] * 0.5 > 0
        assert not state["errors"], state["errors"]
        await page.click("#talk")  # stop: the socket closes, the mic is released
        await page.wait_for_function("!window.voiceState.connected", timeout=10000)
        await browser.close()
    assert not [c for c in console if c.startswith("error")], console
