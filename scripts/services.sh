#!/usr/bin/env bash
# Start (or check) the local PostgreSQL and Mosquitto that tests and the demo use when they exist.
# Usage: scripts/services.sh start|status
set -uo pipefail
cmd=${1:-status}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
mqtt_up() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }

if [ "$cmd" = start ]; then
  if ! pg_up && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  if ! mqtt_up && command -v mosquitto >/dev/null 2>&1; then
    echo "starting Mosquitto"
    mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
    for _ in $(seq 1 30); do mqtt_up && break; sleep 1; done
  fi
fi
pg_up && echo "postgresql: up (127.0.0.1:5432)" || echo "postgresql: down (tests use an embedded server)"
mqtt_up && echo "mosquitto: up (127.0.0.1:1883)" || echo "mosquitto: down (tests use an embedded broker)"
pg_up && mqtt_up
