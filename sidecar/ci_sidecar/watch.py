"""`ci watch`: keep every client's agent context current in the database.

Listens on ``conversion_patterns_refreshed`` (``refresh_conversion_patterns`` notifies it
with ``{client_id, computed_at}``), and for each refreshed client: optionally fits the
weights here (``--fit-weights``, for servers without plpython3u), renders the agents'
context from the stored patterns and writes it to ``public.agent_contexts``, which
members read through ``public.get_agent_context``.

A dropped connection is re-opened (with a growing pause, at most 30 s); after a
reconnect every client whose context is older than its patterns is rendered again, since
notifications sent meanwhile were lost. SIGINT and SIGTERM stop it after the client in
hand. ``--once`` stops after the first notification handled, ``--timeout`` after so many
seconds (both for tests and cron-style runs).
"""
from __future__ import annotations

import json
import signal
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ci_sidecar.client import CiClient, Id
from ci_sidecar.context import AgentContext, build_context
from ci_sidecar.errors import CiError, from_psycopg
from ci_sidecar.fit import fit_weights
from ci_sidecar.wording import weight_reason

__all__ = ["CHANNEL", "WatchOptions", "WatchStats", "render_and_store", "stale_clients", "watch"]

CHANNEL = "conversion_patterns_refreshed"
APPLICATION_NAME = "ci watch"


def render_and_store(ci: CiClient, client_id: Id, *, include_stale: bool = False) -> AgentContext:
    """Render a client's context from its stored patterns and upsert it into public.agent_contexts."""
    info = ci.client_info(client_id)
    patterns = ci.get_conversion_patterns(client_id)
    icp = ci.execute(
        "select jsonb_build_object('industries', icp_industries, 'company_sizes', icp_company_sizes, "
        "'locations', icp_locations, 'titles', icp_titles) from public.clients where id = %s::uuid",
        (str(client_id),),
    )
    ctx = build_context(patterns.raw, client_name=info.name, client_icp=icp[0][0] if icp else {},
                        include_stale=include_stale)
    ci.execute(
        """
        insert into public.agent_contexts as ac (client_id, context, prompts, source_patterns, rendered_at, renderer)
        values (%s::uuid, %s, %s, %s, clock_timestamp(), 'ci_sidecar')
        on conflict (client_id) do update
          set context = excluded.context, prompts = excluded.prompts,
              source_patterns = excluded.source_patterns, rendered_at = excluded.rendered_at,
              renderer = excluded.renderer
        """,
        (str(client_id), Jsonb(ctx.to_json()), Jsonb(ctx.prompts()), Jsonb(ctx.source_patterns())),
    )
    return ctx


def stale_clients(ci: CiClient, only: Sequence[str] = ()) -> list[str]:
    """Clients whose stored context is missing or older than one of their patterns."""
    rows = ci.execute(
        """
        select c.id::text
        from public.clients as c
        where c.deleted_at is null
          and (cardinality(%s::uuid[]) = 0 or c.id = any(%s::uuid[]))
          and exists (select 1 from public.conversion_patterns as p where p.client_id = c.id)
          and not exists (
            select 1 from public.agent_contexts as ac
            where ac.client_id = c.id
              and ac.rendered_at >= (select max(p.computed_at) from public.conversion_patterns as p
                                     where p.client_id = c.id)
          )
        order by c.id
        """,
        (list(only), list(only)),
    )
    return [str(r[0]) for r in rows]


@dataclass
class WatchOptions:
    dsn: str
    fit: bool = False
    once: bool = False
    timeout: float | None = None
    catch_up: bool = False
    include_stale: bool = False
    clients: list[str] = field(default_factory=list)
    max_backoff: float = 30.0


@dataclass
class WatchStats:
    rendered: list[str] = field(default_factory=list)
    fitted: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connects: int = 0
    notifications: int = 0


def _handle(ci: CiClient, client_id: str, opts: WatchOptions, stats: WatchStats, log: Callable[[str], None]) -> None:
    try:
        if opts.fit:
            outcome = fit_weights(ci, client_id)
            stats.fitted.append(outcome.to_json())
            log(f"{client_id}: weights {'applied' if outcome.applied else 'kept'}: "
                f"{weight_reason(outcome.decision.get('reason', ''))}")
        ctx = render_and_store(ci, client_id, include_stale=opts.include_stale)
        stats.rendered.append(client_id)
        log(f"{client_id}: context rendered ({len(ctx.statements)} statements, {len(ctx.caveats)} caveats)")
    except CiError as exc:
        # One client's failure (deleted meanwhile, no access) never stops the watch.
        stats.errors.append(f"{client_id}: {exc}")
        log(f"{client_id}: {exc}")


def watch(opts: WatchOptions, log: Callable[[str], None] | None = None) -> WatchStats:
    """Run until a signal, ``once`` or ``timeout``; returns what was done."""
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    stats = WatchStats()
    stop = {"flag": False}
    deadline = None if opts.timeout is None else time.monotonic() + opts.timeout

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        stop["flag"] = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    backoff = 1.0
    try:
        while not stop["flag"] and (deadline is None or time.monotonic() < deadline):
            try:
                with psycopg.connect(opts.dsn, autocommit=True, application_name=APPLICATION_NAME,
                                     connect_timeout=10) as conn:
                    ci = CiClient(conn)
                    conn.execute(f"listen {CHANNEL}")
                    stats.connects += 1
                    backoff = 1.0
                    say(f"listening on {CHANNEL}" + (" (reconnected)" if stats.connects > 1 else ""))
                    if opts.catch_up or stats.connects > 1:
                        for cid in stale_clients(ci, opts.clients):
                            _handle(ci, cid, opts, stats, say)
                    while not stop["flag"] and (deadline is None or time.monotonic() < deadline):
                        # The generator holds the connection: collect first, then work on it.
                        notes = list(conn.notifies(timeout=0.5, stop_after=1))
                        for note in notes:
                            stats.notifications += 1
                            try:
                                cid = str(json.loads(note.payload).get("client_id"))
                            except (ValueError, AttributeError):
                                say(f"ignored a malformed notification: {note.payload!r}")
                                continue
                            if opts.clients and cid not in opts.clients:
                                continue
                            _handle(ci, cid, opts, stats, say)
                            if opts.once:
                                stop["flag"] = True
            except psycopg.OperationalError as exc:
                if stop["flag"]:
                    break
                if stats.connects == 0:
                    # Never connected: a wrong URL or a server that is down; say so and stop.
                    raise from_psycopg(exc) from None
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                say(f"connection lost ({first}); reconnecting in {backoff:.0f} s")
                slept = 0.0
                while slept < backoff and not stop["flag"]:
                    time.sleep(0.2)
                    slept += 0.2
                backoff = min(backoff * 2, opts.max_backoff)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    say(f"stopped: {len(stats.rendered)} contexts rendered, {len(stats.errors)} errors")
    return stats
