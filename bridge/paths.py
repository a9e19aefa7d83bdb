"""Where the server may read and write: the only place that turns client strings into filesystem paths.

Inputs: a client path must be absolute and, after resolving every symlink and `..`, name a readable regular file
inside one of the allowed input roots (the output root is always one, so a finished clip can be fed back in). The
resolved real path is what the engine opens, so swapping a symlink after the check changes nothing. Whether a path
is inside is decided first, from the path alone (`..` read lexically, then symlinks resolved without requiring
the file to exist), so every path outside gets the same reply whether or not it exists: no client can probe
which files exist elsewhere.
Outputs: names are made by the server (`<sanitised id>-<UTC timestamp>.<ext>`) inside the output root (optionally
a subfolder chosen with `/msanii/set output_dir`, itself confined to the root); an existing name gets a `-2`, `-3`
... suffix and the engine's writer refuses to overwrite, so a finished clip is never replaced.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Iterable

from bridge.protocol import RequestError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STEM_CHARS = 48


def sanitise_stem(text: str) -> str:
    """A filename stem from a client string: ASCII letters, digits, `._-` only, no leading dots, bounded length."""
    stem = _UNSAFE.sub("_", text).strip("._-")[:MAX_STEM_CHARS].strip("._-")
    return stem or "clip"


def _is_inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class PathPolicy:
    """Resolve client input paths inside `input_roots` and make output paths inside `output_root`."""

    def __init__(self, output_root: Path, input_roots: Iterable[Path] = ()) -> None:
        output_root = Path(output_root).expanduser()
        try:
            output_root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create the output folder {output_root}: {exc.strerror or exc}") from None
        self.output_root = output_root.resolve(strict=True)
        roots = [self.output_root]
        for root in input_roots:
            if not Path(root).expanduser().is_dir():
                raise NotADirectoryError(f"allowed input folder {root} does not exist or is not a folder")
            resolved = Path(root).expanduser().resolve(strict=True)
            if resolved not in roots:
                roots.append(resolved)
        self.input_roots = tuple(roots)
        # the roots as given too (normalised, not resolved): a lexical client path under a symlinked root is inside
        given = [Path(os.path.normpath(Path(r).expanduser().absolute())) for r in [output_root, *input_roots]]
        self._lexical_roots = tuple(dict.fromkeys([*roots, *given]))
        self.output_dir = self.output_root

    def resolve_input(self, client_path: str) -> Path:
        """The real path of a readable file inside an allowed root, or `RequestError` saying why not."""
        if not os.path.isabs(client_path):
            raise RequestError(f"input path must be absolute: {client_path!r}")
        outside = RequestError(f"path outside the allowed input folders: {client_path}")
        # `..` is read lexically, before the file system is asked anything: "/elsewhere/x/../../in/a.wav" is
        # "/in/a.wav" whatever "/elsewhere/x" is, so its existence or kind cannot change the reply
        lexical = Path(os.path.normpath(client_path))
        if not any(_is_inside(lexical, root) for root in self._lexical_roots):
            raise outside
        real = Path(os.path.realpath(lexical))  # symlinks inside the roots, followed without strictness
        if not any(_is_inside(real, root) for root in self.input_roots):
            raise outside
        if not os.path.lexists(real):
            raise RequestError(f"no such file: {client_path}")
        try:
            real = real.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # symlink loops, name too long, permission on a parent
            raise RequestError(f"cannot resolve {client_path}: {exc.__class__.__name__}") from None
        if not real.is_file():
            raise RequestError(f"not a regular file: {client_path}")
        if not os.access(real, os.R_OK):
            raise RequestError(f"file is not readable: {client_path}")
        return real

    def set_output_subdir(self, name: str) -> Path:
        """Point new outputs at a folder inside the output root (created if missing). "" or "." is the root."""
        if name in ("", "."):
            self.output_dir = self.output_root
            return self.output_dir
        if any(ord(c) < 32 or ord(c) == 127 for c in name):  # a folder a DAW's file browser could not show
            raise RequestError("output_dir contains control characters")
        if os.path.isabs(name):
            candidate = Path(name)
        else:
            candidate = self.output_root / name
        parts = Path(os.path.normpath(candidate))
        if not _is_inside(parts, self.output_root):
            raise RequestError(f"output_dir must be inside the output root {self.output_root}")
        parts.mkdir(parents=True, exist_ok=True)
        real = parts.resolve(strict=True)
        if not _is_inside(real, self.output_root):  # a symlink inside the root pointing out of it
            raise RequestError(f"output_dir must be inside the output root {self.output_root}")
        self.output_dir = real
        return real

    def output_path(self, job_id: str, extension: str, directory: Path | None = None,
                    now: float | None = None) -> Path:
        """A fresh, not yet existing path `<dir>/<stem>-<YYYYmmdd-HHMMSS>[-n].<ext>` (dir: the current output
        folder unless a snapshot taken at submit time is given)."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
        base = f"{sanitise_stem(job_id)}-{stamp}"
        directory = self.output_dir if directory is None else directory
        directory.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            name = f"{base}.{extension}" if n == 1 else f"{base}-{n}.{extension}"
            path = directory / name
            if not os.path.lexists(path):
                return path
        raise RequestError(f"too many outputs named {base}* in {directory}")
