"""Parity of `sagerun env` with sagemaker-training's environment.

For every fixture ML root under tests/fixtures/ml, and for a few process
environments the toolkit reads (SAGEMAKER_PROGRAM, TRAINING_JOB_NAME,
SM_HP_MP_PARAMETERS, SAGEMAKER_TRAINING_MODULE), runs the real toolkit and
sagerun on identical copies of the tree and requires every variable the
toolkit sets to be present in sagerun's output with the same value. sagerun's
extra variables must be exactly the documented set.

usage: test_parity.py SAGERUN_BINARY TOOLKIT_PYTHON FIXTURES_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

# Variables sagerun adds on purpose (newer SageMaker drivers set them).
SAGERUN_EXTRAS = {
    "SM_HOST_COUNT", "SM_CURRENT_HOST_RANK", "SM_MASTER_ADDR", "SM_MASTER_PORT",
    "SM_INPUT_DATA_DIR", "SM_OUTPUT_FAILURE",
}

ENV_CASES = {
    "plain": {},
    "program-and-job-name": {"SAGEMAKER_PROGRAM": "entry.py", "TRAINING_JOB_NAME": "job-42",
                             "SAGEMAKER_TRAINING_MODULE": "sagemaker_pytorch_container.training:main"},
    "model-parallel-empty": {"SM_HP_MP_PARAMETERS": "{}"},
    "model-parallel-set": {"SM_HP_MP_PARAMETERS": '{"partitions": 2}'},
}

# Variables the toolkit would read that must not leak in from the caller.
SCRUB = ["SAGEMAKER_PROGRAM", "TRAINING_JOB_NAME", "SM_HP_MP_PARAMETERS", "SAGEMAKER_TRAINING_MODULE",
         "SAGERUN_ML_ROOT", "SAGERUN_NPROC_PER_HOST", "SAGERUN_MASTER_PORT", "SAGERUN_INTER_CONTAINER_ENCRYPTION"]


def run_case(sagerun, python, fixture, extra_env):
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for side in ("toolkit", "sagerun"):
            roots[side] = os.path.join(tmp, side)
            shutil.copytree(fixture, roots[side])
            # The toolkit creates <root>/code on import; give sagerun the same tree.
            os.makedirs(os.path.join(roots[side], "code"), exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in SCRUB}
        env.update(extra_env)
        ref = subprocess.run([python, os.path.join(os.path.dirname(__file__), "toolkit_env.py")],
                             env=dict(env, SAGEMAKER_BASE_DIR=roots["toolkit"]), capture_output=True,
                             text=True, check=True)
        ours = subprocess.run([sagerun, "env", "--format", "json", "--ml-root", roots["sagerun"]],
                              env=env, capture_output=True, text=True, check=True)
        expected = json.loads(ref.stdout.replace(roots["toolkit"], "<ROOT>"))
        actual = json.loads(ours.stdout.replace(roots["sagerun"], "<ROOT>"))["env"]
    problems = []
    for key in sorted(expected):
        if key not in actual:
            problems.append(f"missing {key} (toolkit: {expected[key]!r})")
        elif actual[key] != expected[key]:
            problems.append(f"{key}:\n    toolkit: {expected[key]}\n    sagerun: {actual[key]}")
    extra = set(actual) - set(expected)
    if extra != SAGERUN_EXTRAS:
        problems.append(f"extra variables {sorted(extra)} differ from the documented {sorted(SAGERUN_EXTRAS)}")
    return len(expected), problems


def main():
    sagerun, python, fixtures = sys.argv[1:4]
    passed = failed = 0
    for name in sorted(os.listdir(fixtures)):
        for case, extra_env in ENV_CASES.items():
            count, problems = run_case(sagerun, python, os.path.join(fixtures, name), extra_env)
            label = f"{name} [{case}]"
            if problems:
                failed += 1
                print(f"FAIL {label}:")
                for p in problems:
                    print("  " + p)
            else:
                passed += 1
                print(f"ok   {label}: all {count} toolkit variables identical")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
