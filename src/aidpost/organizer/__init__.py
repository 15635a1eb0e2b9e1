"""The organizer component: agencies, staff, events, contacts, issues, comments, changelogs."""
