"""msanii-daw bridge: serves the engine over OSC/UDP for DAWs and Max/Pd patches (protocol: docs/osc.md).

    server.py     OscBridge: the socket, control verbs (CONTROL), job requests -> engine.serving
    tasks.py      each engine task's OSC argument form (hand-written for the built-ins, generic for the rest)
    job.py        the job payload a worker process unpickles, and rendering it through engine.tasks
    settings.py   /msanii/set keys; protocol.py, wire.py, udp.py, replies.py: argument checks, packets, replies
    pooled.py     worker processes seen from the server; output_files.py: the server writes every file
    audition.py   playing results; cli.py: `msanii-osc`; client.py, request_cli.py, handoff.py: `msanii-request`

Imports the engine, never the reverse; the server process imports no torch (worker processes hold the models).
"""
