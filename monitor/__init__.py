"""aemon: autoencoder anomaly detection for windows, images and telemetry streams."""

__version__ = "0.1.0"
