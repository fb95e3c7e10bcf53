"""``python -m facesearch``: the same as the ``facesearch`` command."""
from facesearch.cli import main

if __name__ == "__main__":
    main()
