#!/usr/bin/env bash
# Sets up everything and runs every test (README command 2; CI runs this):
#   1. the normal build and its CTest suite, including the parity test against
#      the real sagemaker-training toolkit, the mpi4py job and the hang
#      test's py-spy (all installed from PyPI into .venv-tests);
#   2. the same suite built with AddressSanitizer + UBSan;
#   3. the image recipe without a Docker engine (tests/docker/check_image_recipe.sh:
#      hadolint, the project's Dockerfile checks, docker/build.sh for real, the
#      installed tree, the EFA pin check) and the CreateTrainingJob examples;
#   4. the image with a real Docker engine (started here when none answers,
#      tests/docker/dockerd.sh, and stopped at the end): the CPU variant built
#      (docker/build.sh cpu) and run as SageMaker runs it
#      (tests/docker/test_containers.sh);
#   5. the libFuzzer targets over the config parsers, the rendezvous wire
#      format and the receiving side of sealed records, SAGERUN_FUZZ_SECONDS
#      (default 60) each, on seed corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/setup.sh build

toolkit_version=5.1.4
mpi4py_version=4.1.2
py_spy_version=0.4.3
venv=$root/.venv-tests
if ! "$venv/bin/python" -c "import sagemaker_training, mpi4py" 2>/dev/null || ! "$venv/bin/py-spy" --version \
    >/dev/null 2>&1; then
  echo "test: installing sagemaker-training==$toolkit_version, mpi4py==$mpi4py_version and" \
    "py-spy==$py_spy_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "sagemaker-training==$toolkit_version" \
    "mpi4py==$mpi4py_version" "py-spy==$py_spy_version"
fi
parity=(-DSAGERUN_PARITY_PYTHON="$venv/bin/python" -DSAGERUN_MPI4PY_PYTHON="$venv/bin/python"
        -DSAGERUN_PY_SPY_DIR="$venv/bin")

echo "== tests (build/)"
scripts/setup.sh build "${parity[@]}"
(cd build && ctest --output-on-failure)

echo "== tests under AddressSanitizer + UBSan (build-asan/)"
scripts/setup.sh build-asan -DSAGERUN_SANITIZE=ON "${parity[@]}"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure)

echo "== image recipe (build-image-check/)"
tests/docker/check_image_recipe.sh build-image-check

echo "== the image in a Docker engine (sagerun:cpu)"
tests/docker/dockerd.sh start
trap 'tests/docker/dockerd.sh stop' EXIT
start=$SECONDS
bash docker/build.sh cpu
echo "image: build took $((SECONDS - start)) s"
tests/docker/test_containers.sh build/launcher/sagerun sagerun:cpu

seconds=${SAGERUN_FUZZ_SECONDS:-60}
CC=clang cmake -S . -B build-fuzz -DSAGERUN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz_config fuzz_rendezvous fuzz_sealed >/dev/null

# fuzz TARGET SEEDS_SCRIPT WHAT: runs one libFuzzer target for $seconds.
fuzz() {
  local target=$1 seeds=$2 what=$3 dir=build-fuzz/$1
  echo "== fuzzing $what for ${seconds}s ($dir/)"
  rm -rf "$dir" && mkdir -p "$dir/findings"
  "$seeds" "$dir/seeds"
  if ! "build-fuzz/tests/$target" -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 \
      -artifact_prefix="$dir/findings/" "$dir/findings" "$dir/seeds" > "$dir/fuzz.log" 2>&1; then
    tail -n 60 "$dir/fuzz.log"
    echo "fuzz: $what crashed, leaked or hit undefined behaviour; reproducer in $dir/findings/" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units)' "$dir/fuzz.log" || true
  echo "fuzz: $what clean"
}
fuzz fuzz_config tests/fuzz/make_corpus.sh "the config parsers"
fuzz fuzz_rendezvous tests/fuzz/make_rendezvous_corpus.sh "the rendezvous message parser"
fuzz fuzz_sealed tests/fuzz/make_sealed_corpus.sh "the sealed records' receiving side"
