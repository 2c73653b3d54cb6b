"""The package surface: light import, lazy re-exports, and the humanoid makers."""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys

import pytest
import torch

import reference
from reference import dmc

os.environ.setdefault("MUJOCO_GL", "egl")
HAS_DMC = importlib.util.find_spec("dm_control") is not None


def test_import_is_light() -> None:
    """Importing reference, its errors, worker (core and fast) and dmc modules does not import
    torch."""
    code = ("import sys, reference, reference.errors, reference._worker, reference._fast_worker, "
            "reference.dmc; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'torchrl' not in sys.modules, 'torchrl imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_lazy_exports() -> None:
    """Every name in reference.__all__ resolves lazily; unknown names raise AttributeError."""
    for name in reference.__all__:
        assert getattr(reference, name) is not None
    assert reference.WorkerError.__module__ == "reference.errors"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = reference.nope


def test_missing_dm_control(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without dm_control a maker raises ImportError naming the dmcontrol extra."""
    monkeypatch.setitem(sys.modules, "dm_control", None)
    with pytest.raises(ImportError, match=r"pip install multitask-conformance\[dmcontrol\]"):
        dmc.stand_maker()
    with pytest.raises(ValueError, match="must be one of"):
        dmc.humanoid_maker("run")


@pytest.mark.skipif(not HAS_DMC, reason="dm_control is not installed (the dmcontrol extra)")
def test_humanoid_makers() -> None:
    """stand/walk: 67-dim float32 observation and observation_<task>, 21-dim float32 action."""
    for task, maker in (("stand", dmc.stand_maker), ("walk", pickle.loads(
            pickle.dumps(dmc.humanoid_maker("walk"))))):
        env = maker()
        td = env.reset()
        assert set(td.keys()) == {"observation", f"observation_{task}", "done", "terminated",
                                  "truncated"}
        for key in ("observation", f"observation_{task}"):
            assert td[key].shape == (67,) and td[key].dtype == torch.float32
        assert env.action_spec.shape == (21,) and env.action_spec.dtype == torch.float32
        out = env.step(env.rand_action(td))["next"]
        assert out["observation"].dtype == torch.float32 and out["reward"].shape == (1,)
        env.close()
