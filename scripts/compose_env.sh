#!/bin/sh
# Write the .env that docker-compose.yml reads: .env.example with fresh random values for the
# three required secrets (REDIS_PASSWORD, SWEEPQ_API_TOKEN, FLOWER_BASIC_AUTH), mode 600.
#
#   scripts/compose_env.sh            # ./.env next to docker-compose.yml
#   scripts/compose_env.sh PATH       # another file (then: docker compose --env-file PATH ...)
#
# An existing file is never overwritten: the secrets in it may already be in use.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/.env}
if [ -e "$out" ]; then
  echo "compose_env.sh: $out exists; edit it, or remove it to start over" >&2
  exit 2
fi
# hex only: the values go into URLs, where @ / : ? would need escaping
hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
umask 077
sed -e "s/^REDIS_PASSWORD=\$/REDIS_PASSWORD=$(hex 24)/" \
    -e "s/^SWEEPQ_API_TOKEN=\$/SWEEPQ_API_TOKEN=$(hex 24)/" \
    -e "s/^FLOWER_BASIC_AUTH=\$/FLOWER_BASIC_AUTH=admin:$(hex 12)/" \
    "$root/.env.example" > "$out"
echo "wrote $out (mode 600): the dashboard token is its SWEEPQ_API_TOKEN, Flower's login its FLOWER_BASIC_AUTH" >&2
