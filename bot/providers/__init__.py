"""Provider API families behind one Protocol, sharing one transport."""
