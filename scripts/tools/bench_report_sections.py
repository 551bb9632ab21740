"""One renderer per measurement of docs/benchmarks.md (scripts/bench).

Each renderer takes the runs of its slot, a list of (meta, data) where
`meta` is what scripts/bench recorded (command, exit status, load) and
`data` the tool's own `--json` output (None when there is none), and
returns (summary rows, section Markdown). A run without figures renders
"not measured in this run" with its reason, never a number from elsewhere.
Keys are read tolerantly (a missing one shows as "—"), because three of
the tools belong to other engineers and may grow.
"""

# Each target as ARCHITECTURE.md ("Measured targets") or the issue that set
# it states it: (limit in the figure's unit, as written, where).
TARGETS = {
    "write_to_socket_p99": (25.0, "p99 ≤ 25 ms", "ARCHITECTURE.md; issue 11: at 1,000 sockets"),
    "kib_per_socket": (16.0, "≤ 16 KiB", "issue 11"),
    "completion_p99": (100.0, "p99 ≤ 100 ms", "ARCHITECTURE.md"),
    "reminder_p99": (1000.0, "p99 ≤ 1 s", "ARCHITECTURE.md"),
    "ready_ms": (20.0, "≤ 20 ms", "ARCHITECTURE.md"),
    "rss_mib": (10.0, "≤ 10 MiB", "ARCHITECTURE.md"),
    "cpu_ms_per_create": (5.0, "≤ 5 ms", "issue 13, release builds"),
    "ops": (10000, "10,000, none", "ARCHITECTURE.md"),
}


def get(data, *path):
    """data[path[0]][path[1]]..., or None when any step is missing."""
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def num(value, digits=1):
    """A number for a table: thousands separated, '—' when absent."""
    if value is None or isinstance(value, bool):
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def ms(value):
    """Milliseconds: one decimal under 100 ms, none above."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "—"
    if isinstance(value, int):
        return f"{value:,} ms"
    return f"{num(value, 1 if abs(value) < 100 else 0)} ms"


def verdict(key, value):
    """'met', '**not met**' or '—' for a figure against TARGETS[key]."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "—"
    return "met" if value <= TARGETS[key][0] else "**not met**"


def target_text(key):
    _, text, source = TARGETS[key]
    return f"{text} ({source})"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def not_measured(meta):
    """Why a run has no figures, in one line."""
    if meta is None:
        return "no command was run for it"
    if meta.get("skipped"):
        return meta["skipped"]
    if meta.get("exit") not in (0, None):
        lines = [l.strip() for l in (meta.get("log_tail") or "").splitlines() if l.strip()]
        # A Rust tool's error line, not the backtrace under it.
        errors = [l for l in lines if l.startswith(("Error:", "error:", "thread '"))]
        # Else the last two lines (a checker's last problem and its verdict).
        last = errors[0] if errors else " … ".join(lines[-2:]) or "no output"
        last = last.replace("`", "'")[:300]
        return f"the command exited with status {meta['exit']}: `{last}`"
    return "the command wrote no figures"


# Slots whose tool's non-zero exit is itself the result (a checker that
# found a loss): their figures are shown, and judged, whatever the status.
FAILURE_IS_RESULT = {"ops"}


def has_figures(meta, data):
    """Whether a run's figures are shown: it wrote them and either exited 0
    or is a checker whose failure is a result."""
    if data is None or meta.get("skipped"):
        return False
    return meta.get("exit") == 0 or (meta.get("slot") in FAILURE_IS_RESULT and meta.get("exit") is not None)


def commands(runs):
    """The exact commands of the runs, as one sh block."""
    lines = [m["command"] for m, _ in runs if m.get("command")]
    return "```sh\n" + "\n".join(lines) + "\n```" if lines else ""


def measured(runs):
    return [(m, d) for m, d in runs if has_figures(m, d)]


def missing_lines(runs):
    return [f"- {m.get('label', '?')}: not measured in this run: {not_measured(m)}."
            for m, d in runs if not has_figures(m, d)]


