"""Keeping ``spotify-assets dev``'s servers alive: a dead one is noticed, named and restarted.

A household leaves ``make dev`` running for months, so a server that dies (the kernel's
out-of-memory killer, a crash) must not leave the platform quietly stopped. ``spotify-assets
dev`` starts three children, each leading its own process group: the sandbox API, the warm
Spark Connect server and ``dagster dev``, which starts the webserver, the daemon and the code
server (a proxy, ``code-server start``, in front of the process that loads the project's code,
``api grpc``). What each death needs:

- the sandbox, the Spark Connect server: started again on the same port (and token), so the
  URL every run was given still works;
- the webserver or the daemon: ``dagster dev`` stops the other and exits; it is started again;
- the code server's proxy: ``dagster dev`` restarts it itself (nothing to do but say so);
- the code server behind the proxy: nothing restarts it, and the code location stays in error
  (no sensor tick, no schedule, no UI page of the project) until it is reloaded, so it is
  reloaded as the UI's "Reload" button does, through the webserver's GraphQL API
  (``reloadRepositoryLocation``), until the location answers loaded again.

Each restart says in the log what died and that it restarted. Restarts back off (1, 2, 4 ... s,
at most ``Backoff.max_s``); a child that stays up ``Backoff.stable_s`` is forgiven its past
deaths, and one that keeps dying (``Backoff.give_up_after`` restarts in a row that did not stay
up) stops everything with a message saying which and why, rather than restarting forever.

Stdlib only: the supervisor must stay small in memory (issue 28), so no Dagster import here.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from spotify_sandbox.processes import command_line, descendants, stop_groups

#: The signals that stop ``spotify-assets dev``: held back while a child starts, so a stop that
#: arrives then finds the new child recorded (and stops it) instead of leaving it behind.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: The processes of ``dagster dev``'s tree, by a piece of their command line, and what the log calls them.
DAGSTER_ROLES = {
    "dagster_webserver": "the Dagster webserver",
    "dagster._daemon run": "the Dagster daemon",
    "code-server start": "the code server's proxy",
    " api grpc": "the code server",
}
CODE_SERVER = " api grpc"
CODE_SERVER_PROXY = "code-server start"
#: Where each server sits: the code server below its proxy, the others right below ``dagster dev``.
#: A process elsewhere whose command line holds a role's piece is no server: a server's own
#: child carries its parent's command line from ``fork`` until it ``exec``s (or for good).
ROLE_PARENT = {CODE_SERVER: CODE_SERVER_PROXY}
CODE_SERVER_NAME = DAGSTER_ROLES[CODE_SERVER]
#: ``dagster dev`` as the log names it.
DAGSTER_DEV_NAME = "dagster dev (the Dagster webserver, daemon and code server)"


def restarted_line(name: str) -> str:
    """What the log says once the child (or server) called ``name`` is running again."""
    return f"spotify-assets dev: {name} restarted"


class GaveUp(RuntimeError):
    """A child kept dying after each restart: the message says which and how often."""


@dataclass
class Backoff:
    """When to restart a child that died, and when to stop trying."""

    first_s: float = 1.0
    max_s: float = 30.0
    #: A child up this long before it died is forgiven its earlier deaths.
    stable_s: float = 60.0
    #: Restarts in a row, none of which stayed up ``stable_s``, before giving up.
    give_up_after: int = 5
    failures: int = 0

    def delay_after(self, up_for_s: float) -> float | None:
        """Seconds to wait before the next restart of a child that was up ``up_for_s``; None: give up."""
        if up_for_s >= self.stable_s:
            self.failures = 0
        if self.failures >= self.give_up_after:
            return None
        delay = min(self.max_s, self.first_s * 2**self.failures)
        self.failures += 1
        return delay


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back for the block; one that came meanwhile is handled after it.

    Held by a handler that only notes the signal, not by blocking it: a blocked signal stays
    blocked in every child started in the block, across ``exec`` and on to their children (the
    soak found ``dagster dev``'s whole tree deaf to SIGTERM that way, and each run a minute slower
    while Dagster waited for the ``tail`` it had sent SIGTERM to). A caught signal is reset to its
    default in the child. In another thread (``dev``'s Spark warm-up starts a helper from one)
    nothing is held: Python runs signal handlers in the main thread only, so the stop cannot
    interrupt this thread's start of a child, and ``signal.signal`` works in the main one only.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    heard: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: heard.append(signum)) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for signum in dict.fromkeys(heard):  # once each, in the order they came
            signal.raise_signal(signum)


@dataclass
class Child:
    """One child of ``dev``: ``start`` launches it (as the leader of a new process group)."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    backoff: Backoff = field(default_factory=Backoff)
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    #: Called once the child is started again (e.g. to report a restarted server ready).
    after_restart: Callable[[], None] | None = None
    #: Whether ``dev`` is worth running without it: one that keeps dying stops everything if it
    #: is, else it is left stopped with a message (runs use an in-process Spark without the server).
    essential: bool = True
    #: What the log says when a non-essential child is given up.
    without_it: str = ""

    def launch(self) -> None:
        with stop_signals_held():
            self.proc = self.start()
            self.started_at = time.monotonic()


