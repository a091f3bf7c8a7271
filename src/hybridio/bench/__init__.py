"""hybridio.bench: scenarios that measure each offload choice on this machine, and their report."""
