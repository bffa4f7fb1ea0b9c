"""Where events go: the events log and console, the durable outbox and its webhook
senders, and the evidence images."""
