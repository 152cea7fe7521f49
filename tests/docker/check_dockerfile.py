#!/usr/bin/env python3
"""Checks docker/Dockerfile for what this project needs of it, beyond what
hadolint checks in general: two stages whose bases are build arguments
(BUILDER_BASE, RUNTIME_BASE: the CPU variant passes its own) defaulting to
NVIDIA's CUDA images (devel to build, runtime to run) of the CUDA major
version the project builds with,
sources that exist, scripts it runs that exist and are executable, the
image's build steps done by docker/build.sh (which CI also runs), EFA pins
that are commit ids, and `sagerun` as the entrypoint with `train` as the
default argument. Exits 1 naming every problem.

Usage: check_dockerfile.py REPO_ROOT"""
import json
import os
import re
import shutil
import subprocess
import sys


def toolkit_version():
    """The CUDA toolkit's version from nvcc ("13.0"), or None without one."""
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    if not os.access(nvcc, os.X_OK):
        return None
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else None


def instructions(text):
    """(line number, keyword, arguments) with continuations joined."""
    out, buf, start = [], "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        keyword, _, args = buf.partition(" ")
        out.append((start, keyword.upper(), args.strip()))
        buf = ""
    return out


def main():
    root = sys.argv[1]
    text = open(os.path.join(root, "docker/Dockerfile")).read()
    steps = instructions(text)
    problems = []
    args = {m.group(1): m.group(2) for m in re.finditer(r"^ARG (\w+)=(\S+)", text, re.M)}

    def expand(value):
        """ARG defaults may name earlier ARGs: substitute until none is left."""
        for _ in range(10):
            value, n = re.subn(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), value)
            if not n or "${" not in value:
                break
        return value

    stages = [(n, a) for n, k, a in steps if k == "FROM"]
    images = [expand(a.split()[0]) for _, a in stages]
    for name in ("BUILDER_BASE", "RUNTIME_BASE"):
        if name not in args:
            problems.append(f"ARG {name} (the base a variant passes, docker/build.sh cpu) is missing")
    if len(images) != 2:
        problems.append(f"want 2 stages (build, runtime), found {len(images)}")
    else:
        if not re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-devel-\S+", images[0]):
            problems.append(f"the build stage must be NVIDIA's CUDA devel image with a full version, not {images[0]}")
        if not re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-runtime-\S+", images[1]):
            problems.append(f"the final stage must be NVIDIA's CUDA runtime image, not {images[1]}")
        if images[0].split(":")[1].split("-")[0] != images[1].split(":")[1].split("-")[0]:
            problems.append(f"build and runtime CUDA versions differ: {images[0]} vs {images[1]}")
        toolkit = toolkit_version()
        image_major = images[0].split(":")[1].split(".")[0]
        if toolkit and image_major != toolkit.split(".")[0]:
            problems.append(f"image CUDA {image_major} but the project builds with CUDA {toolkit} (nvcc)")

    for n, k, a in steps:
        if k in ("COPY", "ADD"):
            if k == "ADD":
                problems.append(f"line {n}: ADD (use COPY; downloads belong in pinned, checked scripts)")
            parts = [p for p in a.split() if not p.startswith("--")]
            if "--from=" in a:
                continue
            for source in parts[:-1]:
                if not os.path.exists(os.path.join(root, source)):
                    problems.append(f"line {n}: COPY source {source} does not exist")
        if k == "RUN":
            for script in re.findall(r"(?:^|\s)((?:docker|scripts)/[\w./-]+\.sh)", a):
                path = os.path.join(root, script)
                if not os.access(path, os.X_OK):
                    problems.append(f"line {n}: {script} is missing or not executable")
    runs = " ".join(a for _, k, a in steps if k == "RUN")
    if "docker/build.sh" not in runs:
        problems.append("the build stage must build with docker/build.sh (the steps CI runs)")
    entry = [a for _, k, a in steps if k == "ENTRYPOINT"]
    if not entry or json.loads(entry[-1]) != ["sagerun"]:
        problems.append(f'ENTRYPOINT must be ["sagerun"] in exec form, found {entry}')
    cmd = [a for _, k, a in steps if k == "CMD"]
    if not cmd or json.loads(cmd[-1]) != ["train"]:
        problems.append(f'CMD must be ["train"] (what SageMaker passes), found {cmd}')

    efa = open(os.path.join(root, "docker/build_efa.sh")).read()
    for name in ("LIBFABRIC_COMMIT", "AWS_OFI_NCCL_COMMIT"):
        m = re.search(name + r"=\$\{" + name + r":-([0-9a-f]*)\}", efa)
        if not m or not re.fullmatch(r"[0-9a-f]{40}", m.group(1)):
            problems.append(f"docker/build_efa.sh: {name} must default to a 40-digit commit id")

    for p in problems:
        print(f"docker/Dockerfile: {p}", file=sys.stderr)
    if not problems:
        print(f"docker/Dockerfile: {len(steps)} instructions; stages {' -> '.join(images)}; checks passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
