"""Tests of scripts/tools/containerfile_stage.py, which runs one stage of a
Containerfile on the host (validate-deploy's image check)."""
import contextlib
import io
import pathlib
import sys
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "tools"))

import containerfile_stage as cs  # noqa: E402

CONTAINERFILE = """\
FROM base AS build
# a comment
WORKDIR /src
COPY a.txt b.txt out/
COPY dir dir
COPY a.txt renamed.txt
RUN cat out/a.txt out/b.txt dir/inner.txt renamed.txt \\
    > all.txt

FROM final
COPY --from=build /src/all.txt /srv/all.txt
"""


class StageTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        base = pathlib.Path(self.tmp.name)
        self.context, self.root = base / "context", base / "root"
        (self.context / "dir").mkdir(parents=True)
        (self.context / "a.txt").write_text("a\n")
        (self.context / "b.txt").write_text("b\n")
        (self.context / "dir" / "inner.txt").write_text("inner\n")

    def tearDown(self):
        self.tmp.cleanup()

    def run_tool(self, text, stage="build"):
        containerfile = self.context / "Containerfile"
        containerfile.write_text(text)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cs.main(["x", str(containerfile), stage, str(self.context), str(self.root)])
        return code, out.getvalue(), err.getvalue()

    def test_copies_as_docker_build_does_and_runs_in_the_workdir(self):
        code, out, err = self.run_tool(CONTAINERFILE)
        self.assertEqual(code, 0, err)
        self.assertEqual((self.root / "src/all.txt").read_text(), "a\nb\ninner\na\n")
        # A directory's contents, not the directory itself.
        self.assertTrue((self.root / "src/dir/inner.txt").exists())
        self.assertFalse((self.root / "src/dir/dir").exists())
        self.assertEqual(out, f"{self.root.resolve() / 'src/all.txt'}\t/srv/all.txt\n")

    def test_a_source_missing_from_the_context_fails(self):
        code, _, err = self.run_tool(CONTAINERFILE.replace("COPY dir dir", "COPY missing.txt ./"))
        self.assertEqual(code, 1)
        self.assertIn("COPY missing.txt: not in the build context", err)

    def test_a_failing_run_fails(self):
        code, _, err = self.run_tool(CONTAINERFILE.replace("COPY dir dir\n", ""))
        self.assertEqual(code, 1)
        self.assertIn("failed", err)

    def test_what_a_later_stage_copies_must_exist(self):
        code, _, err = self.run_tool(CONTAINERFILE.replace("/src/all.txt /srv", "/src/none.txt /srv"))
        self.assertEqual(code, 1)
        self.assertIn("COPY --from=build /src/none.txt: the stage did not produce it", err)

    def test_unsupported_instructions_are_refused_not_approximated(self):
        code, _, err = self.run_tool("FROM base AS build\nADD https://example.com/x /x\n")
        self.assertEqual(code, 1)
        self.assertIn("ADD is not supported here", err)
        code, _, err = self.run_tool("FROM base AS build\nCOPY --chown=1 a.txt /a\n")
        self.assertEqual(code, 1)
        self.assertIn("COPY --chown=1 is not supported here", err)

    def test_what_docker_build_refuses_is_refused(self):
        for copy, message in [
            ("COPY ../outside.txt ./", "outside the build context"),
            ("COPY /etc/hostname ./", "outside the build context"),
            ("COPY a.txt b.txt out", "several sources need a destination ending in /"),
            ("COPY *.txt out/", "globs and variables"),
        ]:
            code, _, err = self.run_tool(f"FROM base AS build\n{copy}\n")
            self.assertEqual(code, 1, copy)
            self.assertIn(message, err, copy)

    def test_env_takes_several_pairs_and_the_legacy_form(self):
        self.assertEqual(cs.environment('A=1 B="two words"'), {"A": "1", "B": "two words"})
        self.assertEqual(cs.environment("A some value"), {"A": "some value"})
        code, _, err = self.run_tool('FROM base AS build\nENV A=1 B="x y"\nRUN test "$A$B" = "1x y"\n')
        self.assertEqual(code, 0, err)

    def test_run_output_stays_off_the_copy_list(self):
        code, out, err = self.run_tool(CONTAINERFILE.replace("RUN cat", "RUN echo noise && cat"))
        self.assertEqual(code, 0, err)
        self.assertNotIn("noise", out)

    def test_a_platform_flag_keeps_the_stage_name(self):
        code, _, err = self.run_tool(CONTAINERFILE.replace("FROM base AS build", "FROM --platform=linux/amd64 base AS build"))
        self.assertEqual(code, 0, err)

    def test_an_unknown_stage_is_named(self):
        code, _, err = self.run_tool(CONTAINERFILE, stage="web")
        self.assertEqual(code, 1)
        self.assertIn("no stage 'web'", err)


if __name__ == "__main__":
    unittest.main()
