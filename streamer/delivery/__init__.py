"""Where events go: the events log and console, the durable outbox and its senders
(webhooks, the MQTT broker with Home Assistant discovery), and the evidence images."""
