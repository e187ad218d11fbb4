"""``python -m poisonlab.cli``: the same command as ``poisonlab``."""

from poisonlab.cli import main

main()
