"""The ``facesearch`` command: click groups over the library, one module per command group.

:mod:`~facesearch.cli.root` holds the root group; each command module adds its commands to it
when imported here, and :mod:`~facesearch.cli.render` turns results into text or JSON.
"""
from facesearch.cli import (  # noqa: F401
    bench_commands, classify_commands, gallery_commands, people_commands, server_commands, video_commands)
from facesearch.cli.root import main

__all__ = ["main"]
