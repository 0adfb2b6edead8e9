"""The daemon: Kafka in, decisions out (imports only aemon.core)."""
