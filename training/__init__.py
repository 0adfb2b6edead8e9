"""aemon.training: fit autoencoders offline and write model artifacts the monitor loads."""
