"""Shared Streamlit building blocks for the pages: settings, sidebar filters, cached reads, formatting."""
