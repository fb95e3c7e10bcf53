"""Vector search over stored faces and the matchers that turn neighbours into identities."""
