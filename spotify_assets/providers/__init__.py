"""Audio-features providers other than Spotify itself."""
