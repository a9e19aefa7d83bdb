"""msanii-daw engine: loads a bundle and renders audio. Never imports training code.

Layers (docs/architecture.md): `api.Engine` holds the resources and building blocks; the render core
(`render`, `samplers`, `sampling`, `masked_sampling`, `editing`) and `dsp/` do the work; `audio_io` reads and
writes every file; `limits`, `finite`, `regions` are the rules; `tasks/` is the registry of everything a user can
ask for (`api.render(engine, task, **params)`); `cli/` is `msanii-render`; `serving/` runs jobs for the bridge.
"""
import os as _os

# OpenMP threads that spin while waiting for work steal the cores they wait for when the machine is shared
# (a DAW, other renders): Griffin-Lim ran ~9x slower spinning under load, with no loss on big ops when idle
# (bench/RESULTS.md, "Figures behind code choices"). Only takes effect if torch is not loaded yet and the user has
# not chosen a policy.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
