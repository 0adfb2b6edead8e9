"""Development tools apart from the daemon: embedded broker, topics, bench, demo, NAB runner
and the harness they and the tests share. Not in the container image."""
