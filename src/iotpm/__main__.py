"""``python -m iotpm``: the ``iotpm`` command without the console script on PATH."""

from iotpm.cli.main import main

main()
