"""Unit tests of the benchmark report's renderer (scripts/tools/bench_report.py)
and of scripts/bench's argument check. Run by ./scripts/test:

    python3 -m unittest discover -s scripts/tools -p 'bench_report_test.py'
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import bench_report
from bench_report_sections import SLOTS, ms, ops_verdict, verdict

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "bench")

# One figures file per slot, shaped as each tool writes it.
FIGURES = {
    "sync": {"settings": {"sockets": 1000, "users": 100}, "binaries": {"sync-gateway": "/t/release/sync-gateway"},
             "idle": {"rss_before_kib": 8340, "rss_idle_kib": 23872, "kib_per_socket": 15.5},
             "phases": [{"name": "spread", "writes": 300, "expected": 3000, "delivered": 3000,
                         "writes_per_s": 18.0, "deliveries_per_s": 181.0,
                         "latency_ms": {"p50": 9.04, "p99": 30.2, "max": 47.0},
                         "breakdown_ms": {"transaction_to_published": {"p50": 7.2},
                                          "published_to_first_socket": {"p50": 0.8}}}]},
    "recurring": {"settings": {"concurrency": 1}, "completions": 1000, "successors": 1000,
                  "per_s": 41.0, "latency_ms": {"p50": 61.2, "p90": 108.0, "p99": 99.5, "max": 263.2}},
    "notification": {"settings": {"reminders": 1000, "window_s": 60}, "sent": 1000, "not_sent": 0,
                     "sent_early": 0, "lateness_ms": {"min": 5, "p50": 10, "p99": 38, "max": 97}},
    "load": {"settings": {"concurrency": 4},
             "phases": [{"name": "create", "ok": 5923, "failed": 0, "per_s": 394.2,
                         "latency_ms": {"p50": 8.8, "p99": 31.0, "max": 74.4}}],
             "events": {"published": 11846, "expected": 11846, "per_s": 788.0, "drained_after_s": 0.1}},
    "ingest": {"events": 20000, "published_s": 6.74, "published_per_s": 2967.0, "stored_s": 21.9,
               "stored_per_s": 913.0},
    "startup": {"profile": "release", "functions": [{"name": "task-api", "ready_ms": 16.3, "rss_mib": 9.7},
                                                    {"name": "audit", "ready_ms": 12.0, "rss_mib": 10.2}]},
    "cpu": {"creates": 1000, "rate_per_s": 50, "window_s": 24.0,
            "processes": [{"name": "app-task-api", "raw_ms": 4000, "idle_ms": 100, "net_ms": 3900,
                           "net_ms_per_create": 3.9}],
            "total": {"raw_ms": 17000, "idle_ms": 1000, "net_ms_per_create": 16.0},
            "outside_task_api": {"net_ms_per_create": 12.1}, "restarted": [],
            "idle_window_s": 30.0, "idle_scale": 0.8, "consumed_after_s": 2.5, "idle_restarted": ["daprd-audit"]},
    "ops": {"tool": "verify_ops", "row": {"ops": "10,000", "changes": "9,635", "lost": "0", "duplicated": "0"}},
    "fanout": {"workload": {"sockets": 1000, "users": 100},
               "gateway": {"delivered": 3000, "latency_ms": {"p50": 9.1, "p99": 30.2}, "kib_per_socket": 15.0},
               "centrifugo": {"delivered": 3000, "latency_ms": {"p50": 8.0, "p99": 25.0}, "kib_per_socket": 50.0},
               "ratio": {"p50": 1.14, "p99": 1.21, "kib_per_socket": 0.3}},
}


class Run:
    """A run directory as scripts/bench leaves it."""

    def __init__(self, test, mode="full", finished=True):
        tmp = tempfile.TemporaryDirectory()
        test.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        bench_report.main(["start", self.dir, "--mode", mode, "--repo", HERE,
                           "--version", "daprd=1.18.2", "--setup", "cargo build --release --bins"])
        if finished:
            bench_report.main(["finish", self.dir])
        self.seq = 0

    def add(self, slot, figures=None, exit_code=0, output="", skipped=None, command=None, binaries=None):
        self.seq += 1
        base = os.path.join(self.dir, f"{self.seq:02d}-{slot}")
        with open(base + ".log", "w") as f:
            f.write(output)
        if figures is not None:
            with open(base + ".json", "w") as f:
                json.dump(figures, f)
        args = ["meta", self.dir, "--seq", str(self.seq), "--slot", slot, "--label", f"{slot} run",
                "--log", base + ".log"]
        args += ["--skipped", skipped] if skipped else ["--exit", str(exit_code), "--seconds", "3"]
        bench_report.main(args + ["--command", command or f"$CARGO_TARGET_DIR/release/{slot} --json x.json"])
        if binaries is not None:
            path = base + ".meta.json"
            with open(path) as f:
                meta = json.load(f)
            meta["binaries"] = binaries
            with open(path, "w") as f:
                json.dump(meta, f)

    def render(self):
        return bench_report.render(self.dir)


class RenderTest(unittest.TestCase):
    def test_every_figure_beside_its_target_with_its_command(self):
        run = Run(self)
        for slot, figures in FIGURES.items():
            run.add(slot, figures)
        page = run.render()
        summary = page.split("## Each figure beside its target")[1].split("\n## ")[0]
        self.assertIn("p50 9.0 ms, p99 30.2 ms | **not met**", summary)           # 30.2 > 25 ms
        self.assertIn("15.5 KiB | met", summary)                                  # ≤ 16 KiB
        self.assertIn("p50 61.2 ms, p99 99.5 ms | met", summary)                  # ≤ 100 ms
        self.assertIn("p50 10 ms, p99 38 ms | met", summary)                      # ≤ 1 s, signed ints
        self.assertIn("16.3 ms; 9.7 MiB | met", summary)
        self.assertIn("12.0 ms; 10.2 MiB | **not met**", summary)                 # RSS over 10 MiB
        self.assertIn("16.0 ms (12.1 ms outside task-api) | **not met**", summary)  # > 5 ms
        self.assertIn("913 events/s", summary)
        self.assertIn("create 394/s; 788 events/s published", summary)
        self.assertIn("p50 ×1.14, p99 ×1.21, memory per socket ×0.30", summary)
        self.assertIn("10,000 operations: 0 lost, 0 duplicated | met", summary)
        self.assertIn("- sync run: sync-gateway `/t/release/sync-gateway`", page)
        self.assertIn("window 24.0 s (consumers caught up 2.5 s after delivery); idle window 30.0 s before the "
                      "load, scaled ×0.80. Restarted during the idle window (baseline incomplete): daprd-audit.", page)
        self.assertNotIn("not measured in this run", page)
        for slot in FIGURES:
            self.assertIn(f"$CARGO_TARGET_DIR/release/{slot} --json x.json", page)
        self.assertIn("| cores |", page)
        self.assertIn("| kernel |", page)
        self.assertIn("daprd 1.18.2", page)
        self.assertIn("cargo build --release --bins", page)
        self.assertIn("[benchmarks-notes.md](benchmarks-notes.md)", page)
        self.assertNotIn("smoke-sized", page)

    def test_a_failed_tool_shows_its_reason_and_never_its_stale_figures(self):
        run = Run(self)
        # A figures file left from a failed attempt must not be shown.
        run.add("recurring", {"latency_ms": {"p99": 12345.6}}, exit_code=1,
                output="creating\nError: 3 of 1000 successors missing after 120 s\n\nStack backtrace:\n  1: _start\n")
        page = run.render()
        self.assertNotIn("12,346", page)
        self.assertIn("not measured in this run (the command exited with status 1: "
                      "`Error: 3 of 1000 successors missing after 120 s`)", page)
        self.assertIn("**Not measured in this run.**", page)

    def test_without_an_error_line_the_last_two_lines_are_the_reason(self):
        run = Run(self)
        run.add("ops", exit_code=1, output="| ops |\nproblems:\n- 3 × create: unexpected `400`\n\nresult: FAIL\n")
        self.assertIn("exited with status 1: `- 3 × create: unexpected '400' … result: FAIL`", run.render())

    def test_slots_without_a_run_or_left_out_say_why(self):
        run = Run(self)
        run.add("cpu", skipped="left out of this run (--only sync)")
        run.add("fanout", exit_code=0)  # exited 0 but wrote nothing
        page = run.render()
        self.assertIn("left out of this run (--only sync)", page)
        self.assertIn("the command wrote no figures", page)
        self.assertIn("no command was run for it", page)  # sync and the others
        self.assertEqual(page.count("## "), 2 + len(SLOTS))  # machine, summary, one per slot

    def test_missing_keys_render_as_dashes(self):
        run = Run(self)
        run.add("fanout", {"workload": {"sockets": 10}, "gateway": {}, "extra": [1, 2]})
        run.add("cpu", {"processes": [{"name": "x"}]})
        page = run.render()
        self.assertIn("p50 ×—, p99 ×—", page)
        self.assertIn("CPU per task create, whole stack (net of idle) | ≤ 5 ms (issue 13, release builds) | "
                      "— (— outside task-api) | —", page)

    def test_a_function_restarted_on_another_build_is_flagged(self):
        run = Run(self)
        path = os.path.join(run.dir, "run.json")
        with open(path) as f:
            info = json.load(f)
        info["binaries"] = {"task-api": "/t/release/task-api", "audit": "/t/release/audit"}
        info["binaries_end"] = {"task-api": "/t/debug/task-api", "audit": "/t/release/audit"}
        with open(path, "w") as f:
            json.dump(info, f)
        page = run.render()
        self.assertIn("**changed during the run** (another process restarted them): at the end | "
                      "task-api: `/t/debug/task-api` |", page)

    def test_quick_runs_say_so(self):
        run = Run(self, mode="quick")
        self.assertIn("smoke-sized", run.render())


# verify_ops's output when every create was refused (the bench's quick run).
OPS_FAILED = ("| ops | changes | lost | duplicated | gaps | unpublished | mismatched | errors |\n"
              "|---|---|---|---|---|---|---|---|\n"
              "| 101 | 0 | 0 | 0 | 0 | 0 | 0 | 101 |\n\n"
              "problems (first few):\n- 101 × create: unexpected 400 Bad Request\n\nresult: FAIL\n")


class FailedCheckTest(unittest.TestCase):
    def test_a_failed_loss_check_is_not_met_with_its_figures(self):
        run = Run(self)
        run.add("ops", {"tool": "verify_ops", "row": bench_report.parse_table(OPS_FAILED)},
                exit_code=1, output=OPS_FAILED)
        page = run.render()
        self.assertIn("101 operations: 0 lost, 0 duplicated, 101 errors (the checker failed, status 1) | "
                      "**not met**", page)
        self.assertNotIn("not measured in this run", page.split("## Concurrent task operations")[1].split("\n## ")[0])
        self.assertIn("| 101 | 0 | 0 | 0 | 0 | 0 | 0 | 101 |", page)
        self.assertIn("the checker failed (status 1): `- 101 × create: unexpected 400 Bad Request … result: FAIL`",
                      page)

    def test_a_loss_check_that_printed_no_table_is_not_measured(self):
        run = Run(self)
        run.add("ops", exit_code=1, output="Error: connection refused\n")
        self.assertIn("not measured in this run (the command exited with status 1: `Error: connection refused`)",
                      run.render())

    def test_other_tools_failures_are_still_not_measured(self):
        run = Run(self)
        run.add("load", FIGURES["load"], exit_code=1, output="Error: 3 requests failed\n")
        page = run.render()
        self.assertIn("API throughput | none set | not measured in this run", page)
        self.assertNotIn("394/s", page)

    def test_ops_verdicts(self):
        row = {"ops": "10,000", "lost": "0", "duplicated": "0", "gaps": "0", "errors": "0"}
        self.assertEqual(ops_verdict(row, 0)[1], "met")
        self.assertEqual(ops_verdict(dict(row, ops="500"), 0)[1], "— (fewer operations than the target's)")
        self.assertEqual(ops_verdict(dict(row, gaps="2"), 0), ("10,000 operations: 0 lost, 0 duplicated, 2 gaps",
                                                              "**not met**"))
        self.assertEqual(ops_verdict(row, 1)[1], "**not met**")               # the checker's own verdict
        self.assertEqual(ops_verdict({"ops": "10,000"}, 0)[1], "**not met**")  # no loss columns: not shown clean


class BuildsTest(unittest.TestCase):
    def tmp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        return tmp.name

    def test_builds_records_the_running_functions_and_the_tool(self):
        root = self.tmp()
        pids, release = os.path.join(root, "pids"), os.path.join(root, "target", "release")
        os.makedirs(pids)
        os.makedirs(release)
        tool = os.path.join(release, "verify_ops")
        with open(tool, "w") as f:
            f.write("binary")
        with open(os.path.join(pids, "app-task-api.pid"), "w") as f:
            f.write(str(os.getpid()))  # this interpreter stands in for a function
        with open(os.path.join(pids, "app-gone.pid"), "w") as f:
            f.write("999999999")
        out = os.path.join(root, "builds.json")
        bench_report.main(["builds", out, "--pids", pids, "--tool", tool])
        with open(out) as f:
            builds = json.load(f)
        self.assertEqual(builds["tools"]["verify_ops"]["profile"], "release")
        self.assertEqual(builds["tools"]["verify_ops"]["path"], tool)
        self.assertRegex(builds["tools"]["verify_ops"]["mtime"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
        self.assertEqual(builds["functions"]["task-api"]["path"], os.path.realpath(f"/proc/{os.getpid()}/exe"))
        self.assertEqual(builds["functions"]["gone"]["profile"], "unknown")
        # meta keeps them, and nothing changed during the measurement.
        run_dir = self.tmp()
        bench_report.main(["meta", run_dir, "--seq", "1", "--slot", "ops", "--command", "x", "--exit", "0",
                           "--builds", out, "--pids", pids])
        with open(os.path.join(run_dir, "01-ops.meta.json")) as f:
            meta = json.load(f)
        self.assertEqual(meta["binaries"]["tools"], builds["tools"])
        self.assertEqual(meta["binaries"]["changed"], {})

    def running(self, exe, pids):
        """Starts a copy of `sleep` as `exe`, recorded as app-fn's pid."""
        process = subprocess.Popen([exe, "30"])
        self.addCleanup(process.wait)
        self.addCleanup(process.kill)
        with open(os.path.join(pids, "app-fn.pid"), "w") as f:
            f.write(str(process.pid))
        for _ in range(200):  # until the exec has happened
            if os.path.realpath(f"/proc/{process.pid}/exe") == exe:
                break
            time.sleep(0.01)

    def test_a_binary_linked_again_is_not_a_rebuild_but_a_new_file_is(self):
        root = self.tmp()
        pids, exe, kept = (os.path.join(root, n) for n in ("pids", "fn", "deps-fn"))
        os.makedirs(pids)
        shutil.copy("/bin/sleep", exe)
        os.link(exe, kept)  # cargo's deps/ copy
        self.running(exe, pids)
        # What cargo does to an up-to-date binary on every build: the same
        # file, linked into its place again.
        os.unlink(exe)
        os.link(kept, exe)
        self.assertIsNone(bench_report.running_builds(pids)["fn"].get("note"))
        # A rebuild: another file in its place.
        os.unlink(exe)
        shutil.copy("/bin/sleep", exe)
        self.assertEqual(bench_report.running_builds(pids)["fn"]["note"], "rebuilt since it started")

    def test_only_the_executables_cargo_reports_count_as_built(self):
        lines = ['{"reason":"compiler-artifact","executable":"/t/release/verify_ops","fresh":true}',
                 '{"reason":"compiler-artifact","executable":null,"target":{"name":"e2e_tests"}}',
                 '{"reason":"compiler-message","message":{"rendered":"error[E0308]"}}',
                 'not json', '[1]',
                 '{"reason":"build-finished","success":false}']
        self.assertEqual(bench_report.executables(lines), ["/t/release/verify_ops"])

    def test_a_binary_changed_during_a_measurement(self):
        start = {"task-api": {"path": "/t/release/task-api", "mtime": "a"}, "audit": {"path": "/t/release/audit", "mtime": "a"}}
        end = {"task-api": {"path": "/t/debug/task-api", "mtime": "b"}, "audit": {"path": "/t/release/audit", "mtime": "a"},
               "new": {"path": "/t/debug/new"}}
        self.assertEqual(list(bench_report.builds_changed(start, end)), ["task-api"])
        rebuilt = dict(end, audit={"path": "/t/release/audit", "mtime": "c"})
        self.assertEqual(sorted(bench_report.builds_changed(start, rebuilt)), ["audit", "task-api"])

    def test_each_slot_says_which_build_ran(self):
        release = {"profile": "release", "path": "/t/release/x", "mtime": "2026-11-30 15:00:00 UTC"}
        debug = {"profile": "debug", "path": "/t/debug/sync-gateway", "mtime": "2026-11-30 14:00:00 UTC"}
        run = Run(self)
        run.add("cpu", FIGURES["cpu"], binaries={
            "tools": {"cpu_per_create": dict(release, path="/t/release/cpu_per_create")},
            "functions": {"task-api": release, "audit": release}, "changed": {}})
        run.add("fanout", FIGURES["fanout"], binaries={
            "tools": {}, "functions": {"task-api": release, "sync-gateway": debug},
            "changed": {"task-api": dict(debug, path="/t/debug/task-api")}})
        page = run.render()
        self.assertIn("- cpu run: tool cpu_per_create: release `/t/release/cpu_per_create`, built 2026-11-30 "
                      "15:00:00 UTC; the stack's functions: all release builds.", page)
        self.assertIn("sync-gateway: debug `/t/debug/sync-gateway`, built 2026-11-30 14:00:00 UTC", page)
        self.assertIn("**changed during this measurement** (another process restarted them): task-api → debug "
                      "`/t/debug/task-api`", page)


