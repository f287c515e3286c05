"""Views of the conversations app, one module per concern; urls.py names them all."""