def build_text(binary):
    """One binary as recorded by scripts/bench: its build profile, path and
    when it was built."""
    if not isinstance(binary, dict):
        return f"`{binary}`"
    text = f"{binary.get('profile', '?')} `{binary.get('path', '?')}`"
    if binary.get("mtime"):
        text += f", built {binary['mtime']}"
    if binary.get("note"):
        text += f" ({binary['note']})"
    return text


def builds_lines(runs):
    """Which build each run of a slot ran: its tool, and the stack's
    functions (the same profile for all is said once); a function whose
    binary changed during the measurement is flagged."""
    lines = []
    for meta, _ in runs:
        bins = meta.get("binaries")
        if not isinstance(bins, dict) or meta.get("skipped"):
            continue
        parts = [f"tool {name}: {build_text(b)}" for name, b in sorted((bins.get("tools") or {}).items())]
        functions = bins.get("functions") or {}
        profiles = {b.get("profile") if isinstance(b, dict) else None for b in functions.values()}
        if len(profiles) == 1 and None not in profiles:
            parts.append(f"the stack's functions: all {next(iter(profiles))} builds")
        else:
            parts += [f"{name}: {build_text(b)}" for name, b in sorted(functions.items())]
        changed = bins.get("changed") or {}
        if changed:
            parts.append("**changed during this measurement** (another process restarted them): "
                         + "; ".join(f"{name} → {build_text(b)}" for name, b in sorted(changed.items())))
        lines.append(f"- {meta.get('label', '?')}: " + "; ".join(parts or ["no binary recorded"]) + ".")
    return ("Which build each measurement ran (recorded by scripts/bench):\n\n" + "\n".join(lines)) if lines else ""


def section(title, intro, runs, body):
    """A section: intro, commands, the figures, and the runs without."""
    parts = [f"## {title}", intro, commands(runs)]
    parts.append(body if measured(runs) else "**Not measured in this run.**")
    parts.append("\n".join(missing_lines(runs)))
    parts.append(builds_lines(runs))
    return "\n\n".join(p for p in parts if p)


def finish(summary, missing, title, intro, runs, body):
    """A renderer's result: its summary rows (one "not measured" row, as
    `missing` = (what, target), when no run gave figures) and its section."""
    if not summary:
        summary.append(summary_missing(*missing, runs))
    return summary, section(title, intro, runs, body)


def summary_missing(what, target, runs):
    reasons = [not_measured(m) for m, d in runs if not has_figures(m, d)]
    reason = "; ".join(dict.fromkeys(reasons))
    return [what, target, f"not measured in this run ({reason or 'no command was run for it'})", "—"]


