"""The gallery: the one door to stored faces (metadata in SQL, vectors in an index)."""
from facesearch.gallery.facade import EnrollReport, FaceMatch, Gallery, QueryResult
from facesearch.gallery.people import ScanReport

__all__ = ["EnrollReport", "FaceMatch", "Gallery", "QueryResult", "ScanReport"]
