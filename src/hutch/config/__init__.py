"""``hutch serve --config FILE``: RabbitMQ's rabbitmq.conf format, Hutch's keys.

sysctl.py parses the format, keys.py says what each key does, load.py turns a file
into values for serve's flags (flags given on the command line still win).
"""

from .load import Loaded, load, load_text
from .sysctl import ConfigError

__all__ = ["ConfigError", "Loaded", "load", "load_text"]
