"""``python -m workbench``: the same command line as the ``workbench`` script."""

from workbench.cli import app

if __name__ == "__main__":
    app(prog_name="workbench")
