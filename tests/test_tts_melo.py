"""The seed's MeloTTS-KR + OpenVoice v2 path, loaded through our loaders from checkpoints written
here in exactly the real formats (config.json + checkpoint.pth {"model": state_dict}, each), with
small random weights: a real forward pass, audio at the declared rate, and a tone-colour conversion."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from RealTime_zeroshot_TTS_ko import load_engine
from RealTime_zeroshot_TTS_ko.engines.melo import model_module

RESBLOCK = {"resblock": "1", "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5]] * 3}


def melo_config() -> dict:
    symbols = model_module("meloplus", "text.symbols")
    return {
        "train": {"segment_size": 16384},
        "data": {"sampling_rate": 44100, "filter_length": 2048, "hop_length": 512, "win_length": 2048,
                 "n_speakers": 1, "spk2id": {"KR": 0}, "add_blank": True, "disable_bert": True},
        "model": {"use_spk_conditioned_encoder": True, "use_noise_scaled_mas": True, "use_mel_posterior_encoder": False,
                  "use_duration_discriminator": False, "inter_channels": 16, "hidden_channels": 16,
                  "filter_channels": 32, "n_heads": 2, "n_layers": 3, "n_layers_trans_flow": 3, "kernel_size": 3,
                  "p_dropout": 0.1, **RESBLOCK, "upsample_rates": [8, 8, 2, 2, 2], "upsample_initial_channel": 32,
                  "upsample_kernel_sizes": [16, 16, 8, 2, 2], "gin_channels": 16},
        "num_languages": symbols.num_languages, "num_tones": symbols.num_tones, "symbols": symbols.symbols,
    }


def converter_config() -> dict:
    return {
        "_version_": "v2",
        "data": {"sampling_rate": 22050, "filter_length": 1024, "hop_length": 256, "win_length": 1024, "n_speakers": 0},
        "model": {"zero_g": True, "inter_channels": 16, "hidden_channels": 16, "filter_channels": 32, "n_heads": 2,
                  "n_layers": 2, "kernel_size": 3, "p_dropout": 0.1, **RESBLOCK, "upsample_rates": [8, 8, 2, 2],
                  "upsample_initial_channel": 32, "upsample_kernel_sizes": [16, 16, 4, 4], "gin_channels": 256},
    }


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("melo-openvoice")
    melo_models, ov_models = model_module("meloplus", "models"), model_module("openvoice_cli", "models")
    mc, cc = melo_config(), converter_config()
    melo = melo_models.SynthesizerTrn(len(mc["symbols"]), mc["data"]["filter_length"] // 2 + 1,
                                      mc["train"]["segment_size"] // mc["data"]["hop_length"], n_speakers=1,
                                      num_tones=mc["num_tones"], num_languages=mc["num_languages"], **mc["model"])
    conv = ov_models.SynthesizerTrn(0, cc["data"]["filter_length"] // 2 + 1, n_speakers=0, **cc["model"])
    for name, net, cfg in (("melo", melo, mc), ("openvoice", conv, cc)):
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps(cfg, ensure_ascii=False))
        torch.save({"model": net.state_dict(), "iteration": 0}, root / name / "checkpoint.pth")
    return root


def test_melo_forward_pass_gives_audio_at_declared_rate(checkpoints):
    engine = load_engine("melo", checkpoints)
    assert engine.sample_rate == 44100
    ids, tones, langs = engine.symbols("학교에서 밥을 먹었습니다.")
    assert len(ids) == len(tones) == len(langs) and ids[0] == 0 and ids[1] != 0  # blanks interleaved
    chunks = list(engine.stream("안녕하세요, 반갑습니다."))
    audio = chunks[-1].audio
    assert chunks[-1].last and audio.dtype == np.float32 and len(audio) > 0
    assert len(audio) % 512 == 0  # whole hops of the declared 44.1 kHz decoder
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0


def test_openvoice_converts_to_an_enrolled_tone_colour(checkpoints):
    engine = load_engine("melo", checkpoints)
    reference = np.random.default_rng(1).normal(0, 0.1, 16000 * 4).astype(np.float32)
    info = engine.enroll("ref_user", reference, 16000)
    assert info["voice"] == "ref_user"
    assert tuple(engine.voices.get("ref_user").shape) == (1, 256, 1)
    plain = engine.synthesize("오늘 날씨가 좋네요.")
    converted = engine.synthesize("오늘 날씨가 좋네요.", "ref_user")
    assert len(converted) > 0 and np.isfinite(converted).all()
    assert abs(len(converted) - len(plain)) <= 0.05 * len(plain) + 1024  # same speech, another colour
    with pytest.raises(KeyError):
        engine.voices.get("nobody")


def test_melo_export_writes_a_tts_version(checkpoints, tmp_path):
    from export.models import export_tts

    vdir = export_tts(tmp_path, engine="melo", melo_dir=str(checkpoints / "melo"),
                      openvoice_dir=str(checkpoints / "openvoice"))
    config = (tmp_path / "tts" / "config.pbtxt").read_text()
    assert 'string_value: "melo"' in config and (vdir / "melo" / "checkpoint.pth").exists()
    from triton_models.tts import TtsService

    service = TtsService("melo", vdir, None)  # what the Triton model builds from that folder
    chunks = list(service.chunks("안녕하세요.", {"sample_rate": 16000}))
    assert chunks and chunks[0][1]["sample_rate"] == 16000 and chunks[0][0].dtype == np.int16
