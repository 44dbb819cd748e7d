"""Entry point of the PyInstaller build: the same `main` as the `sam3dbody-gui` command."""

import sys

from sam3dbody_gui.cli import main

if __name__ == "__main__":
    sys.exit(main())
