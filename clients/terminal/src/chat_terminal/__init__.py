"""A terminal client for the chat site: its personas, history and exports over the site's HTTP API."""
