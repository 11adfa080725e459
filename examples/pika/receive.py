#!/usr/bin/env python
"""The seeds' receive.py (RabbitMQ tutorial one), pika 1.x API. AMQP_URL overrides the broker."""
import os

import pika

connection = pika.BlockingConnection(pika.URLParameters(os.environ.get("AMQP_URL", "amqp://localhost")))
channel = connection.channel()

channel.queue_declare(queue="hello")


def callback(ch, method, properties, body):
    print(" [x] Received %r" % body.decode(), flush=True)


channel.basic_consume(queue="hello", on_message_callback=callback, auto_ack=True)

print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
channel.start_consuming()
