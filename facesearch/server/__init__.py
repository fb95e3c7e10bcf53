"""The HTTP server (``facesearch serve``): a FastAPI app over one gallery, its web page, and the
client that ``facesearch --server URL`` uses.

Importing this package imports nothing heavy; :mod:`.app` needs the ``[server]`` extra
(FastAPI, uvicorn), :mod:`.client` only the standard library.
"""
