"""facesearch: identify enrolled people in photos and video from their faces."""

__version__ = "0.1.0"
