"""Static checks of the example patches (Max cannot run here; Pd also runs headless in test_bridge_pd.py):
well-formed files, every cord between existing objects and ports, and every OSC address they speak is one the
server serves or sends."""

from __future__ import annotations

import json
import re

from bridge.server import OscBridge
from engine.tasks import task_names
from osc_helpers import REPO

EXAMPLES = REPO / "examples"
SERVER_REPLIES = set(OscBridge.REPLIES)


def served_addresses() -> set[str]:
    return set(OscBridge.CONTROL) | {f"/msanii/{name}" for name in task_names()}


def test_maxpat_is_well_formed_and_speaks_the_protocol():
    patch = json.loads((EXAMPLES / "msanii.maxpat").read_text())["patcher"]
    boxes = {b["box"]["id"]: b["box"] for b in patch["boxes"]}
    assert len(boxes) == len(patch["boxes"])
    for line in patch["lines"]:
        (src, outlet), (dst, inlet) = line["patchline"]["source"], line["patchline"]["destination"]
        assert src in boxes and dst in boxes, line
        assert outlet < boxes[src]["numoutlets"], (boxes[src].get("text"), outlet)
        assert inlet < boxes[dst]["numinlets"], (boxes[dst].get("text"), inlet)
    texts = [b.get("text", "") for b in boxes.values()]
    sent = {m.group(0) for t in texts for m in re.finditer(r"/msanii/\w+", t)
            if not t.startswith("route")}
    routed = {a for t in texts if t.startswith("route ") for a in t.split()[1:]}
    assert {"/msanii/register", "/msanii/generate", "/msanii/inpaint", "/msanii/cancel"} <= sent
    assert sent <= served_addresses(), sent - served_addresses()
    assert routed <= SERVER_REPLIES and {"/msanii/progress", "/msanii/done"} <= routed
    assert "udpsend 127.0.0.1 9000" in texts and "udpreceive 9001" in texts
    assert "buffer~ msanii" in texts and "prepend replace" in texts  # the finished file loads into a buffer


def test_pd_patch_cords_and_addresses():
    text = (EXAMPLES / "msanii.pd").read_text()
    # Objects of the top canvas, in creation order (a graph's sub-canvas counts once, at its #X restore).
    records = [r.strip() for r in re.split(r";\s*\n", text) if r.strip()]
    objects, depth = [], 0
    for rec in records[1:]:
        if rec.startswith("#N canvas"):
            depth += 1
        elif rec.startswith("#X restore"):
            depth -= 1
            objects.append(rec)
        elif depth == 0 and rec.split()[1] in ("obj", "msg", "text", "floatatom", "symbolatom"):
            objects.append(rec)
    for rec in records:
        if rec.startswith("#X connect"):
            a, _, b, _ = map(int, rec.split()[2:6])
            assert a < len(objects) and b < len(objects), rec
    sent = {"/msanii/" + m.group(1) for m in re.finditer(r"oscformat msanii (\w+)", text)}
    assert {"/msanii/register", "/msanii/generate", "/msanii/inpaint", "/msanii/cancel"} <= sent
    assert sent <= served_addresses()
    routed = re.search(r"route (accepted progress done fail[^;]*)", text).group(1).split()
    assert {"/msanii/" + r for r in routed} <= SERVER_REPLIES
