"""Build hook: compile the grounding filter with mypyc when this machine can.

The filter is plain, fully typed Python; mypyc turns the same source into C extension modules
(as black and mypy ship), about 1.5x the checks per second with every verdict identical
(`benchmarks/grounding_verdicts.py`). `VQA_GEN_COMPILE` decides:

- unset (or `auto`): a regular wheel (`pip install .`) is compiled when a C compiler and the
  Python headers are found, and is pure Python, with a warning, when they are not or the
  compile fails: an install never fails for want of a compiler (as aiohttp's C speedups);
- `1`: compile or fail (CI, release builds);
- `0`: never compile.

An editable install stays pure Python whatever the setting: extension modules beside the
source would shadow later edits. (Its build environment still gets mypy and the runtime
dependencies, a few seconds from pip's cache: the backend asks for build dependencies before
it knows the install is editable.) The compiler runs on a copy of the package, so the source
tree never gains build artefacts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ENV = "VQA_GEN_COMPILE"
PACKAGE = "vqa_gen"
# Compiled: the grounding filter's pure logic. Left as source: the package's entry module, the
# pydantic settings, the LLM judge (I/O), the lexicon (data, read once at import) and the
# verdict records, whose constructors are tuned to CPython's slot layout.
COMPILED_DIR = "vqa_gen/grounding"
LEFT_AS_SOURCE = frozenset({"vqa_gen/grounding/__init__.py", "vqa_gen/grounding/config.py",
                            "vqa_gen/grounding/judge.py", "vqa_gen/grounding/lexicon.py",
                            "vqa_gen/grounding/verdict.py"})
OUT = Path("build") / "mypyc"  # the built modules, outside the package (they shadow nothing)


def _mode() -> str:
    """`auto`, `on` or `off`, from `VQA_GEN_COMPILE` (unknown values are an error)."""
    raw = os.environ.get(ENV, "").strip().lower()
    if raw in {"", "auto"}:
        return "auto"
    if raw in {"1", "true", "yes", "on"}:
        return "on"
    if raw in {"0", "false", "no", "off"}:
        return "off"
    raise ValueError(f"{ENV}={raw!r}: expected 1, 0 or auto")


def _missing_compiler() -> str | None:
    """Why this interpreter cannot build C extension modules here (None: it can)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    parts = shlex.split(cc)
    exe = parts[0] if parts else "cc"
    if shutil.which(exe) is None:
        return f"no C compiler ({exe!r} not found)"
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not headers.is_file():
        return f"no Python headers ({headers} not found)"
    return None


def missing_toolchain() -> str | None:
    """Why the filter cannot be compiled in this build environment (None: it can)."""
    why = _missing_compiler()
    if why is None and importlib.util.find_spec("mypyc") is None:
        why = "mypyc is not installed in the build environment"
    return why


class CompileGroundingHook(BuildHookInterface):
    """Compiles `COMPILED_DIR` into a regular wheel (see the module docstring for when)."""

    def dependencies(self) -> list[str]:
        mode = _mode()
        if mode == "off" or (mode == "auto" and _missing_compiler()):
            return []
        # mypyc type-checks what it compiles: the runtime dependencies (pydantic's mypy plugin,
        # rapidfuzz's stubs) must be importable in the build environment.
        return ["mypy>=1.10", "setuptools>=65", *self.metadata.core.dependencies]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        mode = _mode()
        if mode == "off" or self.target_name != "wheel":
            return
        if version == "editable":
            if mode == "on":
                self.app.display_warning(f"{ENV}: editable installs stay pure Python (build a "
                                         "wheel or `pip install .` to compile)")
            return
        why = missing_toolchain()
        if why:
            if mode == "on":
                raise RuntimeError(f"{ENV}=1: cannot compile: {why}")
            self.app.display_warning(f"{ENV}: {why}: the grounding filter is installed as "
                                     "pure Python (the same verdicts, about 1.5x slower)")
            return
        root = Path(self.root)
        out = root / OUT
        stamp = _stamp(root)
        if (out / "STAMP").is_file() and (out / "STAMP").read_text() == stamp:
            self.app.display_info(f"{ENV}: reusing {OUT} (compiled from this source)")
        else:  # (pip builds the wheel twice, for its metadata and then for real)
            try:
                self._compile(root, out)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                if mode == "on":
                    raise
                last = str(exc).strip().splitlines()[-1:] or [""]
                self.app.display_warning(f"{ENV}: compiling failed ({last[0]}): the grounding "
                                         "filter is installed as pure Python (set "
                                         f"{ENV}=1 to see the whole error)")
                return
            (out / "STAMP").write_text(stamp)
        built = [p for p in out.rglob("*") if p.suffix in (".so", ".pyd")]
        for p in built:
            build_data["force_include"][str(p)] = p.relative_to(out).as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def _compile(self, root: Path, out: Path) -> None:
        """mypyc on a copy of the package; the extension modules land in `out`."""
        files = _compiled_files(root)
        work = Path(tempfile.mkdtemp(prefix="vqa-gen-mypyc-"))
        try:
            shutil.copytree(root / PACKAGE, work / PACKAGE,
                            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
            shutil.copy2(root / "pyproject.toml", work / "pyproject.toml")  # mypy settings
            self.app.display_info(f"{ENV}: compiling {len(files)} modules with mypyc")
            done = subprocess.run([sys.executable, "-m", "mypyc", *files], cwd=work,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if done.returncode:
                raise RuntimeError(f"{ENV}: mypyc failed:\n{done.stdout[-4000:]}")
            built = [p for p in work.rglob("*") if p.suffix in (".so", ".pyd")
                     and "build" not in p.relative_to(work).parts]
            if not built:
                raise RuntimeError(f"{ENV}: mypyc built no extension modules")
            shutil.rmtree(out, ignore_errors=True)
            for p in built:
                dest = out / p.relative_to(work)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _compiled_files(root: Path) -> list[str]:
    files = sorted(p.relative_to(root).as_posix() for p in (root / COMPILED_DIR).rglob("*.py"))
    return [f for f in files if f not in LEFT_AS_SOURCE]


def _stamp(root: Path) -> str:
    """What the compiled modules depend on: the interpreter, mypy and the package source."""
    import mypy.version

    h = hashlib.sha256(f"{sys.version}|{mypy.version.__version__}".encode())
    for p in sorted((root / PACKAGE).rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    h.update((root / "pyproject.toml").read_bytes())
    return h.hexdigest()
