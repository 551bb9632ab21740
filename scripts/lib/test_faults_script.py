"""Unit tests of scripts/faults' own steps, with the stack's start functions
stubbed (no stack needed): python3 -m unittest discover -s scripts/lib -p 'test_*.py'

scripts/faults returns right after its functions when sourced, so each test
sources it in a bash with a throw-away TODO_EVENTS_RUN, replaces what would
start a real process, and runs one step:
- `restore` starts a function the suite killed on the build it ran (the
  `.faults-exe` that `kill` recorded), the others on TODO_EVENTS_PROFILE;
- `pids` lists every watched process, `-` for one that is not running;
- the suite is given the running task-api's JWT_AUDIENCE/JWT_ISSUER, from
  its own environment, not the caller's.
"""
import os
import pathlib
import subprocess
import tempfile
import unittest

REPO = pathlib.Path(__file__).resolve().parents[2]
FAULTS = REPO / "scripts" / "faults"


def bash(script, run_dir, env=None):
    """Runs `script` after sourcing scripts/faults with TODO_EVENTS_RUN=run_dir."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["TODO_EVENTS_RUN"] = str(run_dir)
    full_env["TODO_EVENTS_CACHE"] = str(pathlib.Path(run_dir) / "cache")
    full_env.pop("TODO_EVENTS_PROFILE", None)
    return subprocess.run(
        ["bash", "-c", f'source "{FAULTS}"\n{script}'],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Sleeper:
    """A live process (optionally with extra environment) whose pid a pid file can name."""

    def __init__(self, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(["sleep", "60"], env=full_env)
        self.pid = self.proc.pid

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class FaultsScriptTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.run_dir = pathlib.Path(self.tmp.name)
        self.pids = self.run_dir / "pids"
        self.pids.mkdir()
        self.sleepers = []

    def tearDown(self):
        for s in self.sleepers:
            s.stop()
        self.tmp.cleanup()

    def sleeper(self, env=None):
        s = Sleeper(env)
        self.sleepers.append(s)
        return s.pid

    def dead_pid(self):
        proc = subprocess.Popen(["true"])
        proc.wait()
        return proc.pid

    def test_restore_starts_a_killed_function_on_its_recorded_build(self):
        (self.pids / "app-audit.faults-exe").write_text(
            "/var/cache/todo-events/target/release/audit\n"
        )
        log = self.run_dir / "calls"
        stubs = f"""
functions_present() {{ echo task-api; echo audit; echo recurring; }}
pid_alive() {{ [[ $1 == app-recurring ]]; }}
dev_env_load() {{ :; }}
pg_ready() {{ :; }}
kafka_up() {{ :; }}
mailpit_up() {{ :; }}
scheduler_up() {{ :; }}
app_up() {{ echo "app_up $1 $TODO_EVENTS_PROFILE" >>"{log}"; }}
functions_up() {{ echo "functions_up $TODO_EVENTS_PROFILE" >>"{log}"; }}
cmd_restore
"""
        out = bash(stubs, self.run_dir)
        self.assertEqual(out.returncode, 0, out.stderr)
        calls = log.read_text().splitlines()
        self.assertIn("app_up audit release", calls)
        self.assertIn("app_up task-api debug", calls)
        self.assertNotIn("app_up recurring debug", calls, "it runs: left alone")
        self.assertEqual(calls[-1], "functions_up debug", "the daprds and the waits follow")
        self.assertFalse((self.pids / "app-audit.faults-exe").exists(), "used once")
        self.assertIn("down before", out.stderr)

    def test_pids_lists_every_watched_process(self):
        live = self.sleeper()
        postmaster = self.sleeper()
        (self.pids / "app-task-api.pid").write_text(f"{live}\n")
        (self.pids / "app-audit.pid").write_text(f"{self.dead_pid()}\n")
        pgdata = self.run_dir / "pgdata"
        pgdata.mkdir()
        (pgdata / "postmaster.pid").write_text(f"{postmaster}\n{pgdata}\n")
        out = bash(
            "functions_present() { echo task-api; echo audit; }\ncmd_pids", self.run_dir
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(
            out.stdout.splitlines(),
            [
                f"app-task-api {live}",
                "daprd-task-api -",
                "app-audit -",
                "daprd-audit -",
                "kafka -",
                "scheduler -",
                "mailpit -",
                f"postgres {postmaster}",
            ],
        )

    def test_the_suite_gets_the_running_task_apis_token_settings(self):
        task_api = self.sleeper({"JWT_AUDIENCE": "todo-stack"})
        (self.pids / "app-task-api.pid").write_text(f"{task_api}\n")
        script = """export_token_settings
echo "aud=${JWT_AUDIENCE-unset} iss=${JWT_ISSUER-unset}"
"""
        # The caller's shell says otherwise: the running process wins.
        out = bash(script, self.run_dir, {"JWT_AUDIENCE": "mine", "JWT_ISSUER": "mine"})
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "aud=todo-stack iss=unset")
        # No task-api running: neither is set.
        (self.pids / "app-task-api.pid").write_text(f"{self.dead_pid()}\n")
        out = bash(script, self.run_dir, {"JWT_AUDIENCE": "mine"})
        self.assertEqual(out.stdout.strip(), "aud=unset iss=unset")


if __name__ == "__main__":
    unittest.main()
