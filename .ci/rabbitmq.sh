#!/usr/bin/env bash
# Run a throw-away real RabbitMQ node (Debian's rabbitmq-server, 3.10.x) for
# compatibility tests. No systemd needed.
#
# Usage:
#   .ci/rabbitmq.sh install        apt-get install rabbitmq-server if missing
#   .ci/rabbitmq.sh start PORT     (installs if missing) start node on 127.0.0.1:PORT,
#                                  wait until it accepts AMQP connections
#   .ci/rabbitmq.sh stop           stop the node started by `start`
#   .ci/rabbitmq.sh status         exit 0 if our node is running
#   .ci/rabbitmq.sh logdir         print the node's log directory (stdout)
#   .ci/rabbitmq.sh node           print the node name used for HUTCH_RABBIT_DIR (stdout)
#
# Environment:
#   HUTCH_RABBIT_DIR      state/data/log dir   (default /tmp/hutch-rabbitmq)
#   HUTCH_RABBIT_NODE     node name            (default hutchtest@localhost for the default
#                         dir, hutchtest-<hash of the dir>@localhost for any other, so two
#                         nodes in different dirs never share a name: stop/ctl of one
#                         would otherwise reach the other)
#   HUTCH_RABBIT_TIMEOUT  startup timeout, s   (default 90)
#   HUTCH_RABBIT_KEEP_DATA=1  start on the previous run's data (benchmarks of restart time)
#   HUTCH_RABBIT_PLUGINS  opt-in plugins, comma-separated, e.g. rabbitmq_management
#                         (default: none, so the node boots fastest)
#   HUTCH_RABBIT_MGMT_PORT management HTTP port when rabbitmq_management is enabled
#                         (default: AMQP port + 10000, or a free port if that one is
#                         taken; the port used is written to $DIR/mgmt_port). A given port
#                         that is taken fails at once.
#   HUTCH_RABBIT_PROM_PORT prometheus port when rabbitmq_prometheus is enabled
#                         (default: AMQP port + 10020; RabbitMQ's own default is 15692)
#   HUTCH_RABBIT_TLS_DIR  a dir with ca.pem, server.pem, server-key.pem (python3 -m
#                         tests.tlscerts DIR makes them): the node also listens for AMQPS
#                         on HUTCH_RABBIT_TLS_PORT (default AMQP port + 1) with verify_peer,
#                         fail_if_no_peer_cert = false, ssl_handshake_timeout 2 s, and
#                         offers PLAIN AMQPLAIN EXTERNAL (rabbitmq_auth_mechanism_ssl is
#                         enabled): the setup tests/integration/tlshelp.py gives Hutch
#
#   .ci/rabbitmq.sh ctl ARGS...  run rabbitmqctl against our node (e.g. import_definitions)
#
# All diagnostics go to stderr; `start` prints nothing on stdout.
# The user guest/guest on vhost "/" is available (loopback only, as usual).
set -u -o pipefail

DIR="${HUTCH_RABBIT_DIR:-/tmp/hutch-rabbitmq}"
if [ -n "${HUTCH_RABBIT_NODE:-}" ]; then
    NODE="$HUTCH_RABBIT_NODE"
elif [ "$DIR" = /tmp/hutch-rabbitmq ]; then
    NODE=hutchtest@localhost
else
    NODE="hutchtest-$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)@localhost"
fi
TIMEOUT="${HUTCH_RABBIT_TIMEOUT:-90}"
PLUGINS="${HUTCH_RABBIT_PLUGINS:-}"
RBIN=/usr/lib/rabbitmq/bin

log() { echo "[rabbitmq.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_installed() { [ -x "$RBIN/rabbitmq-server" ] && [ -x "$RBIN/rabbitmqctl" ]; }

do_install() {
    if is_installed; then return 0; fi
    [ "$(id -u)" = 0 ] || die "rabbitmq-server is not installed and we are not root"
    local t0=$SECONDS
    log "installing rabbitmq-server via apt-get ..."
    # Keep the package from auto-starting the default node where possible.
    local added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && added_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q rabbitmq-server >&2; then
        apt-get update -q >&2 || true
        apt-get install -y -q rabbitmq-server >&2 || { [ $added_policy = 1 ] && rm -f /usr/sbin/policy-rc.d; die "apt-get install rabbitmq-server failed"; }
    fi
    [ $added_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    log "installed in $((SECONDS - t0))s"
}

# Our own environment for every rabbitmq command (isolated from /etc/rabbitmq).
rabbit_env() {
    export RABBITMQ_NODENAME="$NODE"
    export RABBITMQ_USE_LONGNAME=false
    export RABBITMQ_MNESIA_BASE="$DIR/mnesia"
    export RABBITMQ_LOG_BASE="$DIR/log"
    export RABBITMQ_PID_FILE="$DIR/rabbit.pid"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
    export RABBITMQ_ENABLED_PLUGINS="$PLUGINS"
    export RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config"
    export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"
    export HOME="${HOME:-/root}"
    export ERL_EPMD_ADDRESS=127.0.0.1
}

ctl() { rabbit_env; "$RBIN/rabbitmqctl" -n "$NODE" "$@"; }

node_pid() {
    local p
    [ -s "$DIR/rabbit.pid" ] || return 1
    p=$(cat "$DIR/rabbit.pid" 2>/dev/null) || return 1
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Can 127.0.0.1:PORT be bound now? (A bind, not a connect: a port held by a socket that
# does not listen counts as taken too.)
port_free() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket,sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
    else
        ! port_open "$1"
    fi
}

# PREFERRED if it is free, else the next free port above it (skipping the AMQP port and
# 25672, the default node's distribution port).
choose_port() {
    local p=$1 tries=0
    while [ $tries -lt 200 ]; do
        if [ "$p" -le 65000 ] && [ "$p" != 25672 ] && [ "$p" != "$2" ] && port_free "$p"; then
            echo "$p"; return 0
        fi
        p=$((p + 1)); [ "$p" -gt 65000 ] && p=41000
        tries=$((tries + 1))
    done
    return 1
}

# Is PID running? (Our launcher stays a zombie once it exits: kill -0 would say yes.)
alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ "$st" != Z* ]]
}

