"""Developer tools that live in the repository but are not part of the built collection (galaxy.yml build_ignore)."""
