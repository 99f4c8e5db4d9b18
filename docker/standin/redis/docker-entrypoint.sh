#!/bin/sh
# The official image's rules: "-x ..." or "x.conf" means redis-server with those arguments.
set -e
case "$1" in
    -*|*.conf) set -- redis-server "$@" ;;
esac
exec "$@"
