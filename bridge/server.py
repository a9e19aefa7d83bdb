"""The OSC server: a python-osc UDP server thread that validates requests and feeds the engine's job workers.

Threads: the server thread parses packets and answers at once (accepted/fail/pong/status...); it never renders.
Renders run either on one job thread in this process (`engine.serving.JobQueue`, given an `Engine`) or in supervised
worker processes (`engine.serving.workers.WorkerPool`, given `workers=` specs; see bridge/pooled.py). Either way the job
side sends progress/done/fail and this process alone writes output files. The audition thread (optional) plays
files. Replies all leave through the server's own socket.

Reply address for a sender (host, port): what it registered with `/msanii/register`, else (sender host,
`reply_port`) when a default reply port is configured, else the sender itself. A job keeps the address it was
submitted with, so concurrent clients each get their own replies.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from pythonosc.osc_message_builder import OscMessageBuilder

from bridge import protocol as p
from bridge.paths import PathPolicy
from bridge.replies import Address, ReplyRouter
from bridge.settings import RenderSettings, apply_setting
from bridge.wire import MalformedPacket, split_packet
from bridge.output_files import write_job_output
from bridge.reply_budget import fit_fail
from bridge.job import JobRequest, batch_key, render_batch, render_request
from bridge.tasks import FORMS, OscForm, ParseContext, form_for, settings_params
from bridge.udp import PacketCounts, PacketDispatcher, UDPServer
from engine.limits import Limits
from engine.serving import DuplicateJob, Job, JobQueue, NoWorkers, QueueClosed, QueueFull, WorkerSpec

log = logging.getLogger(__name__)

MAX_PACKET_BYTES = 16384
MAX_PONG_ARGS = 8


class OscBridge:
    """Serve msanii jobs over OSC/UDP (job addresses: `/msanii/<task>` for every task the engine registers, with
    the argument forms of `bridge.tasks`; control addresses: `CONTROL`).

    Args:
        engine: a loaded `engine.api.Engine` (used on the job thread only); None with `workers`.
        paths: where inputs may be read and outputs written.
        host, port: bind address (port 0 picks a free one; see `address`).
        reply_port: default reply port on the sender's host; None replies to the sender's own port.
        max_pending: jobs that may wait behind the running one.
        max_batch: up to this many waiting generate jobs of one length and the same sampler settings render as one
            batch (one U-Net call per step for all); 1 (default) renders one job at a time.
        audition: an `bridge.audition.Audition` or None; `auto_play` plays every finished clip.
        writer: `write_audio(path, audio, sample_rate, format=, bit_depth=, overwrite=)`, default the engine's.
        workers: render in these supervised worker processes instead of a thread of this process (the engine
            is then loaded by each worker; raises `engine.serving.workers.WorkerStartError` if one cannot start).
        limits: the longest input and the most new audio one job may have (`engine.limits.Limits`; its defaults
            when None), checked before a job is accepted.
    """

    CONTROL = ("/msanii/register", "/msanii/set", "/msanii/cancel", "/msanii/status", "/msanii/ping",
               "/msanii/play", "/msanii/stop")
    REPLIES = ("/msanii/accepted", "/msanii/progress", "/msanii/done", "/msanii/fail", "/msanii/registered",
               "/msanii/set", "/msanii/status", "/msanii/pong", "/msanii/playing", "/msanii/stopped")

    def __init__(self, engine: Any, paths: PathPolicy, host: str = "127.0.0.1", port: int = 9000,
                 reply_port: int | None = 9001, max_pending: int = 8, audition: Any = None,
                 auto_play: bool = False, max_packet_bytes: int = MAX_PACKET_BYTES,
                 settings: RenderSettings | None = None, writer: Callable[..., Any] | None = None,
                 workers: Sequence[WorkerSpec] | None = None, max_batch: int = 1,
                 limits: Limits | None = None) -> None:
        if engine is None and not workers:
            raise ValueError("OscBridge needs an engine or worker specs")
        if max_batch > 1 and workers:
            raise ValueError("batching runs on the in-process job queue: use max_batch 1 with worker processes")
        if writer is None:
            from engine.audio_io import write_audio as writer
        self.engine = engine
        self.paths = paths
        self.audition = audition
        self.auto_play = auto_play
        self.max_packet_bytes = max_packet_bytes
        self.settings = settings or RenderSettings()
        self.limits = limits or Limits()
        self.counts = PacketCounts()
        self._write_audio = writer
        self._send_lock = threading.Lock()
        self._closing = False
        self._server = UDPServer((host, port), PacketDispatcher(self))
        self.replies = ReplyRouter(lambda: self.address, reply_port)
        if workers:
            from bridge.pooled import start_pool
            try:
                self.jobs, self.engine = start_pool(workers, self._write_output, max_pending)
            except BaseException:
                self._server.server_close()
                raise
        else:
            self.jobs = JobQueue(self._run_job, max_pending=max_pending, name="msanii-render",
                                 max_batch=max_batch, batch_key=self._batch_key, run_batch=self._run_batch)
        self._thread: threading.Thread | None = None
        # the engine's tasks (a worker pool reported its workers' when it started): address -> (name, info, form)
        self.jobs_served = self._job_addresses()
        self._handlers: dict[str, Callable[[Sequence[Any], Address], None]] = {
            address: getattr(self, "_on_" + address.rsplit("/", 1)[1]) for address in self.CONTROL}

    def _job_addresses(self) -> dict[str, tuple[str, Any, OscForm]]:
        """/msanii/<task> for every task the engine registers, with its info (engine.tasks.TaskInfo) and form."""
        infos = getattr(self.engine, "tasks", None)
        if not isinstance(infos, dict):  # an Engine in this process: describe its registry here
            from engine.tasks import describe_tasks
            infos = describe_tasks(self.engine)
        return {p.PREFIX + name: (name, info, form_for(info)) for name, info in infos.items()}

    # ---- lifecycle ----
    @property
    def address(self) -> Address:
        host, port = self._server.server_address[:2]
        return host, port

    def start(self) -> "OscBridge":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="msanii-osc", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking requests, cancel queued and running jobs (their clients get fail "server shutting down"),
        wait for the worker, stop audition, close the socket. Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
        self.jobs.shutdown(cancel_running=True, timeout=timeout)
        if self.audition is not None:
            self.audition.close()
        self._server.server_close()

    def __enter__(self) -> "OscBridge":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- sending ----
    def send(self, to: Address, address: str, *args: Any) -> None:
        if self.replies.is_self(to):  # a reply to ourselves would be read as a request: the start of a feedback loop
            log.debug("not sending %s to the server's own port", address)
            return
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        data = builder.build().dgram
        try:
            with self._send_lock:
                self._server.socket.sendto(data, to)
        except OSError as exc:  # client went away, buffer full, socket closed at shutdown
            log.debug("reply %s to %s not sent: %s", address, to, exc)

    def reply_address(self, sender: Address) -> Address:
        return self.replies.address_for(sender)

    def fail(self, to: Address, request_id: str, reason: str, request_bytes: int | None = None) -> None:
        """Send a fail reply; one answering a request of `request_bytes` is cut to its reply budget."""
        if request_bytes is not None:
            request_id, reason = fit_fail(request_id, reason, request_bytes)
        self.send(to, "/msanii/fail", request_id, reason)

    # ---- receiving (server thread) ----
    def handle_datagram(self, data: bytes, sender: Address) -> None:
        self.counts.add("packets")
        if self.replies.is_self(sender):  # only a loop could make us our own client
            self.counts.add("ignored")
            return
        if len(data) > self.max_packet_bytes:
            self.counts.add("oversized")
            return
        try:
            messages = split_packet(data)
        except MalformedPacket:
            self.counts.add("malformed")
            return
        for message in messages:
            try:
                address, args = message.address, list(message.params)
            except Exception:
                self.counts.add("malformed")
                continue
            self.handle_message(address, args, sender, len(message.dgram))

    def handle_message(self, address: str, args: Sequence[Any], sender: Address,
                       request_bytes: int | None = None) -> None:
        """Answer one message; `request_bytes` (its size) bounds the size of a fail reply (bridge.reply_budget)."""
        handler = self._handlers.get(address)
        if handler is None and address not in self.jobs_served and not self._is_builtin_task(address):
            if address in self.REPLIES:  # another server's reply: answering it could start a ping-pong
                self.counts.add("ignored")
                return
            self.counts.add("unknown")
            self.fail(self.reply_address(sender), address[:80], f"unknown address {address[:80]}", request_bytes)
            return
        try:
            if handler is not None:
                handler(args, sender)
            else:
                self._on_job(address, args, sender)
        except p.RequestError as exc:
            self.counts.add("rejected")
            self.fail(self.reply_address(sender), self._fail_id(address, args), str(exc), request_bytes)
        except Exception as exc:  # a bug must cost one request, not the server
            log.exception("request %s failed", address)
            self.counts.add("rejected")
            self.fail(self.reply_address(sender), self._fail_id(address, args), f"internal error: {exc}",
                      request_bytes)

    @staticmethod
    def _is_builtin_task(address: str) -> bool:
        """A task docs/osc.md describes, served or not by this engine (not served: fail "not available")."""
        return address.startswith(p.PREFIX) and address[len(p.PREFIX):] in FORMS

    def _fail_id(self, address: str, args: Sequence[Any]) -> str:
        """Job requests and cancels fail under their job id (when usable); everything else under its address."""
        if address in self.jobs_served or self._is_builtin_task(address) or address == "/msanii/cancel":
            return p.fail_id(address, args)
        return address[:80]

    # ---- job requests ----
    def _on_job(self, address: str, args: Sequence[Any], sender: Address) -> None:
        name = address[len(p.PREFIX):]
        served = self.jobs_served.get(address)
        if not args:
            raise p.RequestError(f"expected {address} {(served[2] if served else FORMS[name]).usage}")
        job_id = p.job_id(args[0])
        if served is None:  # a task of docs/osc.md that this engine build does not register
            raise p.RequestError(f"not available: this engine has no {name}")
        name, info, form = served
        reply_to = self.reply_address(sender)
        settings = self.settings
        params = form.parse(args, ParseContext(self.paths, settings, info.max_seconds, self.limits))
        params = {**params, **settings_params(info, settings, self.limits)}
        request = JobRequest(name, params, settings, self.paths.output_dir, reply_to, time.monotonic())
        job = Job(job_id, request, on_progress=self._job_progress, on_done=self._job_done, on_fail=self._job_fail)
        try:
            position = self.jobs.submit(job)
        except QueueFull:
            raise p.RequestError("busy: queue full") from None
        except DuplicateJob:
            raise p.RequestError("duplicate id: a job with this id is queued or running") from None
        except QueueClosed:
            raise p.RequestError("server shutting down") from None
        except NoWorkers as exc:
            raise p.RequestError(str(exc)) from None
        self.send(reply_to, "/msanii/accepted", job_id, position)

    def _run_job(self, job: Job, progress: Callable[[float], None]) -> tuple[Path, dict]:
        """Job thread: render, then write the file."""
        return self._write_output(job, render_request(self.engine, job.request, progress))

    def _batch_key(self, job: Job) -> Any:
        """Jobs that may share a batch (queue lock held: the request's own fields only)."""
        req: JobRequest = job.request
        served = self.jobs_served.get(p.PREFIX + req.task)
        return batch_key(req) if served is not None and served[1].batches else None

    def _run_batch(self, jobs: list[Job], progress: Callable[[float], None]) -> list[Any]:
        """Job thread: render a batch, then write each job's file (a failed or cancelled write stays that job's)."""
        results = render_batch(self.engine, [j.request for j in jobs], progress)
        outputs: list[Any] = []
        for job, result in zip(jobs, results):
            try:
                outputs.append(self._write_output(job, result))
            except Exception as exc:  # jobs.Cancelled included: the queue reports it for that job
                outputs.append(exc)
        return outputs

    def _write_output(self, job: Job, result: Any) -> tuple[Path, dict]:
        req: JobRequest = job.request
        return write_job_output(self.paths, self._write_audio, job, result, req.settings, req.output_dir)

    def _job_progress(self, job: Job, fraction: float) -> None:
        req: JobRequest = job.request
        now = time.monotonic()
        final = fraction >= 1.0
        if final and req.last_fraction >= 1.0:
            return
        if not final and now - req.last_progress_at < 1.0 / req.settings.progress_hz and req.last_fraction >= 0:
            return
        req.last_progress_at, req.last_fraction = now, fraction
        self.send(req.reply_to, "/msanii/progress", job.id, float(fraction))

    def _job_done(self, job: Job, result: tuple[Path, dict]) -> None:
        req: JobRequest = job.request
        path, info = result
        self._job_progress(job, 1.0)
        seconds = float(info["output_seconds"])
        seed, bpm = info.get("seed"), info.get("bpm")
        # bpm: the tempo the clip follows (a generation that named none: the one its seed drew), 0 for none
        self.send(req.reply_to, "/msanii/done", job.id, str(path), seconds,
                  int(seed) if isinstance(seed, int) and 0 <= seed <= p.MAX_SEED else -1,
                  float(bpm) if isinstance(bpm, (int, float)) else 0.0)
        log.info("job %s done in %.2f s: %s", job.id, time.monotonic() - req.received_at, path)
        if self.auto_play and self.audition is not None and self.audition.available:
            self.audition.play(path, on_event=self._audition_reporter(req.reply_to))

    def _job_fail(self, job: Job, reason: str) -> None:
        req: JobRequest = job.request
        self.send(req.reply_to, "/msanii/fail", job.id, reason)
        log.info("job %s: %s", job.id, reason)

    # ---- control requests ----
    def _on_register(self, args: Sequence[Any], sender: Address) -> None:
        p.count(args, 1, 2, "/msanii/register [host] <port>")
        host = p.string(args[0], "host", 255) if len(args) == 2 else sender[0]
        port = p.integer(args[-1], "port", 1, 65535)
        target = self.replies.register(sender, host, port)
        self.send(target, "/msanii/registered", *target)

    def _on_set(self, args: Sequence[Any], sender: Address) -> None:
        if not args:
            raise p.RequestError("expected /msanii/set <key> <value...>")
        key = p.string(args[0], "setting", 64).lower()
        values = list(args[1:])
        if key == "output_dir":
            p.count(values, 1, 1, "/msanii/set output_dir <name>")
            name = values[0] if values[0] != "" else "."
            try:
                applied = [str(self.paths.set_output_subdir(p.string(name, "output_dir")))]
            except OSError as exc:  # a read-only output root, a file in the way, a full disk
                raise p.RequestError(f"cannot create output_dir {name!r}: {exc.strerror or exc}") from None
        else:
            self.settings, applied = apply_setting(self.settings, key, values)
        self.send(self.reply_address(sender), "/msanii/set", key, *applied)

    def _on_cancel(self, args: Sequence[Any], sender: Address) -> None:
        p.count(args, 1, 1, "/msanii/cancel <id>")
        job_id = p.job_id(args[0])
        if not self.jobs.cancel(job_id):
            raise p.RequestError("no such job (not queued or running)")

    def _on_status(self, args: Sequence[Any], sender: Address) -> None:
        status = self.jobs.status()
        c = self.counts
        self.send(self.reply_address(sender), "/msanii/status", status["state"], status["queue_length"],
                  str(getattr(self.engine, "name", "?")), str(getattr(self.engine, "device", "?")),
                  c.packets, c.malformed, c.oversized, c.rejected,
                  status["workers"], status["busy"], status["restarts"], c.unknown, c.ignored)

    def _on_ping(self, args: Sequence[Any], sender: Address) -> None:
        echo = [a for a in args[:MAX_PONG_ARGS] if p.is_number(a) or (isinstance(a, str) and len(a) <= 256)]
        self.send(self.reply_address(sender), "/msanii/pong", *echo)

    def _on_play(self, args: Sequence[Any], sender: Address) -> None:
        p.count(args, 1, 1, "/msanii/play <path>")
        path = self.paths.resolve_input(p.string(args[0], "path"))
        self._require_audition()
        self.audition.play(path, on_event=self._audition_reporter(self.reply_address(sender)))

    def _on_stop(self, args: Sequence[Any], sender: Address) -> None:
        p.count(args, 0, 0, "/msanii/stop")
        self._require_audition()
        self.audition.stop(on_event=self._audition_reporter(self.reply_address(sender)))

    def _require_audition(self) -> None:
        if self.audition is None:
            raise p.RequestError("audition disabled")
        if not self.audition.available:
            raise p.RequestError(f"audition unavailable: {self.audition.error}")

    def _audition_reporter(self, to: Address) -> Callable[..., None]:
        def report(event: str, *args: Any) -> None:
            if event == "error":
                self.send(to, "/msanii/fail", "/msanii/play", *args)
            else:
                self.send(to, f"/msanii/{event}", *args)
        return report
