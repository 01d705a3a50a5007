"""Every error vqa-gen raises on purpose, under one root: `VqaGenError`.

Catch `VqaGenError` to handle any expected failure (the CLI does, once, and prints one line);
anything else that escapes is a bug. The categories say whose move it is:

    VqaGenError
    ├── InputError          the caption file, a record or a flag cannot be used
    ├── TemplateError       a prompt template cannot be found, parsed or rendered
    ├── EndpointError       the endpoint (or the embedded model) cannot serve the calls
    ├── ReplyError          the model replied, but not in a usable form
    ├── RunFolderError      an output folder cannot be used (or resumed, refiltered, compared)
    └── FilterConfigError   the grounding filter settings are not valid

Modules keep their own, more specific classes (`llm.LLMError`, `answers.AnswerFormatError`,
`runner.RunError`, `runner.EndpointDownError`, `refilter.RefilterError`,
`embedded.EmbeddedModelError`), each a subclass of one category. This module imports nothing
from the package, so any module may use it.
"""

from __future__ import annotations


class VqaGenError(Exception):
    """Root of the errors vqa-gen raises on purpose. `summary` is the category's one-line
    description for users; the instance's message says what exactly went wrong."""

    summary = "vqa-gen cannot go on"
    exit_code = 2
    """The CLI's exit code for this error (2: fix the command or its inputs and rerun)."""

    def user_message(self) -> str:
        """One line for a terminal: the message's first line, or the summary if it has none."""
        lines = str(self).strip().splitlines()
        return lines[0].strip() if lines and lines[0].strip() else self.summary


class InputError(VqaGenError, ValueError):
    summary = "the input cannot be used: check the file and the --*-field flags"


class TemplateError(VqaGenError, ValueError):
    summary = "the prompt template cannot be used: `vqa-gen lint TEMPLATE` says why"


class EndpointError(VqaGenError):
    summary = "the endpoint cannot serve the calls: check --base-url, --model and the API key"


class ReplyError(VqaGenError, ValueError):
    summary = "the model's reply is not in a usable form"


class RunFolderError(VqaGenError):
    summary = "the output folder cannot be used: choose another --out or pass --overwrite"


class FilterConfigError(VqaGenError, ValueError):
    summary = "the grounding filter settings are not valid: see --strictness and --filter-config"


__all__ = ["EndpointError", "FilterConfigError", "InputError", "ReplyError", "RunFolderError",
           "TemplateError", "VqaGenError"]
