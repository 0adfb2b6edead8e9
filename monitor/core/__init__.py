"""What offline fitting and the daemon both run on: the artifact, detectors, model families,
normalisers, windowing, decisions and events, errors, devices. Imports nothing else of aemon."""
