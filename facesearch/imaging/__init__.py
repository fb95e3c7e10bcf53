"""Photos in (decode, validate, orient) and photos out (boxes and names drawn)."""
