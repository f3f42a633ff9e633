"""Account discovery: official accounts of collectivités found in public registries (``barometre discover``).

- :mod:`.wikidata` and :mod:`.annuaire`: the two sources, each turning a registry's answers into
  :class:`~.model.Candidate` accounts named for registry entities, malformed rows reported and skipped;
- :mod:`.verify`: where a platform allows it without credentials (Bluesky, Mastodon), a candidate is
  confirmed and its stable id recorded;
- :mod:`.merge`: pure: candidates of every source, the registered accounts and the verifications →
  what to write, what conflicts, what to report;
- :mod:`.report`: the report and the review CSV; :mod:`.run`: the command, wiring them together.
"""
