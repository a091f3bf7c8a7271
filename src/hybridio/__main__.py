"""``python -m hybridio``: the same as the ``hybridio`` command."""

from ._cli import main

if __name__ == "__main__":
    main()
