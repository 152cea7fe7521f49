#!/usr/bin/env bash
# The training image run for real: a Docker engine, real containers with
# sagerun as PID 1, each host's /opt/ml a tree `sagerun sample` made,
# mounted as SageMaker mounts it. Covers:
#   train        `docker run IMAGE train` trains, writes the model, exits 0
#   two_hosts    two containers on a user-defined network as two hosts named
#                algo-N-c7.sagerun (not the bare algo-N), TLS on: both end 0,
#                the leader's log passes `sagerun metrics check`
#   stop         `docker stop -t 20` mid-training: checkpoint, exit 0 within
#                the grace; `docker start`: resumes, and the model equals bit
#                for bit that of a run never stopped
#   kill         `docker kill` mid-run, start again: resumes from the newest
#                intact checkpoint, the same model again
#   orphans      a rank that double-forks 200 sleeps: PID 1 adopts them and
#                no zombie is seen; when the rank ends (status 3) the
#                container ends within seconds with that status, though
#                orphans of other sessions still sleep
#   first_done   a host whose rank finishes first stays until the job ends:
#                stopping every container when the first one exits (as
#                compose's --abort-on-container-exit does) leaves the leader's
#                output complete and every status 0
#   hang         a rank blocked on a socket: PID 1 fails the job after
#                SAGERUN_HANG_TIMEOUT with the image's py-spy frames
# Ends with "N passed, N failed"; exits 1 if any failed.
# Usage: tests/docker/test_containers.sh SAGERUN [IMAGE]   (IMAGE: sagerun:cpu)
set -uo pipefail
sagerun=$(realpath "${1:?usage: $0 SAGERUN [IMAGE]}")
image=${2:-sagerun:cpu}
work=$(mktemp -d /var/tmp/sagerun-containers.XXXXXX)
label=sagerun-test=$$
p=sr$$- # container names carry the run's pid: leftovers of an interrupted run never collide
passed=0
failed=0

cleanup() {
  docker ps -aq --filter "label=$label" | xargs -r docker rm -f > /dev/null
  docker network ls -q --filter "label=$label" | xargs -r docker network rm > /dev/null
  rm -rf "$work"
}
trap cleanup EXIT

say() { echo "containers: $*"; }
fail() {
  echo "containers: FAILED: $*" >&2
  return 1
}

