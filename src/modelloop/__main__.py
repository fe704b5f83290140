"""``python -m modelloop``: the same as the ``modelloop`` command."""

from modelloop.cli import main

if __name__ == "__main__":
    main()
