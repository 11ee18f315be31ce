"""The local twin: the pipeline on one machine (emulator, mosquitto, bridge, poller, API server)."""
