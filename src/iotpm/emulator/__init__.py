"""The local AWS emulator: moto in server mode, with the fixes the pipeline needs."""
