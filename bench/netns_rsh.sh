#!/bin/sh
# mpirun's remote shell for hosts that are network namespaces (see
# tests/netns/cluster.sh): "netns_rsh.sh algo-2 orted ..." runs orted in algo-2.
host=$1
shift
exec ip netns exec "$host" /bin/sh -c "$*"
