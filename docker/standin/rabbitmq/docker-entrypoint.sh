#!/bin/sh
# The official image's contract, for what docker-compose.yml uses:
#   RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS (default guest/guest).
set -e
{
    echo "loopback_users.guest = false"
    echo "listeners.tcp.default = 5672"
    echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
    echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
} > /etc/rabbitmq/rabbitmq.conf
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
exec "$@"
