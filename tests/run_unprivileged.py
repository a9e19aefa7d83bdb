"""Run `msanii-osc` as an unprivileged user from a root test run: `python tests/run_unprivileged.py UID -- ARGS`.

The interpreter lives under /root (mode 700 here), so it cannot be exec'd as another user; instead this starts as
root, imports everything a render needs, drops to UID (groups, gid, uid: no way back) and then runs the server,
which from then on has exactly that user's rights on the file system.
"""
from __future__ import annotations

import os
import sys
from importlib import import_module

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bridge.cli  # noqa: E402
import engine.tasks  # noqa: E402,F401  (the task registry and every task module)

PRELOAD = ("bridge.server", "bridge.paths", "bridge.audition", "bridge.pooled", "bridge.job", "engine.api",
           "engine.audio_io", "engine.backends.onnx", "engine.bundle", "engine.serving", "engine.sampling",
           "engine.masked_sampling", "soundfile", "soxr")


def main() -> int:
    uid = int(sys.argv[1])
    args = sys.argv[sys.argv.index("--") + 1:]
    for name in PRELOAD:
        import_module(name)
    try:  # audition's optional library: probed at start, unreadable for the user once dropped
        import_module("sounddevice")
    except (ImportError, OSError):
        pass
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    assert os.geteuid() == uid and os.getuid() == uid
    return bridge.cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
