#!/bin/sh
# Make the database on the first start (as the postgres image does), then run the server.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$password"
    "$bin/initdb" --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$password" \
        --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$password"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    "$bin/pg_ctl" --pgdata="$PGDATA" --wait --silent -o "-c listen_addresses=''" start
    "$bin/createdb" --username="$POSTGRES_USER" "$POSTGRES_DB"
    "$bin/pg_ctl" --pgdata="$PGDATA" --wait --silent stop
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*'
