"""Learning a policy from what a subject did: observations from journal records, suggested allow
rules, and the replay of records through candidate policies (`lsmguard suggest` and `test`)."""
