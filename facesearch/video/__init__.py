"""Live identification in cameras, streams and video files: sources, tracking, overlay, events."""
