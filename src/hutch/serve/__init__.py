"""``hutch serve``'s command-line side, one module per area of its flags.

tls_options.py   listeners, TLS contexts, SASL mechanisms (``--listen``, ``--tls-*``)
limit_options.py connection/channel/frame limits, heartbeat, handshake timeout
ops_options.py   logs, the default user, loopback users, definitions at boot
logs.py          logging in RabbitMQ's line shape, JSON, rotation, reopen on SIGHUP
systemd.py       sd_notify (READY=1 / STOPPING=1) without libsystemd

Each ``*_options`` module adds its flags to the serve parser and turns their values
into what the broker takes; config/keys.py reuses their converters for the matching
rabbitmq.conf keys, so a flag and its key accept exactly the same values.
"""
