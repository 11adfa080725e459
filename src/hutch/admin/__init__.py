"""Operating Hutch: the management HTTP API, ``hutch ctl``, definitions, metrics.

Nothing here is imported by the AMQP hot path except ``stats`` (plain
counters), so the broker runs without aiohttp or prometheus_client loaded
until the management listener starts.
"""
