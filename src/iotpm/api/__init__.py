"""The analytics API: read-side ports, their in-memory fake, the routes and the local server."""
