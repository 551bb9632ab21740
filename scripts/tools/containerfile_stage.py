"""Runs one stage of a Containerfile without a container engine.

No Docker engine runs here, so an image is never built by the checks; what
can still be checked is that a stage's COPY lines bring in everything its
RUN lines read. This reads the stage's WORKDIR, ENV, COPY and RUN
instructions, copies each COPY source from the build context into a
scratch root the way `docker build` does (a directory's contents, not the
directory; a missing source fails), runs each RUN with /bin/sh in the
stage's working directory under that root, and then checks that every
`COPY --from=STAGE` of a later stage finds its source. The base image is
the host: the stage's tools (node, npm) must be installed here.

A path inside the image maps to ROOT + path, so `WORKDIR /web` is
ROOT/web. ADD, ARG, USER and a COPY --from inside the stage are refused
rather than approximated.

What docker build refuses, this refuses too where it matters here: a
source outside the build context, several sources into a destination
without a trailing slash. It does not apply a .dockerignore (the
repository has none) or expand globs and $VARIABLES (refused).

Usage: containerfile_stage.py CONTAINERFILE STAGE CONTEXT ROOT
Prints each `COPY --from=STAGE` of the other stages as
`ROOT-PATH<TAB>IMAGE-DEST`. RUN output goes to standard error.
"""
import os
import pathlib
import shlex
import shutil
import subprocess
import sys


class StageError(Exception):
    pass


def instructions(text):
    """(keyword, argument) of every instruction, continuations joined."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, argument = line.partition(" ")
        out.append((keyword.upper(), argument.strip()))
    if pending:
        raise StageError("the file ends inside a continued line")
    return out


def stages(text):
    """{stage name: [(keyword, argument)]} in file order."""
    found, current = {}, None
    for keyword, argument in instructions(text):
        if keyword == "FROM":
            words = [w for w in argument.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"#{len(found)}"
            current = found.setdefault(name, [])
        elif current is None:
            raise StageError(f"{keyword} before the first FROM")
        else:
            current.append((keyword, argument))
    return found


def copy_arguments(argument):
    """(from stage or None, sources, destination) of a COPY."""
    words = shlex.split(argument)
    stage = None
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        if flag.startswith("--from="):
            stage = flag.removeprefix("--from=")
        else:
            raise StageError(f"COPY {flag} is not supported here")
    if len(words) < 2:
        raise StageError(f"COPY {argument}: needs a source and a destination")
    if any(c in word for word in words for c in "*?[$"):
        raise StageError(f"COPY {argument}: globs and variables are not supported here")
    sources, destination = words[:-1], words[-1]
    if len(sources) > 1 and not destination.endswith("/"):
        raise StageError(f"COPY {argument}: several sources need a destination ending in /")
    return stage, sources, destination


def environment(argument):
    """The pairs of an ENV: `A=1 B="two words"`, or the legacy `A value`."""
    words = shlex.split(argument)
    if words and "=" not in words[0]:
        return {words[0]: argument.partition(" ")[2].strip()}
    pairs = {}
    for word in words:
        name, equals, value = word.partition("=")
        if not equals:
            raise StageError(f"ENV {argument}: {word!r} is not NAME=VALUE")
        pairs[name] = value
    return pairs


def inside(root, workdir, path):
    """Where an image path (absolute, or relative to WORKDIR) is under root."""
    image_path = path if path.startswith("/") else f"{workdir.rstrip('/')}/{path}"
    return root / image_path.lstrip("/")


def copy_into(context, sources, destination, into_directory):
    """docker build's COPY: a file to a file (or into a directory when the
    destination ends with / or several sources are given), a directory's
    contents into the destination."""
    for source in sources:
        path = (context / source).resolve()
        if source.startswith("/") or not path.is_relative_to(context):
            raise StageError(f"COPY {source}: outside the build context")
        if not path.exists():
            raise StageError(f"COPY {source}: not in the build context ({context})")
        if path.is_dir():
            shutil.copytree(path, destination, dirs_exist_ok=True, symlinks=True)
        elif into_directory:
            destination.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination / path.name)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


def run_stage(steps, context, root, env):
    """Copies and runs the stage's instructions under root."""
    workdir = "/"
    for keyword, argument in steps:
        if keyword == "WORKDIR":
            workdir = argument if argument.startswith("/") else f"{workdir.rstrip('/')}/{argument}"
            inside(root, "/", workdir).mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            env.update(environment(argument))
        elif keyword == "COPY":
            stage, sources, destination = copy_arguments(argument)
            if stage is not None:
                raise StageError(f"COPY --from={stage} inside the stage is not supported here")
            target = inside(root, workdir, destination)
            copy_into(context, sources, target, destination.endswith("/"))
        elif keyword == "RUN":
            cwd = inside(root, "/", workdir)
            cwd.mkdir(parents=True, exist_ok=True)
            print(f"containerfile_stage: RUN {argument}", file=sys.stderr)
            # Its output to stderr: stdout carries the COPY --from list.
            done = subprocess.run(["/bin/sh", "-c", argument], cwd=cwd, env=env, stdout=2)
            if done.returncode != 0:
                raise StageError(f"RUN {argument}: failed")
        elif keyword in ("LABEL", "EXPOSE", "CMD", "ENTRYPOINT"):
            continue
        else:
            raise StageError(f"{keyword} is not supported here")


def copies_from(all_stages, stage):
    """Every `COPY --from=stage SOURCE... DEST` of the other stages."""
    out = []
    for name, steps in all_stages.items():
        for keyword, argument in steps:
            if keyword == "COPY" and name != stage:
                source_stage, sources, destination = copy_arguments(argument)
                if source_stage == stage:
                    out.extend((source, destination) for source in sources)
    return out


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    containerfile, stage, context, root = argv[1], argv[2], pathlib.Path(argv[3]), pathlib.Path(argv[4])
    try:
        all_stages = stages(pathlib.Path(containerfile).read_text())
        if stage not in all_stages:
            raise StageError(f"no stage {stage!r} in {containerfile} (stages: {', '.join(all_stages)})")
        root.mkdir(parents=True, exist_ok=True)
        run_stage(all_stages[stage], context.resolve(), root.resolve(), dict(os.environ))
        for source, destination in copies_from(all_stages, stage):
            path = inside(root.resolve(), "/", source)
            if not path.exists():
                raise StageError(f"COPY --from={stage} {source}: the stage did not produce it")
            print(f"{path}\t{destination}")
    except StageError as e:
        print(f"containerfile_stage: {containerfile} stage {stage}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
