#!/usr/bin/env python3
"""The README's configuration reference against the code: every environment
variable sagerun reads (getenv and the helpers that wrap it), every
SAGERUN_* name in the code, every command-line flag (the getopt tables of
launcher/ and of the bench options, runtime/bench/bench_options.c) and every hyperparameter (the built-in trainer's table, and the
sagemaker_* ones read like the toolkit) must be documented in README.md;
and every SAGERUN_* variable and --flag the reference table names must
exist in the code, so the reference cannot go stale either way.

Usage: check_config_reference.py REPO_ROOT"""
import glob
import os
import re
import sys


def sources(root, *dirs):
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(root, d, "**", "*.[ch]"), recursive=True)):
            yield path, open(path).read()


def main():
    root = sys.argv[1]
    readme = open(os.path.join(root, "README.md")).read()
    m = re.search(r"^## Configuration reference\n(.*?)^## ", readme, re.S | re.M)
    if not m:
        print("README.md: no \"## Configuration reference\" section", file=sys.stderr)
        return 1
    reference = m.group(1)
    code = dict(sources(root, "runtime", "launcher", "kernels"))
    text = "\n".join(code.values())

    env = set(re.findall(r'"(SAGERUN_[A-Z0-9_]+)"', text))
    env |= set(re.findall(r'(?:getenv|env_int|env_seconds)\("([A-Z][A-Z0-9_]*)"', text))
    env |= set(re.findall(r'(?:parse_int_env|require_int_env)\((?:"[^"]*", )?"([A-Z][A-Z0-9_]*)"', text))
    flags = set()
    for path, body in code.items():
        if path.startswith(os.path.join(root, "launcher")) or path.endswith("bench_options.c"):
            flags |= set(re.findall(r'\{"([a-z][a-z0-9-]+)", (?:required|no|optional)_argument', body))
    flags.discard("mode")  # bench-rank's own, set by the launcher
    train_config = code[os.path.join(root, "runtime", "train", "train_config.c")]
    hyper = set(re.findall(r"^\s+(?:FIELD|MODEL)\((\w+),", train_config, re.M)) | {"model"}
    hyper |= set(re.findall(r'\{"(\w+)", set_\w+\}', train_config))  # the worded ones (choose())
    hyper |= set(re.findall(r'"(sagemaker_[a-z_]+)"', text))

    problems = []
    for name in sorted(env):
        if f"`{name}`" not in readme and not re.search(rf"`[^`]*\b{name}\b[^`]*`", readme):
            problems.append(f"environment variable {name} is read by the code but not documented")
        elif name.startswith("SAGERUN_") and name not in reference:
            problems.append(f"{name} is documented, but not in the configuration reference")
    for flag in sorted(flags):
        if f"--{flag}" not in readme:
            problems.append(f"flag --{flag} is accepted by a command but not documented")
    for name in sorted(hyper):
        if f"`{name}`" not in readme:
            problems.append(f"hyperparameter {name} is read by the code but not documented")
    for name in sorted(set(re.findall(r"\bSAGERUN_[A-Z0-9_]+", reference))):
        if name not in env:
            problems.append(f"the reference names {name}, which the code does not read")
    for flag in sorted(set(re.findall(r"`(--[a-z][a-z0-9-]+)", reference))):
        if flag[2:] not in flags:
            problems.append(f"the reference names {flag}, which no command accepts")
    for p in problems:
        print(f"README.md: {p}", file=sys.stderr)
    if not problems:
        print(f"README.md: configuration reference covers {len(env)} variables, {len(flags)} flags, "
              f"{len(hyper)} hyperparameters")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
