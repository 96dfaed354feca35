"""Reporting: naming which policy and rule an event means, describing its process, and
pumping it to journald as one record, coalesced, with every loss counted."""
