#!/usr/bin/env python
"""The seeds' new_task.py (work queues), pika 1.x API. AMQP_URL overrides the broker."""
import os
import sys

import pika

connection = pika.BlockingConnection(pika.URLParameters(os.environ.get("AMQP_URL", "amqp://localhost")))
channel = connection.channel()

channel.queue_declare(queue="task_queue", durable=True)

message = " ".join(sys.argv[1:]) or "Hello World!"
channel.basic_publish(
    exchange="",
    routing_key="task_queue",
    body=message,
    properties=pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,  # make message persistent
    ),
)
print(" [x] Sent %r" % message)
connection.close()
