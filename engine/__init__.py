"""msanii-daw engine: loads a bundle and renders audio. Never imports training code."""
import os as _os

# OpenMP threads that spin while waiting for work steal the cores they wait for when the machine is shared
# (a DAW, other renders): fast Griffin-Lim on a 10 s clip measured 0.95 s/iteration spinning vs 0.11 s passive
# at load 10 on 2 cores, with no loss on big ops when idle. Only takes effect if torch is not loaded yet and the
# user has not chosen a policy.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
