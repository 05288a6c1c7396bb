"""tcnn / instant-ngp JSON configs: ``//`` and ``/* */`` comments, and ``"parent"`` resolved as a merge patch.

A child config names its parent file (relative to the child's folder); the child is applied to the parent as an
RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes a key, anything else replaces.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from .errors import ConfigError

# A JSON string (kept as is) or a comment (removed); strings come first so "http://x" survives.
_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)


def strip_comments(text: str) -> str:
    """Remove ``//`` and ``/* */`` comments outside JSON strings (newlines kept, so error lines stay right)."""
    def keep(match: re.Match) -> str:
        token = match.group(0)
        return token if token.startswith('"') else "\n" * token.count("\n")

    return _TOKENS.sub(keep, text)


def merge_patch(target, patch):
    """RFC 7386: ``patch`` applied to ``target``; neither input is modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror or err})") from None
    try:
        data = json.loads(strip_comments(text))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a JSON object")
    return data


def load_config(source: str | Path | dict, _chain: tuple[Path, ...] = ()) -> dict:
    """A config from a file path (comments allowed, parents resolved) or a dict (returned as a resolved copy)."""
    if isinstance(source, dict):
        if "parent" in source:
            raise ConfigError("a config given as a dict cannot name a 'parent' file; load it from its file instead")
        return copy.deepcopy(source)
    path = Path(source).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError(f"{path}: 'parent' configs form a cycle: {cycle}")
    config = _read(path)
    parent = config.pop("parent", None)
    if parent is None:
        return config
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'parent' must be a file name, got {parent!r}")
    parent_path = path.parent / parent
    if not parent_path.is_file():
        raise ConfigError(f"{path}: parent config not found: {parent_path}")
    return merge_patch(load_config(parent_path, (*_chain, path)), config)