def render_sync(runs):
    intro = ("`tests/src/bin/bench_sync.rs`: WebSockets on the stack's gateway (ten per user, "
             "header auth), the gateway's RSS before and 3 s after they open, then two write phases "
             "through task-api: **spread** (creates round robin over the users) and **hot** (every "
             "create for one user). Each event is timed on every socket of its user from the start "
             "of the API call; the breakdown comes from the outbox row's timestamps. A run in which "
             "the gateway restarted or a socket closed is refused.")
    rows, summary = [], []
    for meta, data in measured(runs):
        for phase in get(data, "phases") or []:
            lat = get(phase, "latency_ms") or {}
            rows.append([meta.get("label", ""), num(get(data, "settings", "sockets")), phase.get("name", "—"),
                         num(phase.get("writes_per_s"), 0), num(phase.get("deliveries_per_s"), 0),
                         f"{num(phase.get('delivered'))} of {num(phase.get('expected'))}",
                         ms(lat.get("p50")), ms(lat.get("p99")), ms(lat.get("max")),
                         ms(get(phase, "breakdown_ms", "transaction_to_published", "p50")),
                         ms(get(phase, "breakdown_ms", "published_to_first_socket", "p50"))])
            p99 = lat.get("p99")
            summary.append([f"API write → WebSocket receive, {meta.get('label', '')}, {phase.get('name', '')}",
                            target_text("write_to_socket_p99"), f"p50 {ms(lat.get('p50'))}, p99 {ms(p99)}",
                            verdict("write_to_socket_p99", p99)])
    if not summary:
        summary.append(summary_missing("API write → WebSocket receive p99", target_text("write_to_socket_p99"), runs))
    latency = table(["run", "sockets", "phase", "writes/s", "deliveries/s", "delivered", "p50", "p99", "max",
                     "commit → published p50", "published → first socket p50"], rows)
    mem_rows, mem_summary = [], []
    for meta, data in measured(runs):
        idle = get(data, "idle") or {}
        per = idle.get("kib_per_socket")
        mem_rows.append([meta.get("label", ""), num(get(data, "settings", "sockets")),
                         f"{num(idle.get('rss_before_kib'))} → {num(idle.get('rss_idle_kib'))} KiB",
                         f"{num(per)} KiB", verdict("kib_per_socket", per)])
        mem_summary.append([f"gateway memory per idle socket ({num(get(data, 'settings', 'sockets'))} sockets, "
                            f"{meta.get('label', '')})", target_text("kib_per_socket"), f"{num(per)} KiB",
                            verdict("kib_per_socket", per)])
    if not mem_summary:
        mem_summary.append(summary_missing("gateway memory per idle socket", target_text("kib_per_socket"), runs))
    memory = ("### Gateway memory per idle socket\n\n" + table(
        ["run", "sockets", "gateway RSS before → with idle sockets", "per idle socket", "target ≤ 16 KiB"], mem_rows))
    seen = "\n".join(f"- {m.get('label', '')}: " + "; ".join(f"{k} `{v}`" for k, v in sorted((get(d, "binaries") or {}).items()))
                     for m, d in measured(runs))
    body = ("### Latency, API write → WebSocket receive\n\n" + latency + "\n\n" + memory
            + "\n\nThe builds each run saw (read from the processes by the tool):\n\n" + seen)
    return summary + mem_summary, section("sync-gateway: API write → WebSocket receive, memory per socket",
                                          intro, runs, body)


def render_recurring(runs):
    intro = ("`tests/src/bin/bench_recurring.rs`: daily series for many users, then every first "
             "occurrence completed through `POST /api/tasks/{id}/complete` at a fixed concurrency; "
             "latency from just before the request to the successor's `created_at` (set in "
             "recurring's transaction). The whole path: task-api's commit, its relay, daprd, Kafka, "
             "recurring's daprd, recurring, PostgreSQL.")
    rows, summary = [], []
    for meta, data in measured(runs):
        lat = get(data, "latency_ms") or {}
        rows.append([num(get(data, "settings", "concurrency")), num(data.get("completions")),
                     num(data.get("successors")), num(data.get("per_s"), 0), ms(lat.get("p50")),
                     ms(lat.get("p90")), ms(lat.get("p99")), ms(lat.get("max"))])
        summary.append([f"completion → next occurrence committed, {num(get(data, 'settings', 'concurrency'))} "
                        "in flight", target_text("completion_p99"),
                        f"p50 {ms(lat.get('p50'))}, p99 {ms(lat.get('p99'))}",
                        verdict("completion_p99", lat.get("p99"))])
    body = table(["completions in flight", "completions", "successors", "completions/s", "p50", "p90", "p99",
                  "max"], rows)
    return finish(summary, ("completion → next occurrence p99", target_text("completion_p99")),
                  "recurring: completion → next occurrence committed", intro, runs, body)


def render_notification(runs):
    intro = ("`tests/src/bin/bench_notification.rs`: reminders due within one window (email), created "
             "through task-api ahead of time; lateness is a delivery record's `sent` time minus the "
             "firing's due time, signed (a send before its due time is shown, not clamped), exact "
             "nearest-rank quantiles. The whole path: outbox, Kafka, notification's view in the "
             "state store, a Dapr scheduler job per firing, the trigger, the SMTP send to mailpit.")
    rows, summary = [], []
    for meta, data in measured(runs):
        late = get(data, "lateness_ms") or {}
        settings = get(data, "settings") or {}
        rows.append([num(settings.get("reminders")), f"{num(settings.get('window_s'))} s",
                     num(data.get("sent")), num(data.get("not_sent")), num(data.get("sent_early")),
                     ms(late.get("min")), ms(late.get("p50")), ms(late.get("p99")), ms(late.get("max"))])
        summary.append([f"reminder lateness ({num(settings.get('reminders'))} reminders)",
                        target_text("reminder_p99"), f"p50 {ms(late.get('p50'))}, p99 {ms(late.get('p99'))}"
                        + (f", {num(data.get('not_sent'))} not sent" if data.get("not_sent") else ""),
                        verdict("reminder_p99", late.get("p99")) if not data.get("not_sent") else "**not met**"])
    body = table(["reminders", "due within", "sent", "not sent", "sent early", "min", "p50", "p99", "max"], rows)
    return finish(summary, ("reminder lateness p99", target_text("reminder_p99")),
                  "notification: reminder lateness", intro, runs, body)


