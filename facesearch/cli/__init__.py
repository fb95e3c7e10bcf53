"""The ``facesearch`` command: click groups over the library, one module per command group."""
from facesearch.cli import classify_commands, commands
from facesearch.cli.root import main

classify_commands.register(main)

__all__ = ["main"]
