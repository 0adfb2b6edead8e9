"""aemon training: fit autoencoders offline and write model artifacts the monitor loads."""

__version__ = "0.1.0"