def render_load(runs):
    intro = ("`tests/src/bin/load.rs`: creates for fresh users from N concurrent workers for a fixed "
             "time, then PATCHes of those tasks for the same time; latency per request, client-side. "
             "Publishing: the tool's users' outbox rows, from the first request until every event "
             "is sent. No target is set for throughput; it is the context of the latencies above.")
    rows, summary = [], []
    for meta, data in measured(runs):
        for phase in get(data, "phases") or []:
            lat = get(phase, "latency_ms") or {}
            rows.append([num(get(data, "settings", "concurrency")), phase.get("name", "—"), num(phase.get("ok")),
                         num(phase.get("failed")), num(phase.get("per_s"), 0), ms(lat.get("p50")),
                         ms(lat.get("p99")), ms(lat.get("max"))])
        events = get(data, "events") or {}
        summary.append([f"API throughput, concurrency {num(get(data, 'settings', 'concurrency'))}",
                        "none set", ", ".join(f"{p.get('name')} {num(p.get('per_s'), 0)}/s"
                                              for p in get(data, "phases") or [])
                        + f"; {num(events.get('per_s'), 0)} events/s published", "—"])
    events = [f"- concurrency {num(get(d, 'settings', 'concurrency'))}: {num(get(d, 'events', 'published'))} of "
              f"{num(get(d, 'events', 'expected'))} events published, {num(get(d, 'events', 'per_s'), 0)}/s; "
              f"outbox drained {num(get(d, 'events', 'drained_after_s'), 2)} s after the last request"
              for _, d in measured(runs)]
    body = table(["concurrency", "phase", "ok", "failed", "req/s", "p50", "p99", "max"], rows) + "\n\n" + "\n".join(events)
    return finish(summary, ("API throughput", "none set"),
                  "task-api: throughput and the outbox", intro, runs, body)


def render_ingest(runs):
    intro = ("`functions/audit/benches/ingest_throughput.rs`: task events published through task-api's "
             "daprd as the relay does (structured CloudEvents, 64 partition keys, 32 publishers), "
             "timed until `audit_logs` holds every one, then deleted. Path: daprd → Kafka → audit's "
             "daprd → audit → PostgreSQL. No target is set.")
    rows, summary = [], []
    for meta, data in measured(runs):
        rows.append([num(data.get("events")), f"{num(data.get('published_s'), 2)} s ({num(data.get('published_per_s'), 0)}/s)",
                     f"{num(data.get('stored_s'), 2)} s", num(data.get("stored_per_s"), 0)])
        summary.append(["audit ingest, stored per second end to end", "none set",
                        f"{num(data.get('stored_per_s'), 0)} events/s", "—"])
    body = table(["events", "published in", "all stored after", "stored per second"], rows)
    return finish(summary, ("audit ingest", "none set"),
                  "audit: ingest throughput through daprd and Kafka", intro, runs, body)


