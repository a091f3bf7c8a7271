"""LoopMonitor's implementation: heartbeat and watchdog, stack capture, the report types."""
