"""aemon monitor: the streaming daemon and its tools (replay, broker, demo, bench)."""
