"""The web dashboard (issue 14): pages under /ui, served by the API's own app."""
