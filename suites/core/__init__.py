"""Core of the harness: cells and tasks, the schema, measurement and timing, devices, guards, model
preparation, the zoo, the suite registry and host facts. It imports nothing above it."""
