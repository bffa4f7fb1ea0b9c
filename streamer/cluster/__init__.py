"""Several daemons acting as one system on a shared PostgreSQL database
(``cluster.database``): the database and its migrations, the cameras' leases and the
runner of a node's share, the shared webhook outbox and its forwarder, the cluster's
events, and the :class:`~streamer.cluster.deployment.Deployment` seam that lets the rest of
the daemon ignore whether it runs alone or in a cluster."""
