#!/bin/sh
# A throwaway PostgreSQL cluster for tests and benchmarks (issue 12).
#
#   tests/pg/cluster.sh start DIR PORT     initialise DIR/data if new, start, print the URL
#   tests/pg/cluster.sh stop DIR [MODE]    stop it (MODE: fast, the default, or immediate)
#
# The server listens on 127.0.0.1:PORT only (and a Unix socket in DIR), trusts every
# connection there (a test cluster: no passwords), and runs as the `postgres` user when
# this script runs as root (PostgreSQL refuses to run as root), as the current user
# otherwise. Starting an existing DIR again reuses its data (a restart). On success
# `start` prints one line, the connection URL:
#   postgres://postgres@127.0.0.1:PORT/postgres
# Binaries: the newest /usr/lib/postgresql/*/bin (Debian's `postgresql` package), else
# initdb and pg_ctl on PATH. Extra server settings may be passed in PGCLUSTER_OPTS
# (e.g. PGCLUSTER_OPTS='-c fsync=off').
set -eu

usage() {
    echo "usage: $0 start DIR PORT | stop DIR [fast|immediate]" >&2
    exit 2
}

bindir() {
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$found" ] && [ -x "$found/pg_ctl" ]; then
        echo "$found"
    elif command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
    else
        echo "$0: no PostgreSQL found (apt-get install -y postgresql)" >&2
        exit 1
    fi
}

# Runs a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2
bin=$(bindir)

case $cmd in
start)
    [ $# -eq 3 ] || usage
    port=$3
    case $port in '' | *[!0-9]*) echo "$0: bad port: $port" >&2; exit 2 ;; esac
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    cd /  # the owner may not be able to enter the caller's directory
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || { echo "$0: no postgres user to run as" >&2; exit 1; }
        chown postgres "$dir"
        chmod 700 "$dir"
    fi
    if ! as_owner test -w "$dir"; then
        echo "$0: $dir is not writable by the cluster's owner (is a parent directory closed?)" >&2
        exit 1
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        # C collation: text compares bytewise, as in SQLite (and CockroachDB).
        as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale \
            --no-sync >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
        # Trust the Unix socket and 127.0.0.1 only (initdb's default also trusts ::1 and
        # replication connections).
        as_owner sh -c "cat >'$dir/data/pg_hba.conf'" <<'EOF'
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF
    fi
    if as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        echo "$0: a cluster is already running in $dir" >&2
        exit 1
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 ${PGCLUSTER_OPTS:-}" \
        start >/dev/null; then
        echo "$0: the server did not start; the end of $dir/log:" >&2
        tail -n 20 "$dir/log" >&2 || true
        exit 1
    fi
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    [ $# -le 3 ] || usage
    mode=${3:-fast}
    dir=$(cd "$dir" 2>/dev/null && pwd) || { echo "$0: no directory $2" >&2; exit 1; }
    cd /
    case $mode in fast | immediate) ;; *) usage ;; esac
    if [ ! -f "$dir/data/postmaster.pid" ]; then
        echo "$0: no cluster running in $dir" >&2
        exit 1
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null
    ;;
*)
    usage
    ;;
esac
