"""Servers and helpers the tests start and share: RTSP, PostgreSQL, Mosquitto, a webhook
receiver, a browser, and the daemon run in-process or as a process."""
