#!/bin/sh
# The official postgres image's start-up, reduced to what compose.yaml uses: on an empty data
# directory, a cluster whose superuser is POSTGRES_USER (password POSTGRES_PASSWORD, required
# over TCP) with the database POSTGRES_DB; then PostgreSQL itself, as this process (exec), so
# that `stop` reaches it.
set -eu
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
socket_directory=/tmp

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?is required}"
    chmod 700 "$PGDATA"
    password_file=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
    initdb --username="$POSTGRES_USER" --pwfile="$password_file" \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_DB" != postgres ]; then
        # A server reachable over its socket only meanwhile, so nobody connects too early.
        pg_ctl --wait --silent -o "-c listen_addresses='' -c unix_socket_directories=$socket_directory" start
        createdb --host="$socket_directory" --username="$POSTGRES_USER" "$POSTGRES_DB"
        pg_ctl --wait --silent --mode=fast stop
    fi
fi

exec postgres -c listen_addresses='*' -c unix_socket_directories="$socket_directory" "$@"