# tree NAME HOSTS [SAMPLE FLAGS...]: sample trees in $work/NAME, training the
# tiny model for $steps steps with a checkpoint every 10.
steps=200
tree() {
  local name=$1 hosts=$2
  shift 2
  "$sagerun" sample --out "$work/$name" --hosts "$hosts" "$@" > /dev/null || return 1
  local hp
  for hp in "$work/$name"/*/input/config/hyperparameters.json; do
    printf '{"model": "tiny", "vocab_size": "64", "seq_len": "64", "batch_size": "8", "max_steps": "%s", '\
'"learning_rate": "0.003", "warmup_steps": "5", "log_interval": "10", "val_interval": "0", '\
'"checkpoint_interval": "10", "seed": "7"}\n' "$steps" > "$hp"
  done
}

# container NAME TREE HOST [NETWORK] [-- ARGS]: starts HOST's container in
# the background (named NAME, host name HOST, /opt/ml its tree); ARGS
# replace `train`.
container() {
  local name=$1 dir=$2 host=$3 network=${4:-}
  shift 3
  [ $# -gt 0 ] && shift
  [ "${1:-}" = -- ] && shift
  local net=()
  [ -n "$network" ] && net=(--network "$network" --network-alias "$host")
  docker run -d --name "$p$name" --label "$label" --hostname "$host" "${net[@]}" -v "$dir/$host:/opt/ml" \
    "$image" "${@:-train}" > /dev/null
}

status_of() { docker inspect -f '{{.State.ExitCode}}' "$p$1"; }
logs_of() { docker logs "$p$1" > "$work/$1.log" 2>&1; cat "$work/$1.log"; }

# wait_log NAME TEXT SECONDS: until the container's output shows TEXT.
wait_log() {
  local until=$((SECONDS + $3))
  until docker logs "$p$1" 2>&1 | grep -q -- "$2"; do
    [ "$SECONDS" -lt "$until" ] || return 1
    sleep 0.2
  done
}

test_train() {
  tree train 1 --no-encryption || return 1
  container train-1 "$work/train" algo-1 || return 1
  local status
  status=$(docker wait "${p}train-1")
  logs_of train-1 > /dev/null
  [ "$status" = 0 ] || fail "docker run $image train exited $status: $(tail -5 "$work/train-1.log")" || return 1
  [ -s "$work/train/algo-1/model/model.bin" ] || fail "no model/model.bin" || return 1
  "$sagerun" metrics check "$work/train-1.log" > "$work/train-check.log" ||
    fail "metrics check: $(cat "$work/train-check.log")" || return 1
  say "train: exit 0, model $(stat -c %s "$work/train/algo-1/model/model.bin") bytes, metrics check passed"
}

test_two_hosts() {
  local suffix=-c7.sagerun
  tree two 2 --host-suffix "$suffix" || return 1
  docker network create --label "$label" sagerun-two-$$ > /dev/null || return 1
  container "algo-1$suffix" "$work/two" "algo-1$suffix" sagerun-two-$$ || return 1
  container "algo-2$suffix" "$work/two" "algo-2$suffix" sagerun-two-$$ || return 1
  local h status
  for h in 1 2; do
    status=$(docker wait "${p}algo-$h$suffix")
    logs_of "algo-$h$suffix" > /dev/null
    [ "$status" = 0 ] || fail "algo-$h$suffix exited $status: $(tail -5 "$work/algo-$h$suffix.log")" || return 1
  done
  grep -q "joined a job of 2 hosts and 2 ranks (rendezvous .*TLSv1.3" "$work/algo-1$suffix.log" ||
    fail "the leader did not join over TLS 1.3: $(grep joined "$work/algo-1$suffix.log")" || return 1
  "$sagerun" metrics check "$work/algo-1$suffix.log" > "$work/two-check.log" ||
    fail "metrics check of the leader's log: $(cat "$work/two-check.log")" || return 1
  say "two_hosts: algo-1$suffix and algo-2$suffix exit 0 over TLS 1.3; leader's metrics check passed"
}

# The model of a run of the same job that nobody stopped.
reference_model() {
  [ -s "$work/ref/algo-1/model/model.bin" ] && return 0
  tree ref 1 --no-encryption || return 1
  container ref-1 "$work/ref" algo-1 || return 1
  [ "$(docker wait "${p}ref-1")" = 0 ] || fail "the reference run failed: $(logs_of ref-1 | tail -5)"
}

test_stop() {
  reference_model || return 1
  tree stop 1 --no-encryption || return 1
  container stop-1 "$work/stop" algo-1 || return 1
  wait_log stop-1 "step=50 " 60 || fail "training never reached step 50: $(logs_of stop-1 | tail -5)" || return 1
  local start status took
  start=$(date +%s.%N)
  docker stop -t 20 "${p}stop-1" > /dev/null
  took=$(printf %.1f "$(echo "$(date +%s.%N) - $start" | bc)")
  status=$(status_of stop-1)
  logs_of stop-1 > /dev/null
  [ "$status" = 0 ] || fail "docker stop: exit $status: $(tail -5 "$work/stop-1.log")" || return 1
  [ "$(echo "$took < 20" | bc)" = 1 ] || fail "docker stop took ${took} s: the grace ran out" || return 1
  grep -q "stop requested (SIGTERM); stopped after step" "$work/stop-1.log" ||
    fail "no checkpoint on stop: $(tail -5 "$work/stop-1.log")" || return 1
  docker start -a "${p}stop-1" > "$work/stop-2.log" 2>&1
  status=$(status_of stop-1)
  [ "$status" = 0 ] || fail "the restart exited $status: $(tail -5 "$work/stop-2.log")" || return 1
  grep -q "resumed from" "$work/stop-2.log" || fail "the restart did not resume" || return 1
  cmp -s "$work/ref/algo-1/model/model.bin" "$work/stop/algo-1/model/model.bin" ||
    fail "the resumed model differs from the uninterrupted one" || return 1
  say "stop: docker stop -t 20 took ${took} s, exit 0 ($(grep -o 'stopped after step [0-9]*' "$work/stop-1.log")); \
restart resumed, model equal bit for bit"
}

test_kill() {
  reference_model || return 1
  tree kill 1 --no-encryption || return 1
  container kill-1 "$work/kill" algo-1 || return 1
  wait_log kill-1 "step=60 " 60 || fail "training never reached step 60" || return 1
  docker kill "${p}kill-1" > /dev/null
  docker start -a "${p}kill-1" > "$work/kill-2.log" 2>&1
  local status
  status=$(status_of kill-1)
  [ "$status" = 0 ] || fail "the restart after docker kill exited $status: $(tail -5 "$work/kill-2.log")" || return 1
  local resumed
  resumed=$(grep -o 'resumed from [^ ]* at step [0-9]*' "$work/kill-2.log") ||
    fail "the restart after docker kill did not resume: $(head -5 "$work/kill-2.log")" || return 1
  cmp -s "$work/ref/algo-1/model/model.bin" "$work/kill/algo-1/model/model.bin" ||
    fail "the model after docker kill and restart differs from the uninterrupted one" || return 1
  say "kill: $resumed; model equal bit for bit"
}

test_orphans() {
  tree orphans 1 --no-encryption || return 1
  container orphans-1 "$work/orphans" algo-1 "" -- train -- /bin/sh -c \
    'for i in $(seq 200); do (sleep 2 &); done; (setsid sleep 600 &); echo forked; sleep 5; date +%s.%N; exit 3' ||
    return 1
  wait_log orphans-1 forked 30 || fail "the rank never forked: $(logs_of orphans-1)" || return 1
  local adopted zombies worst=0 i
  adopted=$(docker exec "${p}orphans-1" ps -eo ppid=,comm= | awk '$1 == 1 && $2 == "sleep"' | wc -l)
  [ "$adopted" -ge 200 ] || fail "PID 1 adopted $adopted orphans, not 200" || return 1
  sleep 2.5 # the 200 have ended; the rank still runs
  for i in 1 2 3 4 5; do
    zombies=$(docker exec "${p}orphans-1" ps -eo stat= | grep -c '^Z')
    [ "$zombies" -gt "$worst" ] && worst=$zombies
    sleep 0.2
  done
  [ "$worst" = 0 ] || fail "$worst zombies inside the container" || return 1
  local status
  status=$(timeout 30 docker wait "${p}orphans-1")
  [ "$status" = 3 ] || fail "the container exited $status, not the rank's 3: $(logs_of orphans-1 | tail -3)" || return 1
  # From the rank's last words to the container's end (one clock: the host's kernel).
  local ended finished took
  ended=$(logs_of orphans-1 | grep -o '^\[algo-1:0\] [0-9]*\.[0-9]*$' | cut -d' ' -f2)
  finished=$(date -d "$(docker inspect -f '{{.State.FinishedAt}}' "${p}orphans-1")" +%s.%N)
  took=$(echo "$finished - $ended" | bc)
  [ -n "$ended" ] && [ "$(echo "$took < 3" | bc)" = 1 ] ||
    fail "the container ended ${took} s after its rank (want < 3 s)" || return 1
  say "orphans: $adopted adopted by PID 1, 0 zombies in 5 samples; the container ended $(printf %.2f "$took") s \
after its rank, with its status 3, though an orphan of another session still slept"
}

test_first_done() {
  tree first 2 --no-encryption || return 1
  docker network create --label "$label" sagerun-first-$$ > /dev/null || return 1
  local program='if [ "$RANK" = 0 ]; then sleep 5; echo complete > /opt/ml/model/out.txt; fi; echo "rank $RANK done"'
  container first-1 "$work/first" algo-1 sagerun-first-$$ -- train -- /bin/sh -c "$program" || return 1
  container first-2 "$work/first" algo-2 sagerun-first-$$ -- train -- /bin/sh -c "$program" || return 1
  # The orchestrator: when one container exits, stop the other.
  local first="" h
  until [ -n "$first" ]; do
    for h in 1 2; do
      [ "$(docker inspect -f '{{.State.Running}}' "${p}first-$h")" = false ] && first=$h && break
    done
    sleep 0.1
  done
  docker stop -t 10 "${p}first-$((3 - first))" > /dev/null
  for h in 1 2; do
    local status
    status=$(status_of first-$h)
    [ "$status" = 0 ] || fail "algo-$h exited $status (algo-$first exited first): $(logs_of first-$h | tail -4)" ||
      return 1
  done
  [ "$(cat "$work/first/algo-1/model/out.txt" 2> /dev/null)" = complete ] ||
    fail "algo-$first exited before the leader's rank 0 wrote its output" || return 1
  say "first_done: algo-$first exited first, after the job ended; the other was stopped; output complete, both 0"
}

# A program that hangs in the container (its rank blocked reading a socket
# nobody writes): sagerun, PID 1, fails it after SAGERUN_HANG_TIMEOUT with
# the rank's Python frames read by the image's py-spy (ptrace needs
# SYS_PTRACE in a container), the stacks in output/data/hang-algo-1.txt.
test_hang() {
  tree hang 1 --no-encryption || return 1
  docker run -d --name "${p}hang-1" --label "$label" --hostname algo-1 --cap-add SYS_PTRACE \
    -e SAGERUN_HANG_TIMEOUT=3 -v "$work/hang/algo-1:/opt/ml" "$image" train -- python3 -c \
    $'import socket\ns = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)\nc = socket.create_connection(s.getsockname())\ndef wait_for_peer():\n    c.recv(1)\nwait_for_peer()\n' \
    > /dev/null || return 1
  local status failure
  status=$(docker wait "${p}hang-1")
  logs_of hang-1 > /dev/null
  failure=$(cat "$work/hang/algo-1/output/failure" 2> /dev/null)
  [ "$status" = 1 ] || fail "exit $status: $(tail -5 "$work/hang-1.log")" || return 1
  [[ $failure == "hang: no rank of the job progressed for 3 s"*"rank 0 in wait_for_peer (<string>:5)"* ]] ||
    fail "the failure says: $failure" || return 1
  grep -q "by py-spy" "$work/hang/algo-1/output/data/hang-algo-1.txt" || fail "no py-spy stacks" || return 1
  say "hang: exit 1: $failure"
}

for t in train two_hosts stop kill orphans first_done hang; do
  start=$SECONDS
  if "test_$t"; then
    passed=$((passed + 1))
    say "$t passed ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    say "$t FAILED ($((SECONDS - start)) s)"
  fi
done
echo "containers: $passed passed, $failed failed"
[ "$failed" = 0 ]
