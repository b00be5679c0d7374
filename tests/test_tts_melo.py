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


BERT_TEXTS = ["안녕하세요, 반갑습니다.", "학교에서 밥을 먹었습니다.", "오늘 날씨가 좋네요."]


def write_korean_bert(folder) -> None:
    """A small random BertForMaskedLM in Hugging Face format, 768 wide like kykim/bert-kor-base, with a
    WordPiece vocabulary of the test sentences' syllables (do_lower_case off, as kykim's: lowercasing
    would NFD-split Hangul)."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from RealTime_zeroshot_TTS_ko.text.normalize import normalize

    chars = sorted({c for t in BERT_TEXTS for c in normalize(t) if not c.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars]
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=False, strip_accents=False).save_pretrained(folder)
    config = BertConfig(vocab_size=len(vocab), hidden_size=768, num_hidden_layers=3, num_attention_heads=12,
                        intermediate_size=256, max_position_embeddings=128)
    BertForMaskedLM(config).save_pretrained(folder)


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
    write_korean_bert(root / "bert")
    return root


def test_melo_forward_pass_gives_audio_at_declared_rate(checkpoints):
    engine = load_engine("melo", checkpoints)
    assert engine.sample_rate == 44100
    seq = engine.symbols("학교에서 밥을 먹었습니다.")
    assert len(seq.ids) == len(seq.tones) == len(seq.langs) == sum(seq.word2ph)
    assert seq.ids[0] == 0 and seq.ids[1] == 0 and seq.ids[3] != 0  # blank, "_" start, blank, first jamo
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
                      openvoice_dir=str(checkpoints / "openvoice"), bert_dir=str(checkpoints / "bert"))
    config = (tmp_path / "tts" / "config.pbtxt").read_text()
    assert 'string_value: "melo"' in config and (vdir / "melo" / "checkpoint.pth").exists()
    assert (vdir / "bert" / "config.json").exists()
    from triton_models.tts import TtsService

    service = TtsService("melo", vdir, None)  # what the Triton model builds from that folder
    chunks = list(service.chunks("안녕하세요.", {"sample_rate": 16000}))
    assert chunks and chunks[0][1]["sample_rate"] == 16000 and chunks[0][0].dtype == np.int16


@pytest.mark.parametrize("n_phone,n_piece", [(0, 1), (1, 3), (5, 2), (7, 3), (9, 4), (12, 1)])
def test_phones_are_shared_over_word_pieces_as_melo_does(n_phone, n_piece):
    from RealTime_zeroshot_TTS_ko.engines.melo_text import distribute_phone

    melo = [0] * n_piece  # MeloTTS text/korean.py distribute_phone, verbatim logic
    for _ in range(n_phone):
        melo[melo.index(min(melo))] += 1
    assert distribute_phone(n_phone, n_piece) == melo


def test_korean_bert_features_reach_the_synthesizer(checkpoints):
    engine = load_engine("melo", checkpoints)  # finds <weights>/bert like the Triton model does
    assert engine.bert is not None
    for text in BERT_TEXTS:
        seq = engine.symbols(text)
        pieces = engine.bert.tokenize(seq.norm)
        assert len(seq.word2ph) == len(pieces) + 2  # [CLS] + pieces + [SEP]
        feats = engine.bert.features(seq.norm, seq.word2ph)
        assert tuple(feats.shape) == (768, len(seq.ids))
        # a phone's feature is its own word piece's hidden state: the first real jamo follows [CLS]'s 3
        assert not torch.equal(feats[:, 0], feats[:, 3])
    torch.manual_seed(3)
    with_bert = engine.synthesize(BERT_TEXTS[2])
    bert, engine.bert = engine.bert, None
    torch.manual_seed(3)
    zeros = engine.synthesize(BERT_TEXTS[2])
    engine.bert = bert
    assert len(with_bert) and len(zeros)
    n = min(len(with_bert), len(zeros))
    assert len(with_bert) != len(zeros) or not np.allclose(with_bert[:n], zeros[:n], atol=1e-4)


def test_a_bert_of_the_wrong_width_is_refused(tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    from RealTime_zeroshot_TTS_ko.engines.melo_text import KoreanBert

    write_korean_bert(tmp_path / "ok")
    narrow = tmp_path / "narrow"
    narrow.mkdir()
    for f in (tmp_path / "ok").iterdir():
        if "token" in f.name or f.name.startswith("vocab") or f.name.startswith("special"):
            (narrow / f.name).write_bytes(f.read_bytes())
    BertForMaskedLM(BertConfig(vocab_size=200, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(narrow)
    with pytest.raises(ValueError, match="768"):
        KoreanBert(narrow)
