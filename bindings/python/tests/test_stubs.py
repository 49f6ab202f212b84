"""The type stubs match the module (mypy.stubtest), and every public name
has a docstring."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import sendpromptly


def test_stubtest() -> None:
    package = Path(sendpromptly.__file__).parent
    assert (package / "py.typed").exists()
    assert (package / "_native.pyi").exists()
    run = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "sendpromptly"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for name in sendpromptly.__all__:
        obj = getattr(sendpromptly, name)
        if isinstance(obj, str):
            continue
        if not (inspect.getdoc(obj) or "").strip():
            missing.append(name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if not (getattr(member, "__doc__", None) or "").strip():
                    missing.append(f"{name}.{attr}")
    for module in (sendpromptly.stripe, sendpromptly.shopify):
        for name in module.__all__:
            if not (inspect.getdoc(getattr(module, name)) or "").strip():
                missing.append(f"{module.__name__}.{name}")
    assert missing == []