def dagster_processes(root: int) -> dict[int, tuple[str, int]]:
    """pid -> (role piece of ``DAGSTER_ROLES``, parent pid) of each Dagster server below ``root``
    (``dagster dev``), each at its place (``ROLE_PARENT``)."""
    tree = descendants(root)
    roles: dict[int, str] = {}
    for pid in tree:
        cmd = command_line(pid)
        role = next((piece for piece in DAGSTER_ROLES if piece in cmd), None)
        if role is not None:
            roles[pid] = role
    found: dict[int, tuple[str, int]] = {}
    for pid, role in roles.items():
        parent = tree[pid]
        expected = ROLE_PARENT.get(role)
        if (parent == root) if expected is None else (roles.get(parent) == expected):
            found[pid] = (role, parent)
    return found


class GraphQL:
    """The webserver's GraphQL API (the one the UI uses), over plain HTTP."""

    def __init__(self, url: str, timeout_s: float = 180.0) -> None:
        if not url.startswith("http://"):
            raise ValueError(f"the webserver's GraphQL URL must be http://, not {url!r}")
        self.url = url
        self.timeout_s = timeout_s

    def query(self, query: str, variables: dict[str, object] | None = None) -> dict[str, object]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})  # noqa: S310 (http only)
        with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:  # noqa: S310
            answer = json.loads(resp.read())
        if answer.get("errors"):
            raise RuntimeError(f"GraphQL errors: {answer['errors']}")
        data = answer.get("data")
        if not isinstance(data, dict):
            raise RuntimeError(f"GraphQL answer without data: {answer}")
        return data

    def location_names(self) -> list[str]:
        data = self.query(
            "query { workspaceOrError { __typename ... on Workspace { locationEntries { name } } } }"
        )
        workspace = data["workspaceOrError"]
        assert isinstance(workspace, dict)
        return [str(e["name"]) for e in workspace.get("locationEntries", [])]

    def reload(self, location: str) -> str | None:
        """Reload ``location`` (the UI's "Reload"); None once it is loaded, else what went wrong."""
        data = self.query(
            "mutation Reload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {"
            " __typename ... on WorkspaceLocationEntry { loadStatus locationOrLoadError { __typename"
            " ... on PythonError { message } } } ... on PythonError { message } } }",
            {"name": location},
        )
        entry = data["reloadRepositoryLocation"]
        assert isinstance(entry, dict)
        loaded = entry.get("locationOrLoadError") or {}
        if (
            entry.get("__typename") == "WorkspaceLocationEntry"
            and loaded.get("__typename") == "RepositoryLocation"
        ):
            return None
        message = loaded.get("message") or entry.get("message") or entry.get("__typename")
        return str(message).strip().splitlines()[-1] if message else "not loaded"


