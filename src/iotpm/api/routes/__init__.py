"""The API's routes by resource, each a Powertools ``Router`` that ``build_app`` includes."""
