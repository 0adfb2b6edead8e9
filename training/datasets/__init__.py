"""Data sets: window CSVs, ECG5000, and (later) image sets."""
