"""``python -m hybridio``: the same as the ``hybridio`` command."""

from hybridio._cli import main

if __name__ == "__main__":
    main()
