#!/usr/bin/env python
"""Sends work to the actors of tasks.py (run the worker first; see tasks.py)."""
from tasks import always_fails, count_words  # tasks.py beside this script

count_words.send("the quick brown fox")
count_words.send_with_options(args=("three seconds later",), delay=3000)
count_words.send_with_options(args=("urgent, ahead of the queue",), broker_priority=9)
always_fails.send("the impossible")
print("sent: 3 count_words (one delayed by 3 s, one urgent), 1 always_fails", flush=True)
