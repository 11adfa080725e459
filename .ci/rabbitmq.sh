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
#
# Environment:
#   HUTCH_RABBIT_DIR      state/data/log dir   (default /tmp/hutch-rabbitmq)
#   HUTCH_RABBIT_NODE     node name            (default hutchtest@localhost)
#   HUTCH_RABBIT_TIMEOUT  startup timeout, s   (default 90)
#   HUTCH_RABBIT_KEEP_DATA=1  start on the previous run's data (benchmarks of restart time)
#   HUTCH_RABBIT_PLUGINS  opt-in plugins, comma-separated, e.g. rabbitmq_management
#                         (default: none, so the node boots fastest)
#   HUTCH_RABBIT_MGMT_PORT management HTTP port when rabbitmq_management is enabled
#                         (default: AMQP port + 10000)
#   HUTCH_RABBIT_PROM_PORT prometheus port when rabbitmq_prometheus is enabled
#                         (default: AMQP port + 10020; RabbitMQ's own default is 15692)
#
#   .ci/rabbitmq.sh ctl ARGS...  run rabbitmqctl against our node (e.g. import_definitions)
#
# All diagnostics go to stderr; `start` prints nothing on stdout.
# The user guest/guest on vhost "/" is available (loopback only, as usual).
set -u -o pipefail

DIR="${HUTCH_RABBIT_DIR:-/tmp/hutch-rabbitmq}"
NODE="${HUTCH_RABBIT_NODE:-hutchtest@localhost}"
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

    # Erlang distribution port: keep clear of the AMQP port and of 25672 (default node).
    local dist=$((port + 20000))
    if [ $dist -gt 65000 ] || [ $dist = 25672 ]; then dist=$(( (port % 1000) + 41000 )); fi

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
        local mgmt="${HUTCH_RABBIT_MGMT_PORT:-$((port + 10000))}"
        printf 'management.tcp.port = %s\nmanagement.tcp.ip = 127.0.0.1\n' "$mgmt" >> "$DIR/rabbitmq.conf"
        log "management API will listen on http://127.0.0.1:$mgmt/"
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
    ( cd "$DIR" && setsid nohup "$RBIN/rabbitmq-server" >"$DIR/log/startup_log" 2>"$DIR/log/startup_err" </dev/null & )

    # Wait for the pid file, then for the boot to finish, then for the port.
    local deadline=$((SECONDS + TIMEOUT))
    while [ $SECONDS -lt $deadline ] && ! [ -s "$DIR/rabbit.pid" ]; do sleep 0.2; done
    if [ -s "$DIR/rabbit.pid" ]; then
        ctl -q wait --timeout "$TIMEOUT" "$DIR/rabbit.pid" >&2 2>&1 || true
    fi
    while [ $SECONDS -lt $deadline ] && ! port_open "$port"; do sleep 0.2; done
    if ! port_open "$port"; then
        log "node did not come up in ${TIMEOUT}s; startup_err / log tail:"
        tail -n 30 "$DIR/log/startup_err" "$DIR/log/startup_log" "$DIR"/log/*.log >&2 2>/dev/null || true
        die "RabbitMQ failed to start"
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
    ctl)     ctl "$@" ;;
    *) echo "usage: $0 {install|start PORT|stop|status|logdir|ctl ARGS...}" >&2; exit 2 ;;
esac
