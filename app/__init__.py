"""The Streamlit dashboard over the warehouse (``make dashboard``)."""
