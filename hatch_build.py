"""Build hook: with `VQA_GEN_COMPILE=1`, compile the grounding filter with mypyc.

The filter is plain, fully typed Python; mypyc turns the same source into C extension modules
(as black and mypy ship), about 1.5x the checks per second with every verdict identical
(`benchmarks/grounding_verdicts.py`). Off by default: an ordinary or editable install runs the
source as it is and needs no compiler. Only a regular wheel build compiles (an editable install
would put extension modules beside the source, where they would shadow later edits). The
compiler runs on a copy of the package, so the source tree never gains build artefacts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
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


def _wanted() -> bool:
    return os.environ.get(ENV, "").strip().lower() in {"1", "true", "yes", "on"}


class CompileGroundingHook(BuildHookInterface):
    """Compiles `COMPILED_DIR` into the wheel when `VQA_GEN_COMPILE` is set."""

    def dependencies(self) -> list[str]:
        if not _wanted():
            return []
        # mypyc type-checks what it compiles: the runtime dependencies (pydantic's mypy plugin,
        # rapidfuzz's stubs) must be importable in the build environment.
        return ["mypy>=1.10", "setuptools>=65", *self.metadata.core.dependencies]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not _wanted() or self.target_name != "wheel":
            return
        if version == "editable":
            self.app.display_warning(f"{ENV}: editable installs stay pure Python (build a "
                                     "wheel or `pip install .` to compile)")
            return
        root = Path(self.root)
        out = root / OUT
        stamp = _stamp(root)
        if (out / "STAMP").is_file() and (out / "STAMP").read_text() == stamp:
            self.app.display_info(f"{ENV}: reusing {OUT} (compiled from this source)")
        else:  # (pip builds the wheel twice, for its metadata and then for real)
            self._compile(root, out)
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
