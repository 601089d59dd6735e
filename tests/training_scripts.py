"""Import a script of ``training/`` (not a package) as a module, for tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TRAINING = Path(__file__).resolve().parent.parent / "training"


def load_script(name: str) -> ModuleType:
    """``training/<name>.py`` as module ``name``; its sibling scripts importable too."""
    if str(TRAINING) not in sys.path:
        sys.path.insert(0, str(TRAINING))
    spec = importlib.util.spec_from_file_location(name, TRAINING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod
