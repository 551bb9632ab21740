#!/usr/bin/env python3
"""Renders docs/benchmarks.md from the files of one `scripts/bench` run.

A run directory holds `run.json` (machine, commit, date, which binaries the
stack ran), and per measurement `NN-<slot>.meta.json` (the exact command,
its exit status and the tail of its output, written by `meta`) beside
`NN-<slot>.json` (the tool's own `--json` figures). Nothing else is read:
a figure this run did not produce is "not measured in this run", never
carried over. The hand-written analysis stays in docs/benchmarks-notes.md,
which the report links.

    bench_report.py start DIR --mode full|quick --profile release --repo ROOT
    bench_report.py binaries DIR --pids PID_DIR       which binary each function runs
    cargo build --message-format=json ... | bench_report.py built
                         the executables the build produced, one path a line
    bench_report.py builds FILE --pids PID_DIR [--tool PATH]...
                         the builds a measurement starts on (functions and its tool)
    bench_report.py meta DIR --seq N --slot S --label L --command TEXT
                         (--exit N --seconds S --log FILE | --skipped REASON)
                         [--builds FILE --pids PID_DIR]
    bench_report.py parse-ingest LOG OUT              the audit ingest bench's output as JSON
    bench_report.py parse-table LOG OUT --tool NAME   the first Markdown table row a tool printed
    bench_report.py render DIR --out docs/benchmarks.md
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_report_sections import SLOTS, num, table  # noqa: E402

NOTES = "benchmarks-notes.md"


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)
    os.replace(tmp, path)


def machine():
    """CPU model, cores, RAM and kernel, from /proc and uname."""
    cpu, ram_kib = None, None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
        with open("/proc/meminfo", encoding="utf-8") as f:
            ram_kib = next((int(l.split()[1]) for l in f if l.startswith("MemTotal:")), None)
    except OSError:
        pass
    return {"cpu": cpu or platform.processor() or "unknown", "cores": os.cpu_count(),
            "ram_gib": round(ram_kib / 1048576, 1) if ram_kib else None,
            "kernel": f"{platform.system()} {platform.release()}"}


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def git(repo, *args):
    try:
        return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cmd_start(a):
    os.makedirs(a.dir, exist_ok=True)
    status = git(a.repo, "status", "--porcelain", "--untracked-files=no")
    write_json(os.path.join(a.dir, "run.json"), {
        "started": now(), "mode": a.mode, "profile": a.profile, "machine": machine(),
        "commit": git(a.repo, "rev-parse", "--short=12", "HEAD"),
        "subject": git(a.repo, "log", "-1", "--format=%s"),
        "dirty": bool(status) if status is not None else None,
        "load_start": loadavg(), "versions": dict(v.split("=", 1) for v in a.version or []),
        "setup": a.setup or [],
    })


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def cmd_binaries(a):
    """Records which binary each stack function runs (debug or release)."""
    path = os.path.join(a.dir, "run.json")
    run = read_json(path)
    run[a.key] = {name: b["path"] + (f" ({b['note']})" if b.get("note") else "")
                  for name, b in running_builds(a.pids).items()}
    write_json(path, run)


def build_of(path, stat_path=None, note=None):
    """A binary as the page shows it: path, build profile (from the cargo
    target directory it is in) and modification time. `stat_path` is what
    to stat when it differs from `path` (/proc/PID/exe reaches a running
    binary even after a rebuild replaced its file)."""
    parts = path.split("/")
    profile = "release" if "release" in parts else "debug" if "debug" in parts else "other"
    try:
        mtime = datetime.datetime.fromtimestamp(os.stat(stat_path or path).st_mtime, datetime.timezone.utc)
        built = mtime.strftime("%Y-%m-%d %H:%M:%S UTC")
    except OSError:
        built = None
    found = {"path": path, "profile": profile, "mtime": built}
    if note:
        found["note"] = note
    return found


def running_builds(pids):
    """name -> build_of the binary each stack function runs now."""
    found = {}
    for pid_file in sorted(glob.glob(os.path.join(pids, "app-*.pid"))):
        name = os.path.basename(pid_file)[4:-4]
        try:
            with open(pid_file, encoding="utf-8") as f:
                exe_link = f"/proc/{f.read().strip()}/exe"
            exe = os.readlink(exe_link)
        except (OSError, ValueError) as e:
            found[name] = {"path": "unknown", "profile": "unknown", "mtime": None,
                           "note": getattr(e, "strerror", None) or str(e)}
            continue
        path = exe.removesuffix(" (deleted)")
        replaced = exe != path and not same_file(exe_link, path)
        found[name] = build_of(path, exe_link, "rebuilt since it started" if replaced else None)
    return found


def same_file(a, b):
    """Whether paths a and b are one file. /proc/PID/exe reads "(deleted)"
    once the name the process was started from is unlinked, even when the
    same file is linked there again: another build put a different file in
    its place (a `cargo test` or `cargo bench` build, whose dev-dependency
    features make other binaries), and a later one linked the unchanged
    binary back (cargo-util's link_or_copy skips only a link that is
    already the same file). Nothing was rebuilt then."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def executables(lines):
    """The executables cargo's `--message-format=json` output reports
    (compiler-artifact messages, fresh or rebuilt), as real paths; a unit
    that failed to build has none, though its old file is still there."""
    found = []
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("reason") == "compiler-artifact" and message.get("executable"):
            found.append(os.path.realpath(message["executable"]))
    return found


def cmd_built(_a):
    for path in executables(sys.stdin):
        print(path)


def cmd_builds(a):
    write_json(a.file, {"functions": running_builds(a.pids),
                        "tools": {os.path.basename(t): build_of(t) for t in a.tool or []}})


def builds_changed(start, end):
    """The functions whose binary at `end` is not the one at `start`
    (restarted on another build, or rebuilt, during a measurement)."""
    return {name: b for name, b in end.items()
            if name in start and (start[name].get("path"), start[name].get("mtime")) != (b.get("path"), b.get("mtime"))}


def tail(path, lines=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def cmd_meta(a):
    meta = {
        "seq": a.seq, "slot": a.slot, "label": a.label, "command": a.command,
        "exit": a.exit, "seconds": a.seconds, "skipped": a.skipped,
        "log_tail": tail(a.log) if a.log else "", "load": loadavg(),
    }
    if a.builds:
        try:
            builds = read_json(a.builds)
        except (OSError, ValueError) as e:
            builds = {"functions": {}, "tools": {}, "error": str(e)}
        if a.pids:
            builds["changed"] = builds_changed(builds.get("functions") or {}, running_builds(a.pids))
        meta["binaries"] = builds
    write_json(os.path.join(a.dir, f"{a.seq:02d}-{a.slot}.meta.json"), meta)


INGEST_PUBLISHED = re.compile(r"published (\d+) events with (\d+) publishers in ([\d.]+)s \(([\d.]+)/s\)")
INGEST_STORED = re.compile(r"all (\d+) stored in audit_logs after ([\d.]+)s: ([\d.]+) events stored per second")


def parse_ingest(text):
    """The two lines audit's ingest_throughput bench prints, as figures;
    None unless both are there."""
    published, stored = INGEST_PUBLISHED.search(text), INGEST_STORED.search(text)
    if not (published and stored):
        return None
    return {"tool": "ingest_throughput", "events": int(published.group(1)),
            "publishers": int(published.group(2)), "published_s": float(published.group(3)),
            "published_per_s": float(published.group(4)), "stored_s": float(stored.group(2)),
            "stored_per_s": float(stored.group(3))}


def cmd_parse_ingest(a):
    with open(a.log, encoding="utf-8", errors="replace") as f:
        figures = parse_ingest(f.read())
    if figures is None:
        sys.exit("the ingest bench printed no figures")
    write_json(a.out, figures)


def parse_table(text):
    """The first data row of the first Markdown table in `text`, as
    {column: cell}; None when there is no table with a row."""
    lines = [l.strip() for l in text.splitlines()]
    for i, line in enumerate(lines[:-2]):
        if line.startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1]) and lines[i + 2].startswith("|"):
            header = [c.strip() for c in line.strip("|").split("|")]
            cells = [c.strip() for c in lines[i + 2].strip("|").split("|")]
            if len(header) == len(cells):
                return dict(zip(header, cells))
    return None


def cmd_parse_table(a):
    with open(a.log, encoding="utf-8", errors="replace") as f:
        row = parse_table(f.read())
    if row is None:
        sys.exit(f"{a.tool} printed no table")
    write_json(a.out, {"tool": a.tool, "row": row})


