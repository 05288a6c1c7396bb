"""tcnn / instant-ngp JSON configs: ``//`` and ``/* */`` comments, and ``"parent"`` resolved as a merge patch.

A child config names its parent file with a top-level ``"parent"`` key (a path relative to the child's folder); the
child is applied to the fully resolved parent as an RFC 7386 JSON merge patch: objects merge recursively, ``null``
deletes a key, anything else (numbers, strings, arrays) replaces. The ``parent`` key itself is not in the result.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError

# A JSON string (kept as is), a comment (blanked), or an unterminated block comment (an error). Strings are matched
# first, so "http://x" and "a /* b */ c" inside strings survive.
_TOKENS = re.compile(r'"(?:\\.|[^"\\\n])*"|//[^\n]*|/\*.*?\*/|/\*', re.DOTALL)


def strip_comments(text: str, name: str = "<config>") -> str:
    """``text`` with ``//`` and ``/* */`` comments outside JSON strings replaced by spaces.

    Newlines and the length of every line are kept, so JSON error positions (line, column) still point at the
    original text. ``name`` only labels the error raised for an unterminated ``/*``.
    """
    def blank(match: re.Match) -> str:
        token = match.group(0)
        if token.startswith('"'):
            return token
        if token == "/*":
            line = text.count("\n", 0, match.start()) + 1
            column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
            raise ConfigError(f"{name}: unterminated /* comment starting at line {line}, column {column}")
        return re.sub(r"[^\n]", " ", token)

    return _TOKENS.sub(blank, text)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: ``patch`` applied to ``target``. Neither input is modified; the result shares
    no mutable objects with them."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def parse_config_text(text: str, name: str = "<config>") -> dict:
    """Parse JSON text with comments into a dict (no ``parent`` resolution). Errors name ``name`` and the
    line and column."""
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        data = json.loads(strip_comments(text, name))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{name}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise ConfigError(f"{name}: malformed JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: a config must be a JSON object {{...}}, got {type(data).__name__}")
    return data


def _read(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config ({getattr(err, 'strerror', None) or err})") from None
    return parse_config_text(text, str(path))


def _resolve(config: dict, name: str, folder: Path, chain: tuple[Path, ...]) -> dict:
    """Resolve ``config``'s ``parent`` (relative to ``folder``); ``chain`` holds the files already being loaded."""
    if "parent" not in config:
        return config
    config = dict(config)
    parent = config.pop("parent")
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"{name}: 'parent' must be a file name (a string), got {parent!r}")
    parent_path = (folder / parent).resolve()
    if parent_path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, parent_path))
        raise ConfigError(f"{name}: 'parent' configs form a cycle: {cycle}")
    if not parent_path.is_file():
        raise ConfigError(f"{name}: parent config {parent!r} not found (looked for {parent_path})")
    base = _resolve(_read(parent_path), str(parent_path), parent_path.parent, (*chain, parent_path))
    return merge_patch(base, config)


def load_config(source: str | os.PathLike | dict, *, base_dir: str | os.PathLike | None = None) -> dict:
    """A resolved config from a JSON file (comments allowed) or from a dict.

    ``parent`` is resolved recursively, relative to the folder of the file that names it. For a dict, a ``parent``
    is resolved relative to ``base_dir`` (default: the current directory). The result is a new dict; a dict given
    as ``source`` is not modified. Every user mistake (missing file, malformed JSON, missing parent, a cycle of
    parents) raises :class:`ConfigError` naming the file.
    """
    if isinstance(source, dict):
        folder = Path(base_dir) if base_dir is not None else Path.cwd()
        return copy.deepcopy(_resolve(source, "<config dict>", folder, ()))
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"a config must be a file path or a dict, got {type(source).__name__}")
    path = Path(source).expanduser().resolve()
    return _resolve(_read(path), str(path), path.parent, (path,))