# The node printed BOOT FAILED (a listener it could not open, a bad config...): waiting
# longer cannot help.
boot_failed() {
    grep -qs "BOOT FAILED" "$DIR/log/startup_log" "$DIR/log/startup_err" "$DIR"/log/*.log
}

# Stop a default node ("rabbit@host") started by the package / systemd.
stop_system_node() {
    local host; host=$(hostname -s 2>/dev/null || hostname)
    if pgrep -f -- "-sname rabbit@" >/dev/null 2>&1 || pgrep -f -- "nodename rabbit@" >/dev/null 2>&1 \
       || pgrep -u rabbitmq beam >/dev/null 2>&1; then
        log "stopping system rabbitmq-server (default node rabbit@$host)"
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            systemctl stop rabbitmq-server >&2 2>&1 || true
        fi
        service rabbitmq-server stop >&2 2>&1 || true
        # Fallback: ask the node directly (as the rabbitmq user, with its cookie).
        if pgrep -u rabbitmq beam >/dev/null 2>&1; then
            /usr/sbin/rabbitmqctl -n "rabbit@$host" stop >&2 2>&1 || true
        fi
    fi
}

do_stop() {
    local pid
    pid=$(node_pid) || pid=""
    if [ -z "$pid" ] && ! ctl -q ping >/dev/null 2>&1; then
        log "node $NODE is not running"
        rm -f "$DIR/rabbit.pid" "$DIR/port"
        return 0
    fi
    log "stopping $NODE"
    if [ -n "$pid" ]; then
        ctl -q stop "$DIR/rabbit.pid" >&2 2>&1 || true
    else
        ctl -q stop >&2 2>&1 || true
    fi
    # Make sure it is really gone.
    if [ -n "$pid" ]; then
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "node did not stop, killing pid $pid"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$DIR/rabbit.pid" "$DIR/port"
}

do_start() {
    local port="${1:-}"
    [[ "$port" =~ ^[0-9]+$ ]] || die "usage: $0 start PORT"
    do_install
    local t0=$SECONDS
    stop_system_node

    # Already running on the requested port? Nothing to do.
    if node_pid >/dev/null && [ "$(cat "$DIR/port" 2>/dev/null)" = "$port" ] && port_open "$port"; then
        log "node $NODE already running on port $port"
        return 0
    fi
    do_stop

    if port_open "$port"; then
        die "port $port is already in use by something else"
    fi

    # Erlang distribution port: keep clear of the AMQP port and of 25672 (default node),
    # and take a free one: a taken one makes the node hang until the timeout.
    local dist=$((port + 20000))
    if [ $dist -gt 65000 ] || [ $dist = 25672 ]; then dist=$(( (port % 1000) + 41000 )); fi
    dist=$(choose_port "$dist" "$port") || die "no free port for the Erlang distribution"

    mkdir -p "$DIR"
    if [ -z "${HUTCH_RABBIT_KEEP_DATA:-}" ]; then
        rm -rf "$DIR/mnesia" "$DIR/log"  # fresh node every start (unless restarting with data)
    fi
    mkdir -p "$DIR/mnesia" "$DIR/log"
    if [ -n "$PLUGINS" ]; then
        echo "[${PLUGINS}]." > "$DIR/enabled_plugins"
    else
        echo "[]." > "$DIR/enabled_plugins"
    fi
    : > "$DIR/advanced.config"; echo "[]." > "$DIR/advanced.config"
    : > "$DIR/rabbitmq-env.conf"
    cat > "$DIR/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$port
distribution.listener.interface = 127.0.0.1
distribution.listener.port_range.min = $dist
distribution.listener.port_range.max = $dist
loopback_users.guest = true
log.file.level = info
log.console = false
EOF
    if [[ ",$PLUGINS," == *",rabbitmq_management,"* ]]; then
        local mgmt
        if [ -n "${HUTCH_RABBIT_MGMT_PORT:-}" ]; then
            mgmt=$HUTCH_RABBIT_MGMT_PORT
            port_free "$mgmt" || die "management port $mgmt is already in use by something else"
        else
            mgmt=$(choose_port $((port + 10000)) "$port") || die "no free port for the management API"
        fi
        echo "$mgmt" > "$DIR/mgmt_port"
        printf 'management.tcp.port = %s\nmanagement.tcp.ip = 127.0.0.1\n' "$mgmt" >> "$DIR/rabbitmq.conf"
        log "management API will listen on http://127.0.0.1:$mgmt/"
    fi
    if [ -n "${HUTCH_RABBIT_TLS_DIR:-}" ]; then
        local tls_port="${HUTCH_RABBIT_TLS_PORT:-$((port + 1))}" tdir
        tdir=$(cd "$HUTCH_RABBIT_TLS_DIR" && pwd) || die "no such dir: $HUTCH_RABBIT_TLS_DIR"
        for f in ca.pem server.pem server-key.pem; do
            [ -r "$tdir/$f" ] || die "HUTCH_RABBIT_TLS_DIR lacks $f (python3 -m tests.tlscerts DIR)"
        done
        port_free "$tls_port" || die "TLS port $tls_port is already in use by something else"
        cat >> "$DIR/rabbitmq.conf" <<EOF
listeners.ssl.1 = 127.0.0.1:$tls_port
ssl_options.cacertfile = $tdir/ca.pem
ssl_options.certfile = $tdir/server.pem
ssl_options.keyfile = $tdir/server-key.pem
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
ssl_handshake_timeout = 2000
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
EOF
        if [[ ",$PLUGINS," != *",rabbitmq_auth_mechanism_ssl,"* ]]; then
            PLUGINS="${PLUGINS:+$PLUGINS,}rabbitmq_auth_mechanism_ssl"
            echo "[${PLUGINS}]." > "$DIR/enabled_plugins"
        fi
        echo "$tls_port" > "$DIR/tls_port"
        log "AMQPS will listen on 127.0.0.1:$tls_port (certificates in $tdir)"
    fi
    if [[ ",$PLUGINS," == *",rabbitmq_prometheus,"* ]]; then
        local prom="${HUTCH_RABBIT_PROM_PORT:-$((port + 10020))}"
        printf 'prometheus.tcp.port = %s\nprometheus.tcp.ip = 127.0.0.1\n' "$prom" >> "$DIR/rabbitmq.conf"
        log "prometheus metrics will be on http://127.0.0.1:$prom/metrics"
    fi
    echo "$port" > "$DIR/port"

    rabbit_env
    export RABBITMQ_NODE_PORT="$port"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_DIST_PORT="$dist"
    log "starting $NODE on 127.0.0.1:$port (dist port $dist, dir $DIR)"
    # Run detached in its own session; its output goes to a file.
    ( cd "$DIR" && exec setsid nohup "$RBIN/rabbitmq-server" >"$DIR/log/startup_log" 2>"$DIR/log/startup_err" </dev/null ) &
    local launcher=$!

    # Wait for the AMQP port, giving up at once if the node reports BOOT FAILED or
    # its process is gone; then for the boot to finish (plugins included).
    local deadline=$((SECONDS + TIMEOUT)) why=""
    while ! port_open "$port"; do
        if boot_failed; then why="the node reported BOOT FAILED"; break; fi
        if ! alive "$launcher" && ! node_pid >/dev/null; then
            why="the node's process exited"; break
        fi
        if [ $SECONDS -ge $deadline ]; then why="it did not come up in ${TIMEOUT}s"; break; fi
        sleep 0.2
    done
    if [ -z "$why" ]; then
        ctl -q await_startup --timeout $((deadline > SECONDS ? deadline - SECONDS : 1)) >&2 2>&1 || true
        if boot_failed; then why="the node reported BOOT FAILED"; fi
    fi
    if [ -n "$why" ]; then
        log "RabbitMQ failed to start: $why; startup_err / log tail:"
        tail -n 30 "$DIR/log/startup_err" "$DIR/log/startup_log" "$DIR"/log/*.log >&2 2>/dev/null || true
        do_stop >/dev/null 2>&1 || true
        kill "$launcher" 2>/dev/null || true
        die "RabbitMQ failed to start ($why)"
    fi
    log "node $NODE accepting AMQP on 127.0.0.1:$port after $((SECONDS - t0))s (log: $DIR/log/$NODE.log)"
}

cmd="${1:-}"; shift || true
case "$cmd" in
    install) do_install ;;
    start)   do_start "$@" ;;
    stop)    do_stop ;;
    status)  node_pid >/dev/null && port_open "$(cat "$DIR/port" 2>/dev/null || echo 0)" ;;
    logdir)  echo "$DIR/log" ;;
    node)    echo "$NODE" ;;
    ctl)     ctl "$@" ;;
    *) echo "usage: $0 {install|start PORT|stop|status|logdir|node|ctl ARGS...}" >&2; exit 2 ;;
esac
