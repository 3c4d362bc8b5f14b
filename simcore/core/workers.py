"""Lambda worker processes: start, feed, limit, restart and stop them.

- Pinned (long-lived) functions get one process each at core start, so their module-level code runs then.
  A pinned worker that dies is restarted with exponential backoff (0.1 s doubling to 5 s; reset once a
  worker finishes an item or stays up 10 s), and its queue is kept for the new process.
- On-demand functions get a process when work waits and no idle worker of theirs exists, up to 25 such
  processes for the whole core; a worker stays warm for more work and retires after `warm_idle_s` idle.
- A worker that dies holding an item (a crash, `kill -9`) gets the item back at the front of its queue; an
  item that has been held by `max_attempts` dying workers is a poison message: set aside, counted, logged,
  and its caller answered `Unhandled`.
- A function whose workers fail `max_failed_starts` times in a row before they ever ask for work (the
  interpreter cannot run, the handler cannot be imported, the process cannot be started) is marked failed:
  it is not started again until the core restarts, and its queued work, and any that arrives later, is set
  aside as poison with that reason (in the status), never left waiting for a worker that will not come.
- `MemorySize` is enforced by polling the RSS of the worker's process tree in /proc: over the limit, the tree
  is killed, the real core's "Worker consumed all allocated memory!" line is logged and the item fails
  `Unhandled`. On-demand work also gets its `Timeout` enforced by a kill.
- stdout and stderr go, line by line, to the function's log file in the core's line format.
- A worker's state (in the status): `starting` from its process's creation until its runtime reports, on a pipe
  the core passes it (`SIMCORE_STATE_FD`), that it has begun importing the handler's module; then `running`
  while module-level code runs (a pinned function whose module code never returns stays `running`, as a v1
  core counts a pinned function running once its process is up); `idle` while it waits for work, `busy` while
  it handles an item, `stopping` once the core is ending it. A function whose worker died keeps its last
  exit and its last error: the newest ERROR/FATAL line its log got from that worker (a traceback's last
  line), read from the end of the log (bounded), or the core's kill message.
- Interpreters: `simcore.core.interpreters`. The process environment: `simcore.core.environment`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from simcore.core.environment import function_environment
from simcore.core.identity import check_reachable
from simcore.core.interpreters import resolve_interpreter
from simcore.core.isolation import LaunchPlanner, off_planner
from simcore.core.logs import LogSinks, last_error_line
from simcore.core.processes import children_by_parent, signal_tree, start_pump, tree_rss_kb
from simcore.core.work_queue import WorkItem, WorkQueue
from simcore.defaults import DEFAULT_MAX_FAILED_STARTS
from simcore.errors import SimcoreError
from simcore.group import Function, Group
from simcore.parent_death import die_with_parent
from simcore.paths import LAMBDA_RUNTIME, LAMBDA_SIDE_DIR

log = logging.getLogger(__name__)



class TokenIssuer(Protocol):
    """Issues and revokes IPC tokens (`simcore.core.ipc.dispatch.TokenRegistry`)."""

    def issue(self, function_arn: str, worker_id: str | None = None) -> str: ...

    def revoke(self, token: str) -> None: ...


class WorkCaller(Protocol):
    """Who asks for work (`simcore.core.ipc.dispatch.Caller`): a function and, for a worker process, its worker id."""

    function_arn: str
    worker_id: str | None


# -- workers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSettings:
    """Limits and timings of the worker manager."""

    max_on_demand: int = 25
    warm_idle_s: float = 60.0
    max_attempts: int = 3
    backoff_start_s: float = 0.1
    backoff_cap_s: float = 5.0
    healthy_after_s: float = 10.0
    poll_interval_s: float = 0.1
    tree_scan_s: float = 0.5
    stop_grace_s: float = 3.0
    poison_kept: int = 100
    # How long a dead worker's output may take to reach its log before its last error is read from it.
    output_drain_s: float = 1.0
    max_failed_starts: int = DEFAULT_MAX_FAILED_STARTS


@dataclass(eq=False)
class Worker:
    """One Lambda process."""

    id: str
    function: Function
    token: str
    process: subprocess.Popen
    started_at: float
    started_wall: float = 0.0  # time.time() at start: the log lines this worker wrote are not older
    state_fd: int | None = None  # read end of the pipe the runtime reports its import start on
    importing: bool = False  # the runtime began importing the handler's module
    current: WorkItem | None = None
    waiting_since: float | None = None
    served: int = 0
    kill_reason: str | None = None
    retiring: bool = False
    dead: bool = False
    asked_for_work: bool = False
    pumps: list[threading.Thread] = field(default_factory=list)

    @property
    def state(self) -> str:
        """starting, running, idle, busy, stopping or dead (the module docstring says when each holds)."""
        if self.dead:
            return "dead"
        if self.kill_reason or self.retiring:
            return "stopping"
        if self.current is not None:
            return "busy"
        if self.waiting_since is not None:
            return "idle"
        return "running" if self.importing or self.served else "starting"

    def read_state_pipe(self) -> None:
        """Take what the runtime reported on its state pipe (never blocks); close the pipe at its end."""
        if self.state_fd is None:
            return
        try:
            data = os.read(self.state_fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if b"i" in data:
            self.importing = True
        if not data or self.importing:
            self.close_state_pipe()

    def close_state_pipe(self) -> None:
        """Close the read end of the state pipe, once."""
        if self.state_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.state_fd)
            self.state_fd = None


@dataclass(eq=False)
class FunctionWorkers:
    """The workers of one function and what happened to them."""

    function: Function
    interpreter: str
    workers: list[Worker] = field(default_factory=list)
    consecutive_failures: int = 0
    next_start_at: float = 0.0
    starts: int = 0
    restarts: int = 0
    crashes: int = 0
    memory_kills: int = 0
    timeouts: int = 0
    poison: int = 0
    last_exit: str | None = None
    last_error: str | None = None
    failed_starts: int = 0
    failed: str | None = None

    def live(self) -> list[Worker]:
        """Workers not yet dead."""
        return [worker for worker in self.workers if not worker.dead]


@dataclass(frozen=True)
class PoisonMessage:
    """A work item set aside because workers kept dying on it."""

    function_arn: str
    invocation_id: str
    subject: str | None
    attempts: int
    payload_bytes: int
    reason: str = "killed its worker"


class WorkerManager:
    """Runs a group's Lambda processes and hands them their work (a `simcore.core.ipc.dispatch.WorkSource`)."""

    def __init__(
        self,
        group: Group,
        work_queue: WorkQueue,
        tokens: TokenIssuer,
        *,
        ipc_port: Callable[[], int] | int,
        log_sinks: LogSinks,
        launch_planner: LaunchPlanner | None = None,
        interpreters: Mapping[str, str] | None = None,
        code_dirs: Mapping[str, Path] | None = None,
        settings: WorkerSettings | None = None,
        service_variables: Callable[[], Mapping[str, str]] | None = None,
        aws_endpoint_url: str | None = None,
    ):
        """`service_variables()` gives the variables that tell a worker where the core's services listen
        (`STREAM_MANAGER_SERVER_PORT`), asked at each start."""
        self.group = group
        self.service_variables = service_variables or dict
        self.aws_endpoint_url = aws_endpoint_url  # the stand-in's local AWS, for the workers' botocore
        self.work_queue = work_queue
        self.tokens = tokens
        self._ipc_port = ipc_port
        self.log_sinks = log_sinks
        self.launch_planner = launch_planner or off_planner
        self.settings = settings or WorkerSettings()
        self.code_dirs = dict(code_dirs or {})
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self._by_id: dict[str, Worker] = {}
        self.poison_messages: deque[PoisonMessage] = deque(maxlen=self.settings.poison_kept)
        self._children: dict[int, list[int]] = {}
        self._children_scanned_at = 0.0
        self.pools: dict[str, FunctionWorkers] = {}
        for function in group.functions:
            interpreter, warning = resolve_interpreter(function.runtime, interpreters)
            if warning:
                log.warning("%s: %s", function.name, warning)
                self._system(f"{function.name}: {warning}", "WARN")
            self.pools[function.arn] = FunctionWorkers(function, interpreter)
        work_queue.add_listener(self._on_enqueue)

    # -- lifecycle -----------------------------------------------------------------------------------------

    def check_launch(self) -> None:
        """Plan every function's launch and environment once: RuntimeConfigError names what cannot run, and
        StartError an identity the host lacks, root that is not allowed, or files that identity cannot read."""
        for pool in self.pools.values():
            launch = self.launch_planner(pool.function)
            function_environment(
                pool.function,
                self.group,
                token="-",
                ipc_port=0,
                runtime_dir=LAMBDA_SIDE_DIR,
                env_rewrites=launch.env_rewrites,
            )
            if launch.identity is not None:
                code_dir = Path(self.code_dirs.get(pool.function.arn, pool.function.code_dir))
                check_reachable(launch.identity, pool.interpreter, LAMBDA_RUNTIME, code_dir, pool.function.name)

    def start(self) -> None:
        """Start every pinned function's worker and the monitor."""
        for pool in self.pools.values():
            if pool.function.pinned:
                self._spawn(pool)
        self._monitor = threading.Thread(target=self._monitor_loop, name="simcore-workers", daemon=True)
        self._monitor.start()

    def stop(self) -> None:
        """Stop every worker: SIGTERM to its process group, SIGKILL after the grace period."""
        self._stopping.set()
        self._wake.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        with self._lock:
            workers = [worker for pool in self.pools.values() for worker in pool.live()]
            for worker in workers:
                worker.kill_reason = worker.kill_reason or "stop"
        for worker in workers:
            signal_tree(worker.process, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.stop_grace_s
        for worker in workers:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_tree(worker.process, signal.SIGKILL)
                worker.process.wait()
        for worker in workers:
            self._handle_exit(worker)
            for pump in worker.pumps:
                pump.join(timeout=2)

    # -- the WorkSource side (called from IPC threads) ---------------------------------------------------

    def take_work(self, caller: WorkCaller, timeout: float) -> WorkItem | None:
        """The next item for a worker process (long poll), recorded as held by it."""
        if caller.worker_id is None:
            raise PermissionError(f"{caller.function_arn}: only the core's worker processes take work")
        worker = self._by_id.get(caller.worker_id)
        if worker is None or worker.dead or worker.function.arn != caller.function_arn:
            return None
        with self._lock:
            if not worker.asked_for_work:
                worker.asked_for_work = True
                self.pools[worker.function.arn].failed_starts = 0
            # Idle time counts from the first empty poll, not from each re-poll.
            if worker.waiting_since is None:
                worker.waiting_since = time.monotonic()
        item = self.work_queue.take(caller.function_arn, timeout)
        with self._lock:
            if item is None:
                return None
            worker.waiting_since = None
            if worker.dead or worker.retiring or worker.kill_reason:
                self.work_queue.put_back(item)
                return None
            worker.current = item
            return item

    def finish_work(self, caller: WorkCaller, invocation_id: str) -> WorkItem | None:
        """The item the worker held, now done; None if it holds no such item."""
        worker = self._by_id.get(caller.worker_id or "")
        with self._lock:
            if worker is None or worker.current is None or worker.current.invocation_id != invocation_id:
                return None
            item, worker.current = worker.current, None
            worker.served += 1
            self.pools[worker.function.arn].consecutive_failures = 0
            return item

    # -- spawning ------------------------------------------------------------------------------------------

    def _on_enqueue(self, function_arn: str) -> None:
        pool = self.pools.get(function_arn)
        if pool is not None and not pool.function.pinned:
            self._wake.set()

    def _spawn(self, pool: FunctionWorkers) -> Worker | None:
        function = pool.function
        worker_id = uuid.uuid4().hex[:12]
        token = self.tokens.issue(function.arn, worker_id)
        state_read, state_write = os.pipe()
        os.set_blocking(state_read, False)
        started_wall = time.time()
        try:
            launch = self.launch_planner(function)
            code_dir = Path(self.code_dirs.get(function.arn, function.code_dir))
            environment = function_environment(
                function,
                self.group,
                token=token,
                ipc_port=self.ipc_port,
                runtime_dir=LAMBDA_SIDE_DIR,
                code_dir=code_dir,
                env_rewrites=launch.env_rewrites,
                state_fd=state_write,
                service_variables=self.service_variables(),
                aws_endpoint_url=self.aws_endpoint_url,
            )
            argv = [*launch.argv_prefix, pool.interpreter, str(LAMBDA_RUNTIME), "--handler", function.handler]
            process = subprocess.Popen(
                argv,
                cwd=code_dir,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                # Dies with the core even on its kill -9. Spawned only by start() (the caller's thread,
                # alive for the core's life) and the monitor thread, which ends only in stop().
                preexec_fn=die_with_parent(signal.SIGKILL),
                user=launch.uid,
                group=launch.gid,
                pass_fds=(state_write,),
                # Root's supplementary groups must not follow it into the Lambda; its resources' groups do.
                extra_groups=list(launch.extra_groups) if launch.uid is not None or launch.gid is not None else None,
            )
        except (OSError, SimcoreError) as error:
            os.close(state_read)
            self.tokens.revoke(token)
            pool.consecutive_failures += 1
            pool.next_start_at = time.monotonic() + self._backoff(pool)
            message = f"Cannot start a worker for {function.arn}: {error}"
            pool.last_error = message
            log.error(message)
            self._system(message, "ERROR")
            self._failed_start(pool, str(error))
            return None
        finally:
            os.close(state_write)  # the worker has its own copy; once it closes that, the core reads EOF
        worker = Worker(worker_id, function, token, process, time.monotonic(), started_wall, state_read)
        sink = self.log_sinks.function_log(function)
        worker.pumps = [
            start_pump(process.stdout, sink, "INFO", f"{function.name}-out"),
            start_pump(process.stderr, sink, "ERROR", f"{function.name}-err"),
        ]
        with self._lock:
            self._by_id[worker_id] = worker
            pool.workers.append(worker)
            if pool.starts and function.pinned:
                pool.restarts += 1
            pool.starts += 1
        self._system(
            f"Started worker {worker_id} (pid {process.pid}) of {function.arn} with {pool.interpreter}"
            + (f"; {launch.description}" if launch.description and pool.starts == 1 else ""),
            "INFO",
        )
        return worker

    @property
    def ipc_port(self) -> int:
        """The IPC server's port, given to each worker."""
        return self._ipc_port() if callable(self._ipc_port) else self._ipc_port

    def _backoff(self, pool: FunctionWorkers) -> float:
        failures = max(1, pool.consecutive_failures)
        return min(self.settings.backoff_cap_s, self.settings.backoff_start_s * 2 ** (failures - 1))

    # -- the monitor -------------------------------------------------------------------------------------

    def _monitor_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._tick()
            except Exception:
                log.exception("The worker monitor failed a round")

    def _tick(self) -> None:
        now = time.monotonic()
        for worker in [w for pool in self.pools.values() for w in pool.live()]:
            if worker.process.poll() is not None:
                self._handle_exit(worker)
            else:
                with self._lock:
                    worker.read_state_pipe()
        self._enforce_memory()
        now = time.monotonic()
        pending = self.work_queue.pending_by_function()
        on_demand_live = sum(len(p.live()) for p in self.pools.values() if not p.function.pinned)
        for pool in self.pools.values():
            live = pool.live()
            if pool.failed is not None:
                self._set_aside_queued(pool)
                continue
            if pool.function.pinned:
                if not live and now >= pool.next_start_at:
                    self._spawn(pool)
                continue
            for worker in live:
                self._enforce_on_demand(pool, worker, now)
            free = [w for w in live if w.current is None and not w.retiring and not w.kill_reason]
            wanted = pending.get(pool.function.arn, 0) - len(free)
            while wanted > 0 and on_demand_live < self.settings.max_on_demand and now >= pool.next_start_at:
                if self._spawn(pool) is None:
                    break
                on_demand_live += 1
                wanted -= 1

    def _enforce_on_demand(self, pool: FunctionWorkers, worker: Worker, now: float) -> None:
        item = worker.current
        timeout_s = pool.function.timeout_s
        if item is not None and item.dispatched_at is not None and now - item.dispatched_at > timeout_s:
            message = f"Task timed out after {timeout_s:g} seconds"
            pool.timeouts += 1
            self._kill(worker, "timeout", message, item)
        elif (
            worker.waiting_since is not None and item is None and now - worker.waiting_since > self.settings.warm_idle_s
        ):
            with self._lock:
                worker.retiring = True
            signal_tree(worker.process, signal.SIGTERM)

    def _enforce_memory(self) -> None:
        limited = [w for p in self.pools.values() if p.function.memory_kb for w in p.live() if not w.kill_reason]
        if not limited:
            return
        # Each worker's own RSS every tick; its descendants from a /proc scan at most every tree_scan_s.
        now = time.monotonic()
        if now - self._children_scanned_at >= self.settings.tree_scan_s:
            self._children = children_by_parent()
            self._children_scanned_at = now
        children = self._children
        for worker in limited:
            rss_kb = tree_rss_kb(worker.process.pid, children)
            limit_kb = worker.function.memory_kb or 0
            if rss_kb > limit_kb:
                message = (
                    f"Worker consumed all allocated memory! Memory Usage (KB): {rss_kb}, Memory Limit (KB): "
                    f"{limit_kb}. Worker {worker.id} (pid {worker.process.pid}) of {worker.function.arn} "
                    "was ungracefully killed"
                )
                self.pools[worker.function.arn].memory_kills += 1
                self._kill(worker, "memory", message, worker.current)

    def _kill(self, worker: Worker, reason: str, message: str, item: WorkItem | None) -> None:
        with self._lock:
            if worker.kill_reason:
                return
            worker.kill_reason = reason
        signal_tree(worker.process, signal.SIGKILL)
        self.pools[worker.function.arn].last_error = message
        self._system(message, "ERROR")
        self._function_line(worker.function, "ERROR", message)
        if item is not None and item.result is not None:
            item.result.fail_unhandled(message)

    def _handle_exit(self, worker: Worker) -> None:
        with self._lock:
            if worker.dead:
                return
            worker.dead = True
            item, worker.current = worker.current, None
            self._by_id.pop(worker.id, None)
            pool = self.pools[worker.function.arn]
            pool.workers.remove(worker)
            worker.close_state_pipe()
        self.tokens.revoke(worker.token)
        code = worker.process.wait()
        reason = worker.kill_reason
        pool.last_exit = f"{reason or 'exited'} (code {code})"
        if reason in ("stop", None) and worker.retiring:
            return
        if reason == "stop":
            if item is not None:
                self.work_queue.put_back(item)
            return
        uptime = time.monotonic() - worker.started_at
        if reason is None:
            pool.crashes += 1
            message = f"Worker {worker.id} (pid {worker.process.pid}) of {worker.function.arn} exited with code {code}"
            self._system(message, "ERROR")
            pool.last_error = self._last_error_of(worker)
            if item is not None:
                self._retry_or_set_aside(pool, item)
            if not worker.asked_for_work and uptime < self.settings.healthy_after_s:
                said = f": {pool.last_error}" if pool.last_error else ""
                self._failed_start(pool, f"exited with code {code} before it asked for work{said}")
        if uptime >= self.settings.healthy_after_s:
            pool.consecutive_failures = 0
        pool.consecutive_failures += 1
        pool.next_start_at = time.monotonic() + self._backoff(pool)

    def _last_error_of(self, worker: Worker) -> str | None:
        """The last error line the dead `worker` left in its function's log, once its output has drained."""
        deadline = time.monotonic() + self.settings.output_drain_s
        for pump in worker.pumps:
            # A pump ends at its pipe's EOF; a child the worker left behind may hold the pipe open longer.
            pump.join(timeout=max(0.0, deadline - time.monotonic()))
        return last_error_line(self.log_sinks.function_log(worker.function), worker.started_wall)

    def _retry_or_set_aside(self, pool: FunctionWorkers, item: WorkItem) -> None:
        item.attempts += 1
        if item.attempts < self.settings.max_attempts and not item.cancelled:
            self.work_queue.put_back(item)
            return
        self._set_aside(pool, item, PoisonMessage.reason, f" killed its worker {item.attempts} times",
                        f"The function's worker died {item.attempts} times handling this request")

    def _failed_start(self, pool: FunctionWorkers, why: str) -> None:
        """Count a start that failed; at `max_failed_starts` in a row, mark the function failed and set its
        queued work aside (a crash loop ends here instead of restarting forever)."""
        with self._lock:
            pool.failed_starts += 1
            if pool.failed is not None or pool.failed_starts < self.settings.max_failed_starts:
                return
            pool.failed = (
                f"{pool.failed_starts} starts in a row failed before the worker asked for work (last: {why}); "
                "not started again until the core restarts: fix its Runtime interpreter or handler "
                "(see its log) and restart"
            )
        message = f"Function {pool.function.arn} failed: {pool.failed}"
        log.error(message)
        self._system(message, "ERROR")
        self._function_line(pool.function, "ERROR", message)
        self._set_aside_queued(pool)

    def _set_aside_queued(self, pool: FunctionWorkers) -> None:
        """Every item queued for a failed function, set aside as poison with the function's failure as reason."""
        for item in self.work_queue.drain(pool.function.arn):
            self._set_aside(pool, item, f"function failed: {pool.failed}", ": the function failed to start",
                            f"The function failed to start: {pool.failed}")

    def _set_aside(self, pool: FunctionWorkers, item: WorkItem, reason: str, said: str, unhandled: str) -> None:
        """Set `item` aside as poison: counted, listed with `reason`, logged (`said` ends the line), and its
        RequestResponse caller answered Unhandled with `unhandled`. `said` follows the subject in the log line."""
        pool.poison += 1
        self.poison_messages.append(PoisonMessage(
            item.function_arn, item.invocation_id, item.subject, item.attempts, len(item.payload), reason=reason,
        ))
        on_subject = " on " + item.subject if item.subject else ""
        message = f"Poison message set aside: invocation {item.invocation_id} of {item.function_arn}{on_subject}{said}"
        log.error(message)
        self._system(message, "ERROR")
        if item.result is not None:
            item.result.fail_unhandled(unhandled)

    # -- status and logs ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Per function: pinned, interpreter, workers (pid, state), restarts, crashes, kills, poison, last error."""
        with self._lock:
            functions = {}
            for arn, pool in self.pools.items():
                for worker in pool.live():
                    worker.read_state_pipe()
                functions[arn] = {
                    "name": pool.function.name,
                    "pinned": pool.function.pinned,
                    "interpreter": pool.interpreter,
                    "workers": [
                        {
                            "id": w.id,
                            "pid": w.process.pid,
                            "state": w.state,
                            "served": w.served,
                            "invocation": w.current.invocation_id if w.current else None,
                        }
                        for w in pool.live()
                    ],
                    "queued": self.work_queue.pending(arn),
                    "starts": pool.starts,
                    "restarts": pool.restarts,
                    "crashes": pool.crashes,
                    "memory_kills": pool.memory_kills,
                    "timeouts": pool.timeouts,
                    "poison": pool.poison,
                    "last_exit": pool.last_exit,
                    "last_error": pool.last_error,
                    "failed_starts": pool.failed_starts,
                    "failed": pool.failed,
                }
            return {"functions": functions, "poison_messages": [vars(p) for p in self.poison_messages]}

    def _system(self, message: str, level: str) -> None:
        line = self.log_sinks.line(level, "workers.py", sys._getframe(1).f_lineno, message)
        self.log_sinks.system_log("runtime").write_line(line)

    def _function_line(self, function: Function, level: str, message: str) -> None:
        line = self.log_sinks.line(level, "workers.py", sys._getframe(1).f_lineno, message)
        self.log_sinks.function_log(function).write_line(line)
