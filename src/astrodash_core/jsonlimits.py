"""JSON read from untrusted places (HTTP form fields and bodies, model-file metadata) with bounds on its size
and nesting depth, so a hostile document is a clear ``ValueError`` instead of a ``RecursionError`` or a
memory blow-up wherever the value is used later."""
from __future__ import annotations

import json

#: Deepest nesting of arrays/objects accepted (the deepest legitimate document, a model's metadata, uses 5).
MAX_DEPTH = 32
#: Largest document accepted by default (bytes of UTF-8).
MAX_BYTES = 64 * 1024


class JSONLimitError(ValueError):
    """The text is not JSON, or is larger or deeper than allowed; the message says which."""


def depth(value) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` and ``{}`` are 1); iterative, so any
    depth is measured without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list):
            continue
        d += 1
        deepest = max(deepest, d)
        stack.extend((item, d) for item in v)
    return deepest


def loads(text: str | bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
          allow_nonfinite: bool = False):
    """``json.loads`` of ``text`` after checking its size, then its depth.  Non-finite numbers (``NaN``,
    ``Infinity``) are refused as they are not JSON, unless ``allow_nonfinite`` (Python's ``json.dumps`` writes
    them, e.g. in a model's training provenance)."""
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > max_bytes:
        raise JSONLimitError(f"JSON document of {size} bytes; at most {max_bytes} are accepted")
    try:
        value = json.loads(text) if allow_nonfinite else json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise JSONLimitError(f"JSON nested deeper than {max_depth} levels") from None
    except (ValueError, TypeError) as exc:
        raise JSONLimitError(f"not valid JSON ({exc})") from None
    if depth(value) > max_depth:
        raise JSONLimitError(f"JSON nested deeper than {max_depth} levels")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")
