"""The site's SQLite database backend: Django's, with writers that take turns (`base.py`)."""