def render_startup(runs):
    intro = ("`scripts/bench-startup`: each function's binary started on a spare port against the "
             "running PostgreSQL, `/readyz` polled every 0.5 ms from one Python process (no process "
             "per probe), `VmRSS` read after two idle seconds; the median of the runs.")
    rows, summary = [], []
    for meta, data in measured(runs):
        for f in get(data, "functions") or []:
            rows.append([f.get("name", "—"), data.get("profile", "—"), ms(f.get("ready_ms")),
                         verdict("ready_ms", f.get("ready_ms")), f"{num(f.get('rss_mib'))} MiB",
                         verdict("rss_mib", f.get("rss_mib"))])
            summary.append([f"{f.get('name')}: start → ready; idle RSS",
                            f"{target_text('ready_ms')}; {target_text('rss_mib')}",
                            f"{ms(f.get('ready_ms'))}; {num(f.get('rss_mib'))} MiB",
                            "met" if verdict("ready_ms", f.get("ready_ms")) == verdict("rss_mib", f.get("rss_mib")) == "met"
                            else "**not met**"])
    body = table(["function", "build", "start → ready (median)", "≤ 20 ms", "idle RSS (median)", "≤ 10 MiB"], rows)
    return finish(summary, ("start → ready; idle RSS", target_text("ready_ms")),
                  "Function start to ready, idle memory", intro, runs, body)


def render_cpu(runs):
    intro = ("`tests/src/bin/cpu_per_create/`: utime+stime of every stack process (each function, "
             "each daprd, Kafka, the scheduler, PostgreSQL's processes and backends) sampled before "
             "N creates at a steady rate and after their delivery, once every consumer group has "
             "committed every record they produced (lag 0, read with Kafka's consumer-groups tool), "
             "minus an idle window taken before the load and scaled to the load window's length, "
             "so nothing the creates caused is subtracted as idle. Where the CPU goes and what each "
             "change bought: [cpu-per-create.md](cpu-per-create.md).")
    parts, summary = [], []
    for meta, data in measured(runs):
        rows = [[p.get("name", "—"), num(p.get("raw_ms"), 0), num(p.get("idle_ms"), 0), num(p.get("net_ms"), 0),
                 num(p.get("net_ms_per_create"), 3)] for p in get(data, "processes") or []]
        total = get(data, "total", "net_ms_per_create")
        outside = get(data, "outside_task_api", "net_ms_per_create")
        rows.append(["**total**", num(get(data, "total", "raw_ms"), 0), num(get(data, "total", "idle_ms"), 0), "",
                     f"**{num(total, 2)}**"])
        rows.append(["outside task-api", "", "", "", num(outside, 2)])
        note = (f"{num(data.get('creates'))} creates at {num(data.get('rate_per_s'), 0)}/s, window "
                f"{num(data.get('window_s'))} s (consumers caught up {num(data.get('consumed_after_s'))} s "
                f"after delivery); idle window {num(data.get('idle_window_s'))} s before the load, "
                f"scaled ×{num(data.get('idle_scale'), 2)}.")
        if data.get("restarted"):
            note += f" Restarted during the window (figures incomplete): {', '.join(map(str, data['restarted']))}."
        if data.get("idle_restarted"):
            note += (" Restarted during the idle window (baseline incomplete): "
                     f"{', '.join(map(str, data['idle_restarted']))}.")
        parts.append(note + "\n\n" + table(["process", "raw ms", "idle ms", "net ms", "net ms per create"], rows))
        summary.append(["CPU per task create, whole stack (net of idle)", target_text("cpu_ms_per_create"),
                        f"{ms(total)} ({ms(outside)} outside task-api)", verdict("cpu_ms_per_create", total)])
    return finish(summary, ("CPU per task create", target_text("cpu_ms_per_create")),
                  "CPU per task create, per process", intro, runs, "\n\n".join(parts))


def count(cell):
    """A count a tool printed ('1,234'), or None."""
    try:
        return int(str(cell).replace(",", ""))
    except ValueError:
        return None


# verify_ops's columns that must all be 0 for a clean run.
OPS_FAULTS = ("lost", "duplicated", "gaps", "unpublished", "mismatched", "errors")


def ops_verdict(row, exit_code):
    """The summary figure and verdict of one verify_ops table row: not met
    when the checker failed or any fault column is non-zero; met only with
    at least the target's number of operations."""
    faults = {k: count(row[k]) for k in OPS_FAULTS if k in row}
    figure = f"{row.get('ops', '—')} operations: {row.get('lost', '—')} lost, {row.get('duplicated', '—')} duplicated"
    figure += "".join(f", {row[k]} {k}" for k, n in faults.items()
                      if k not in ("lost", "duplicated") and n)
    if exit_code != 0:
        figure += f" (the checker failed, status {exit_code})"
    clean = exit_code == 0 and all(n == 0 for n in faults.values()) and "lost" in faults and "duplicated" in faults
    ops = count(row.get("ops", ""))
    if not clean:
        return figure, "**not met**"
    return figure, "met" if ops is not None and ops >= TARGETS["ops"][0] else "— (fewer operations than the target's)"


