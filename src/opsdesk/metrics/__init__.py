"""Time series: the store interface, the built-in SQL store and a remote Prometheus-compatible one."""