class UnfinishedRunTest(unittest.TestCase):
    def test_a_run_without_an_end_says_so(self):
        page = Run(self, finished=False).render()
        self.assertIn("**This run did not finish**", page)
        self.assertIn("to — (did not finish)", page)

    def test_a_finished_run_has_no_banner(self):
        self.assertNotIn("did not finish", Run(self).render())


class HelpersTest(unittest.TestCase):
    def test_verdict_at_the_limit_is_met(self):
        self.assertEqual(verdict("write_to_socket_p99", 25.0), "met")
        self.assertEqual(verdict("write_to_socket_p99", 25.01), "**not met**")
        self.assertEqual(verdict("write_to_socket_p99", None), "—")

    def test_ms_keeps_a_negative_lateness(self):
        self.assertEqual(ms(-3), "-3 ms")
        self.assertEqual(ms(-3.25), "-3.2 ms")
        self.assertEqual(ms(1234.5), "1,234 ms")
        self.assertEqual(ms("x"), "—")

    def test_parse_table_takes_the_first_row_by_column(self):
        text = ("wait…\n| ops | lost | duplicated |\n|---|---:|---|\n| 1,000 | 0 | 2 |\n| 5 | 5 | 5 |\n")
        self.assertEqual(bench_report.parse_table(text), {"ops": "1,000", "lost": "0", "duplicated": "2"})
        self.assertIsNone(bench_report.parse_table("| a | b |\nno rule\n"))

    def test_a_duplicate_fails_the_ops_target(self):
        run = Run(self)
        run.add("ops", {"row": {"ops": "1,000", "lost": "0", "duplicated": "2"}})
        self.assertIn("1,000 operations: 0 lost, 2 duplicated | **not met**", run.render())

    def test_parse_ingest_reads_the_bench_lines(self):
        text = ("     Running benches/ingest_throughput.rs\n"
                "published 5000 events with 32 publishers in 1.80s (2775/s)\n"
                "all 5000 stored in audit_logs after 5.31s: 941 events stored per second end to end\n")
        figures = bench_report.parse_ingest(text)
        self.assertEqual(figures["events"], 5000)
        self.assertEqual(figures["stored_per_s"], 941.0)
        self.assertEqual(figures["published_s"], 1.80)
        self.assertIsNone(bench_report.parse_ingest(text.splitlines()[1]))


class BenchArgumentsTest(unittest.TestCase):
    def bench(self, *args):
        return subprocess.run(["bash", BENCH, *args], capture_output=True, text=True, timeout=30)

    def test_help(self):
        done = self.bench("--help")
        self.assertEqual(done.returncode, 0)
        self.assertIn("usage: scripts/bench", done.stdout)

    def test_bad_arguments_are_refused_before_anything_runs(self):
        for args in (["--bogus"], ["--only", "sync,nope"], ["--profile", "fast"]):
            done = self.bench(*args)
            self.assertEqual(done.returncode, 2, args)
            self.assertIn("scripts/bench:", done.stderr)


if __name__ == "__main__":
    unittest.main()
