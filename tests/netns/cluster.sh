#!/bin/sh
# A simulated SageMaker cluster on one machine: one network namespace per
# host, named as SageMaker names hosts (algo-1 .. algo-N), each with an eth0
# (a veth whose other end sits on a bridge in the namespace sagerun-switch)
# at 10.77.0.<i>, and its own /etc/hosts (ip netns exec mounts
# /etc/netns/<name>/hosts over /etc/hosts) that resolves every algo-j.
#
#   cluster.sh up N      create algo-1 .. algo-N (removing leftovers first)
#   cluster.sh down N    remove them
#   cluster.sh forget-leader I   drop algo-1 from algo-I's /etc/hosts (DNS lag)
#   cluster.sh learn-leader I    put it back (in place: the mount sees it)
# Packet captures run in sagerun-switch on the veth v-algo-<i>.
set -eu
action=$1
n=${2:-2}
switch=sagerun-switch

hosts_file() { # $1: host index, $2: whether algo-1 is listed
  printf '127.0.0.1 localhost\n'
  j=1
  while [ "$j" -le "$n" ]; do
    if [ "$j" -ne 1 ] || [ "$2" = yes ]; then printf '10.77.0.%d algo-%d\n' "$j" "$j"; fi
    j=$((j + 1))
  done
}

down() {
  i=1
  while [ "$i" -le 16 ]; do
    ip netns del "algo-$i" 2>/dev/null || true
    rm -rf "/etc/netns/algo-$i"
    i=$((i + 1))
  done
  ip netns del "$switch" 2>/dev/null || true
}

case $action in
up)
  down
  ip netns add "$switch"
  ip -n "$switch" link add br0 type bridge
  ip -n "$switch" link set br0 up
  ip -n "$switch" link set lo up
  i=1
  while [ "$i" -le "$n" ]; do
    ns=algo-$i
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 type veth peer name "v-$ns" netns "$switch"
    ip -n "$ns" addr add "10.77.0.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$switch" link set "v-$ns" master br0
    ip -n "$switch" link set "v-$ns" up
    mkdir -p "/etc/netns/$ns"
    hosts_file "$i" yes > "/etc/netns/$ns/hosts"
    i=$((i + 1))
  done
  ;;
down) down ;;
forget-leader)
  hosts_file "$3" no > "/etc/netns/algo-$3/hosts.new"
  cat "/etc/netns/algo-$3/hosts.new" > "/etc/netns/algo-$3/hosts" # same inode: stays mounted
  rm "/etc/netns/algo-$3/hosts.new"
  ;;
learn-leader)
  hosts_file "$3" yes > "/etc/netns/algo-$3/hosts.new"
  cat "/etc/netns/algo-$3/hosts.new" > "/etc/netns/algo-$3/hosts"
  rm "/etc/netns/algo-$3/hosts.new"
  ;;
*) echo "usage: cluster.sh up|down N | forget-leader|learn-leader N I" >&2; exit 2 ;;
esac
