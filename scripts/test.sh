#!/usr/bin/env bash
# Sets up everything and runs every test (README command 2; CI runs this):
#   1. the normal build and its CTest suite, including the parity test against
#      the real sagemaker-training toolkit (installed from PyPI into .venv-parity);
#   2. the same suite built with AddressSanitizer + UBSan;
#   3. the libFuzzer target over the config parsers for SAGERUN_FUZZ_SECONDS
#      (default 60) on a seed corpus made from the fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/setup.sh build

toolkit_version=5.1.4
venv=$root/.venv-parity
if ! "$venv/bin/python" -c "import sagemaker_training" 2>/dev/null; then
  echo "test: installing sagemaker-training==$toolkit_version into $venv for the parity test"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "sagemaker-training==$toolkit_version"
fi
parity=(-DSAGERUN_PARITY_PYTHON="$venv/bin/python")

echo "== tests (build/)"
scripts/setup.sh build "${parity[@]}"
(cd build && ctest --output-on-failure)

echo "== tests under AddressSanitizer + UBSan (build-asan/)"
scripts/setup.sh build-asan -DSAGERUN_SANITIZE=ON "${parity[@]}"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure)

seconds=${SAGERUN_FUZZ_SECONDS:-60}
echo "== fuzzing the config parsers for ${seconds}s (build-fuzz/)"
CC=clang cmake -S . -B build-fuzz -DSAGERUN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz_config >/dev/null
rm -rf build-fuzz/seeds build-fuzz/findings && mkdir -p build-fuzz/findings
tests/fuzz/make_corpus.sh build-fuzz/seeds
if ! build-fuzz/tests/fuzz_config -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 \
    -artifact_prefix=build-fuzz/findings/ build-fuzz/findings build-fuzz/seeds > build-fuzz/fuzz.log 2>&1; then
  tail -n 60 build-fuzz/fuzz.log
  echo "fuzz: the config parsers crashed, leaked or hit undefined behaviour; reproducer in build-fuzz/findings/" >&2
  exit 1
fi
grep -E '^(Done|stat::number_of_executed_units)' build-fuzz/fuzz.log || true
echo "fuzz: clean"
