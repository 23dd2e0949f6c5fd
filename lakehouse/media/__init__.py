"""Media intake and storage: fetching sources, validating them, and Lance blob columns."""
