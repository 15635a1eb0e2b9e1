"""The auth component: credentials of both realms, signing keys, revocations."""
