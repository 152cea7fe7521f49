#!/usr/bin/env bash
# Makes sure a Docker engine answers, for the container tests (scripts/test.sh).
#   start  if `docker info` already answers, nothing; else starts dockerd
#          (Debian's docker.io, installed by scripts/setup.sh) in the
#          background, logging to /var/log/sagerun-dockerd.log, waits until
#          it answers (60 s at most) and records its pid, so that
#   stop   stops only an engine this script started.
# Needs root to start an engine.
set -euo pipefail
pid_file=/run/sagerun-dockerd.pid
case ${1:-} in
  start)
    docker info > /dev/null 2>&1 && exit 0
    if [ "$(id -u)" -ne 0 ]; then
      echo "dockerd: no Docker engine answers and starting one needs root" >&2
      exit 1
    fi
    dockerd > /var/log/sagerun-dockerd.log 2>&1 &
    echo $! > "$pid_file"
    for _ in $(seq 1 120); do
      docker info > /dev/null 2>&1 && { echo "dockerd: started (pid $(cat "$pid_file"))"; exit 0; }
      sleep 0.5
    done
    tail -n 20 /var/log/sagerun-dockerd.log >&2
    echo "dockerd: the engine did not answer within 60 s" >&2
    exit 1
    ;;
  stop)
    [ -f "$pid_file" ] || exit 0
    pid=$(cat "$pid_file")
    rm -f "$pid_file"
    kill "$pid" 2> /dev/null || exit 0
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2> /dev/null || { echo "dockerd: stopped"; exit 0; }
      sleep 0.5
    done
    echo "dockerd: the engine did not stop within 30 s" >&2
    exit 1
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
