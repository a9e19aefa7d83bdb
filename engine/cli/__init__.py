"""`msanii-render SUBCOMMAND --bundle DIR ...`: render audio from a bundle on the command line.

One subcommand per registered task (engine.tasks), in registry order: its flags come from engine.cli.forms
(hand-written for the built-in tasks, built from the task's params for any other), so a new task needs no change
here. Errors print one line and exit with code 2.

    main.py     parse, load the engine, run the task through the registry, write, report
    options.py  the options every subcommand shares and their conversion to task params
    forms.py    each task's own flags
    output.py   writing new clips and edits
"""
from engine.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