def load_runs(directory):
    """slot -> [(meta, data or None)], in the order the runs were made."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.meta.json"))):
        meta = read_json(path)
        data_path = path[: -len(".meta.json")] + ".json"
        data = None
        if os.path.exists(data_path):
            try:
                data = read_json(data_path)
            except (OSError, ValueError) as e:
                meta = dict(meta, exit=meta.get("exit") or 1, log_tail=f"unreadable figures: {e}")
        runs.setdefault(meta.get("slot"), []).append((meta, data))
    return runs


def header(run):
    m = run.get("machine") or {}
    commit = f"`{run.get('commit') or 'unknown'}`" + (f" ({run['subject']})" if run.get("subject") else "")
    if run.get("dirty"):
        commit += ", with uncommitted changes in the working tree"
    binaries = run.get("binaries") or {}
    bins = "; ".join(f"{name}: `{exe}`" for name, exe in sorted(binaries.items())) or "not recorded"
    versions = ", ".join(f"{k} {v}" for k, v in sorted((run.get("versions") or {}).items())) or "not recorded"
    rows = [["CPU", m.get("cpu", "—")], ["cores", num(m.get("cores"))],
            ["RAM", f"{num(m.get('ram_gib'))} GiB"], ["kernel", m.get("kernel", "—")],
            ["commit", commit],
            ["run", f"{run.get('started', '—')} to {run.get('finished') or '— (did not finish)'}"],
            ["load average (1 min) at start / end",
             f"{num(run.get('load_start'), 2)} / {num(run.get('load_end'), 2)}"],
            ["the stack's functions ran from", bins], ["versions", versions]]
    end = run.get("binaries_end")
    if end is not None and end != binaries:
        changed = "; ".join(f"{name}: `{exe}`" for name, exe in sorted(end.items()) if binaries.get(name) != exe)
        rows.append(["**changed during the run** (another process restarted them): at the end", changed or "—"])
    intro = ["# Benchmarks", "",
             "<!-- Generated by scripts/bench from one run's measurements; edit "
             f"{NOTES} or scripts/tools/bench_report*.py, not this file. -->", "",
             f"Every figure below was measured in one run of `scripts/bench"
             f"{' --quick' if run.get('mode') == 'quick' else ''}`, "
             f"with {run.get('profile', 'release')} builds, next to the command that produced it. "
             f"Why the figures are what they are, what was tried and what is left is written by hand in "
             f"[{NOTES}]({NOTES}).", ""]
    if not run.get("finished"):
        intro += ["**This run did not finish**: no end time was recorded (it was stopped or failed before "
                  "its last step). Only the measurements it made are shown; what came after was never "
                  "measured, and nothing here is a result of a complete run.", ""]
    if run.get("mode") == "quick":
        intro += ["**A smoke-sized run (`--quick`)**: it shows that the command works; its sizes are too "
                  "small for the figures to speak for the targets.", ""]
    setup = "\n".join(run.get("setup") or [])
    intro += ["## The machine and the run", "", table(["", ""], rows), ""]
    if setup:
        intro += ["Before the measurements, from the repository root:", "", f"```sh\n{setup}\n```", ""]
    intro += [
              "The whole stack (PostgreSQL, Kafka, the Dapr scheduler, every function and its daprd) "
              "and the load tools share these cores; a load average above the core count means other "
              "work ran beside the measurement.", ""]
    return "\n".join(intro)


def render(directory):
    run = read_json(os.path.join(directory, "run.json"))
    runs = load_runs(directory)
    summary, sections = [], []
    for slot, renderer in SLOTS:
        rows, text = renderer(runs.get(slot, []))
        summary += rows
        sections.append(text)
    body = ["## Each figure beside its target", "",
            table(["what", "target", "this run", "met"], summary), ""]
    for text in sections:
        body += [text, ""]
    return header(run) + "\n" + "\n".join(body).rstrip() + "\n"


def cmd_render(a):
    text = render(a.dir)
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, a.out)


def cmd_finish(a):
    path = os.path.join(a.dir, "run.json")
    run = read_json(path)
    run.update(finished=now(), load_end=loadavg())
    write_json(path, run)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("dir")
    s.add_argument("--mode", choices=["full", "quick"], required=True)
    s.add_argument("--profile", default="release")
    s.add_argument("--repo", default=".")
    s.add_argument("--version", action="append", help="NAME=VERSION, repeated")
    s.add_argument("--setup", action="append", help="a command run before the measurements, repeated")
    s.set_defaults(func=cmd_start)
    s = sub.add_parser("binaries")
    s.add_argument("dir")
    s.add_argument("--pids", required=True)
    s.add_argument("--key", default="binaries", help="binaries (at the start) or binaries_end")
    s.set_defaults(func=cmd_binaries)
    s = sub.add_parser("meta")
    s.add_argument("dir")
    s.add_argument("--seq", type=int, required=True)
    s.add_argument("--slot", required=True, choices=[name for name, _ in SLOTS])
    s.add_argument("--label", default="")
    s.add_argument("--exit", type=int)
    s.add_argument("--seconds", type=float)
    s.add_argument("--log")
    s.add_argument("--skipped")
    s.add_argument("--command", required=True, help="the command as the report shows it")
    s.add_argument("--builds", help="the builds file written by `builds` before the measurement")
    s.add_argument("--pids", help="PID_DIR: compare the functions' binaries now with --builds")
    s.set_defaults(func=cmd_meta)
    s = sub.add_parser("built")
    s.set_defaults(func=cmd_built)
    s = sub.add_parser("builds")
    s.add_argument("file")
    s.add_argument("--pids", required=True)
    s.add_argument("--tool", action="append", help="a tool binary the measurement runs, repeated")
    s.set_defaults(func=cmd_builds)
    s = sub.add_parser("parse-ingest")
    s.add_argument("log")
    s.add_argument("out")
    s.set_defaults(func=cmd_parse_ingest)
    s = sub.add_parser("parse-table")
    s.add_argument("log")
    s.add_argument("out")
    s.add_argument("--tool", required=True)
    s.set_defaults(func=cmd_parse_table)
    s = sub.add_parser("finish")
    s.add_argument("dir")
    s.set_defaults(func=cmd_finish)
    s = sub.add_parser("render")
    s.add_argument("dir")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_render)
    a = p.parse_args(argv)
    a.func(a)


if __name__ == "__main__":
    main()