class Supervisor:
    """Starts the children and keeps them running; ``watch`` returns only by ``GaveUp`` (a child
    that keeps dying) or by a stop signal's exception."""

    def __init__(self, say: Callable[[str], None], interval_s: float = 1.0) -> None:
        self.say = say
        self.interval_s = interval_s
        self.children: list[Child] = []
        self._dagster: Child | None = None
        self._graphql: GraphQL | None = None
        #: ``dagster dev``'s servers at the last look, and those that died since it (re)started.
        self._seen: dict[int, tuple[str, int]] = {}
        self._died_below: list[str] = []
        #: The code server behind the proxy: when its location is due a reload, and its backoff.
        self.code_server_backoff = Backoff()
        self._reload_at: float | None = None
        self._code_server_up_since = time.monotonic()

    def add(self, child: Child) -> Child:
        """Start ``child`` (unless it is started already) and watch it from now on."""
        if child.proc is None:
            child.launch()
        self.children.append(child)
        return child

    def add_dagster(self, child: Child, graphql: GraphQL) -> Child:
        """``dagster dev``: also watch its webserver, daemon and code server, and reload the code
        location through ``graphql`` when the code server dies."""
        self._dagster, self._graphql = child, graphql
        return self.add(child)

    def procs(self) -> list[subprocess.Popen[bytes]]:
        """The children's current processes (for ``stop_groups``)."""
        return [c.proc for c in self.children if c.proc is not None]

    def watch(self, also: Callable[[], None] | None = None) -> None:
        """Look every ``interval_s``, calling ``also`` each time too (raises ``GaveUp`` when a child
        keeps dying; ``also`` may raise to end the watch)."""
        while True:
            self.check()
            if also is not None:
                also()
            time.sleep(self.interval_s)  # the supervisor's own pace between two looks

    def check(self) -> None:
        """One look at every child (and at ``dagster dev``'s servers): restart what is due."""
        now = time.monotonic()
        self._look_below_dagster(now)
        for child in list(self.children):
            assert child.proc is not None
            if child.restart_at is None and child.proc.poll() is not None:
                self._died(child, now)
            if child.restart_at is not None and now >= child.restart_at:
                child.restart_at = None
                child.launch()
                assert child.proc is not None
                self.say(f"{restarted_line(child.name)} (pid {child.proc.pid})")
                if child is self._dagster:
                    self._seen, self._died_below, self._reload_at = {}, [], None
                if child.after_restart is not None:
                    child.after_restart()
        if self._reload_at is not None and now >= self._reload_at:
            self._reload_code_location()

    def _died(self, child: Child, now: float) -> None:
        assert child.proc is not None
        status = child.proc.returncode
        below = self._died_below if child is self._dagster else []
        cause = f"{' and '.join(below)} died, so " if below else ""
        # Whatever it left in its process group (a server it started) goes with it.
        stop_groups([child.proc], signal.SIGTERM, grace_s=5.0)
        delay = child.backoff.delay_after(now - child.started_at)
        if delay is None:
            why = (
                f"{cause}{child.name} exited (status {status}) and did not stay up after "
                f"{child.backoff.give_up_after} restarts in a row"
            )
            if child.essential:
                raise GaveUp(why)
            self.children.remove(child)
            self.say(f"spotify-assets dev: {why}; left stopped: {child.without_it}")
            return
        child.restart_at = now + delay
        self.say(
            f"spotify-assets dev: {cause}{child.name} exited (status {status}); restarting it in {delay:g} s "
            f"(restart {child.backoff.failures} in a row, at most {child.backoff.give_up_after})"
        )

    def _look_below_dagster(self, now: float) -> None:
        """Note what died among ``dagster dev``'s servers since the last look. A dead webserver or
        daemon takes ``dagster dev`` down (restarted as a child); a dead code server whose proxy
        lives on gets its location reloaded."""
        dagster = self._dagster
        if dagster is None or dagster.proc is None or dagster.proc.poll() is not None:
            return  # what died below it is in _died_below; its own death is seen by check()
        current = dagster_processes(dagster.proc.pid)
        roles = {role for role, _ in current.values()}
        # Once the webserver or the daemon has died, dagster dev stops the rest: no news there.
        serving = {"dagster_webserver", "dagster._daemon run"} <= roles and not self._died_below
        first_death = not self._died_below
        for pid, (role, parent) in self._seen.items():
            if pid in current:
                continue
            what = f"{DAGSTER_ROLES[role]} (pid {pid})"
            replaced = any(r == role and p == parent for r, p in current.values())
            if role == CODE_SERVER:
                # A reload starts the new code server before the old one goes: that one is replaced.
                if replaced or not serving or parent not in current or self._reload_at is not None:
                    continue
                delay = self.code_server_backoff.delay_after(now - self._code_server_up_since)
                if delay is None:
                    raise GaveUp(
                        f"{what} died again: it did not stay up after "
                        f"{self.code_server_backoff.give_up_after} restarts in a row"
                    )
                self._reload_at = now + delay
                self.say(
                    f"spotify-assets dev: {what} died; restarting it in {delay:g} s by reloading its code "
                    f"location (restart {self.code_server_backoff.failures} in a row, at most "
                    f"{self.code_server_backoff.give_up_after})"
                )
            elif role == CODE_SERVER_PROXY:
                if serving:
                    self.say(f"spotify-assets dev: {what} died; dagster dev restarts it")
            elif first_death:
                self._died_below.append(what)
                self.say(f"spotify-assets dev: {what} died; dagster dev stops, then it is restarted")
        self._seen = current

    def _reload_code_location(self) -> None:
        assert self._graphql is not None
        began = time.monotonic()
        self._reload_at = None
        try:
            failures = [(name, self._graphql.reload(name)) for name in self._graphql.location_names()]
            problem = "; ".join(f"{name}: {why}" for name, why in failures if why is not None)
        except (OSError, RuntimeError, KeyError, AssertionError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if not problem:
            self._code_server_up_since = time.monotonic()
            took = self._code_server_up_since - began
            self.say(f"{restarted_line(CODE_SERVER_NAME)} (its code location reloaded in {took:.0f} s)")
            return
        delay = self.code_server_backoff.delay_after(0.0)  # a failed reload counts as a death
        if delay is None:
            raise GaveUp(
                f"the code server could not be restarted: {self.code_server_backoff.give_up_after} "
                f"reloads of its code location in a row failed (last: {problem})"
            )
        self._reload_at = time.monotonic() + delay
        self.say(f"spotify-assets dev: reloading the code location failed ({problem}); again in {delay:g} s")