def render_ops(runs):
    intro = ("`tests/src/bin/verify_ops.rs`: concurrent creates, updates (some conditional), completes, "
             "reopens and deletes over many users, then a check from PostgreSQL (tasks, outbox, "
             "streams, audit rows) that every accepted change was published once, audited once and "
             "left no gap. It exits non-zero on any loss, duplicate or gap. The fault suite checks "
             "the same under crashes (`tests/faults`).")
    rows, summary, failed = [], [], []
    for meta, data in measured(runs):
        row = get(data, "row") or {}
        rows.append(row)
        figure, met = ops_verdict(row, meta.get("exit"))
        summary.append(["concurrent task operations, lost or duplicated", target_text("ops"), figure, met])
        if meta.get("exit") != 0:
            failed.append(f"- {meta.get('label', '?')}: the checker failed (status {meta.get('exit')}): "
                          f"{not_measured(meta).split(': ', 1)[-1]}")
    header = list(rows[0]) if rows else []
    body = table(header, [[r.get(h, "") for h in header] for r in rows]) if rows else ""
    if failed:
        body += "\n\n" + "\n".join(failed)
    return finish(summary, ("concurrent task operations, lost or duplicated", target_text("ops")),
                  "Concurrent task operations: lost or duplicated", intro, runs, body)


def render_fanout(runs):
    intro = ("`scripts/bench-centrifugo` (`tests/src/bin/bench_fanout`, `scripts/lib/centrifugo.sh`): "
             "the same sockets, users and writes on the sync gateway and on Centrifugo, both fed from "
             "the same `task-updates` records; latency from the start of the API call to each socket's "
             "receive; ratio = gateway / Centrifugo (below 1: the gateway is lower).")
    parts, summary = [], []
    for meta, data in measured(runs):
        workload = get(data, "workload") or {}
        rows = []
        for name in ("gateway", "centrifugo"):
            s = get(data, name) or {}
            rows.append([name, num(s.get("delivered")), ms(get(s, "latency_ms", "p50")), ms(get(s, "latency_ms", "p99")),
                         ms(get(s, "latency_ms", "max")), f"{num(s.get('kib_per_socket'))} KiB"])
        ratio = get(data, "ratio") or {}
        rows.append(["ratio gateway / Centrifugo", "", num(ratio.get("p50"), 2), num(ratio.get("p99"), 2), "",
                     num(ratio.get("kib_per_socket"), 2)])
        head = ", ".join(f"{k.replace('_', ' ')} {num(v)}" for k, v in workload.items())
        feed = f" Feed: {data['feed']}." if data.get("feed") else ""
        if get(data, "gateway", "binary"):
            feed += f" Gateway binary: `{get(data, 'gateway', 'binary')}`."
        parts.append(f"Workload: {head}.{feed}\n\n" + table(
            ["server", "delivered", "p50", "p99", "max", "memory per idle socket"], rows))
        summary.append(["gateway vs Centrifugo, same workload (ratio gateway / Centrifugo)", "report the ratio",
                        f"p50 ×{num(ratio.get('p50'), 2)}, p99 ×{num(ratio.get('p99'), 2)}, "
                        f"memory per socket ×{num(ratio.get('kib_per_socket'), 2)}", "—"])
    return finish(summary, ("gateway vs Centrifugo", "report the ratio"),
                  "sync-gateway against Centrifugo, side by side", intro, runs, "\n\n".join(parts))


# The report's sections, in order: slot name (scripts/bench's --only and
# each meta file's "slot") and its renderer.
SLOTS = [
    ("sync", render_sync),
    ("recurring", render_recurring),
    ("notification", render_notification),
    ("load", render_load),
    ("ops", render_ops),
    ("ingest", render_ingest),
    ("startup", render_startup),
    ("cpu", render_cpu),
    ("fanout", render_fanout),
]
