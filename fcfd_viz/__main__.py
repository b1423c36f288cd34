"""``python -m fcfd_viz`` runs the ``fcfd`` command line."""

from fcfd_viz.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
