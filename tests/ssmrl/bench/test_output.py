"""Benchmark JSON carries its provenance and is printed and saved identically."""
from __future__ import annotations

import json
from importlib import metadata

import pytest
import torch

from ssmrl.bench.output import emit


def test_emit_prints_and_writes_the_same_json_with_provenance(tmp_path, capsys):
    out = tmp_path / "sub" / "result.json"
    text = emit({"speedup": 4.25, "rows": [1, 2]}, out, indent=None)
    printed = capsys.readouterr().out
    assert printed == text + "\n" and out.read_text() == text + "\n"
    data = json.loads(text)
    assert data["speedup"] == 4.25 and data["rows"] == [1, 2]
    prov = data["provenance"]
    assert prov["packages"]["torch"] == metadata.version("torch")
    assert prov["machine"]["torch_threads"] == torch.get_num_threads()
    assert isinstance(prov["argv"], list) and prov["time_utc"].endswith("Z")


def test_emit_keeps_a_given_provenance_and_rejects_non_objects(capsys):
    data = json.loads(emit({"x": 1, "provenance": {"argv": ["given"]}}))
    assert data["provenance"] == {"argv": ["given"]}
    with pytest.raises(TypeError, match="must be a dict"):
        emit([1, 2])
