"""What a version folder pins (engine, weights) and what a load's config override may change (how the
model is served: threads, contexts, scheduling rules). Written with the real export code."""
from __future__ import annotations

import json

import pytest

from export.models import EMBEDDER, STT, TTS, VAD, llm_spec
from export.repository import write_model
from triton_models.common import VERSION_KEYS, model_params

SPECS = [STT, VAD, TTS, EMBEDDER, llm_spec("llama_cpp", "model.gguf", variant="model")]


def load_args(repo, spec, override: dict[str, str]) -> dict:
    """The args Triton gives a model's initialize when it is loaded with a config override."""
    params = {**spec.params, **override}
    return {"model_config": json.dumps({"parameters": {k: {"string_value": v} for k, v in params.items()}}),
            "model_repository": str(repo / spec.name), "model_version": "1"}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_a_load_override_changes_every_serving_parameter(tmp_path, spec):
    write_model(tmp_path, spec, {})
    serving = [k for k in spec.params if k not in VERSION_KEYS]
    assert serving, "every model has a parameter of how it is served"
    for key in serving:
        assert model_params(load_args(tmp_path, spec, {key: "changed"}))[key] == "changed", key


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_a_version_keeps_its_engine_and_weights_when_the_config_changes(tmp_path, spec):
    write_model(tmp_path, spec, {})
    pinned = [k for k in spec.params if k in VERSION_KEYS]
    params = model_params(load_args(tmp_path, spec, {k: "another" for k in pinned}))
    assert {k: params[k] for k in pinned} == {k: spec.params[k] for k in pinned}
