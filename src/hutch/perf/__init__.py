"""``hutch perf``: a load generator for AMQP 0-9-1 brokers (Hutch or RabbitMQ).

``client.py`` is a minimal raw-socket client, ``producer.py`` / ``consumer.py`` the
worker processes, ``report.py`` the histograms and output, ``cli.py`` the command.
"""

from .cli import add_perf_parser, run_perf

__all__ = ["add_perf_parser", "run_perf"]
