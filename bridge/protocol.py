"""OSC argument validation: every client value is checked and converted here, with a reason a musician can read.

Clients are Max, Pd, DAWs and shell tools. Pd sends every number as float32 and Max may send ints where we expect
floats, so numbers are accepted as int or float and integer parameters accept integral floats. Strings are the
only other accepted type (no blobs, booleans, nils, arrays). Failures raise `RequestError(reason)`; the server
turns that into `/msanii/fail <id> <reason>`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

PREFIX = "/msanii/"
MAX_ID_CHARS = 64
MAX_STRING_CHARS = 4096
MAX_SEED = 2**31 - 1


class RequestError(ValueError):
    """A request cannot be served; `str(err)` is the reason sent back to the client."""


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray)):
        return "blob"
    if value is None:
        return "nil"
    return type(value).__name__


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def job_id(value: Any) -> str:
    """Client-chosen job id: a short string, or a number (Pd sends 3 as 3.0; we name it "3")."""
    if is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise RequestError("job id must be a string or a finite number")
        if float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    if not isinstance(value, str):
        raise RequestError(f"job id must be a string or number, got {type_name(value)}")
    if not value or len(value) > MAX_ID_CHARS:
        raise RequestError(f"job id must be 1..{MAX_ID_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise RequestError("job id contains control characters")
    return value


def float32_slack(limit: float) -> float:
    """How far a float32 argument may land from the value the client meant (one float32 ulp at `limit`): Pd and
    most OSC tools send every number as float32, and float32(limit) may lie just above a limit it cannot hold."""
    return abs(limit) * 2.0 ** -23


def limit_text(limit: float) -> str:
    """A limit as the reasons and docs print it: enough digits to tell it from its neighbours (190.1946)."""
    return f"{limit:.4f}".rstrip("0").rstrip(".")


def number(value: Any, name: str, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False) -> float:
    """A finite number within [lo, hi] (or (lo, hi] with `lo_open`). A value within float32 rounding above `hi`
    is `hi` (a client that sends the limit gets the limit, not a refusal)."""
    if not is_number(value):
        raise RequestError(f"{name} must be a number, got {type_name(value)} {short(value)}")
    x = float(value)
    if not math.isfinite(x):
        raise RequestError(f"{name} must be finite, got {x}")
    if lo is not None and (x <= lo if lo_open else x < lo):
        raise RequestError(f"{name} must be {'>' if lo_open else '>='} {limit_text(lo)}, got {x:g}")
    if hi is not None and x > hi:
        if x > hi + float32_slack(hi):
            raise RequestError(f"{name} must be <= {limit_text(hi)}, got {x:g}")
        x = hi
    return x


def integer(value: Any, name: str, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; integral floats (Pd) are accepted."""
    x = number(value, name)
    if not x.is_integer():
        raise RequestError(f"{name} must be a whole number, got {x:g}")
    if not lo <= x <= hi:
        raise RequestError(f"{name} must be in {lo}..{hi}, got {int(x)}")
    return int(x)


def seed(value: Any) -> int | None:
    """A seed 0..2^31-1; a negative number means "random" (None). Pd floats are exact only below 2^24."""
    if is_number(value) and float(value) < 0:
        return None
    return integer(value, "seed", 0, MAX_SEED)


def string(value: Any, name: str, max_chars: int = MAX_STRING_CHARS) -> str:
    if not isinstance(value, str):
        raise RequestError(f"{name} must be a string, got {type_name(value)} {short(value)}")
    if not value:
        raise RequestError(f"{name} is empty")
    if len(value) > max_chars:
        raise RequestError(f"{name} is longer than {max_chars} characters")
    if "\x00" in value:
        raise RequestError(f"{name} contains a NUL character")
    return value


def choice(value: Any, name: str, options: Sequence[str]) -> str:
    text = string(value, name, 64).lower()
    if text not in options:
        raise RequestError(f"{name} must be one of {', '.join(options)}; got {text!r}")
    return text


def count(args: Sequence[Any], lo: int, hi: int, usage: str) -> None:
    """Check the argument count; `usage` is the address with its argument names for the reason."""
    if not lo <= len(args) <= hi:
        want = str(lo) if lo == hi else f"{lo}..{hi}"
        raise RequestError(f"expected {want} arguments ({usage}), got {len(args)}")


def short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail_id(address: str, args: Sequence[Any]) -> str:
    """The id to put in a fail reply: the request's job id when it has a usable one, else the address."""
    if args:
        try:
            return job_id(args[0])
        except RequestError:
            pass
    return address
